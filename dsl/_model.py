"""The manifest model: the one value both front ends (DSL and YAML v2) produce.

Fields follow homestak's manifest schema v2 (`defs/manifest.schema.json`); pveplan's
additions are marked "pveplan extension" in their descriptions and listed in
docs/manifest.md. Structs are frozen and use tuples, so a `Manifest` can be shared,
hashed and compared; `omit_defaults` keeps encoded manifests stable when a field with
a default is added later.

Constraints live here, as `Meta`, so msgspec enforces them, the generated JSON Schema
shows them, and the validator's messages come from the same facts.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta


class Frozen(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """Base for every model struct: immutable, strict, with stable encodings."""


# A DNS label, as PVE's `name` (dns-name) and homestak's hostnames need it.
DNS_LABEL_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
MANIFEST_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

NodeName = Annotated[
    str,
    Meta(
        pattern=DNS_LABEL_PATTERN,
        description="Node identifier, used as the VM hostname: a DNS label "
        "(letters, digits, '-', 1-63 characters, no leading or trailing '-')",
    ),
]
VmId = Annotated[int, Meta(ge=100, le=999_999_999)]
DiskGb = Annotated[int, Meta(ge=1, le=1_000_000)]
Cores = Annotated[int, Meta(ge=1, le=1024)]
MemoryMb = Annotated[int, Meta(ge=16, le=16_777_216)]
SwapMb = Annotated[int, Meta(ge=0, le=16_777_216)]
Parallelism = Annotated[int, Meta(ge=1, le=1000)]
Mode = Literal["push", "pull"]
DiskBus = Literal["scsi", "virtio", "sata"]
NicModel = Literal["virtio", "e1000", "e1000e", "rtl8139", "vmxnet3"]
VlanTag = Annotated[int, Meta(ge=1, le=4094)]
# PVE's `mtu` range (net[n]); `validate` adds what PVE checks at start (1, or 576 and up).
Mtu = Annotated[int, Meta(ge=1, le=65520)]
MAC_PATTERN = r"^[0-9A-Fa-f][02468ACEace](:[0-9A-Fa-f]{2}){5}$"
"""A unicast MAC address (the first octet's low bit clear), as PVE's `macaddr` wants."""
BRIDGE_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$"
STORAGE_PATTERN = r"^[a-z][a-z0-9._-]*[a-z0-9]$"
StorageId = Annotated[str, Meta(pattern=STORAGE_PATTERN)]
BridgeName = Annotated[str, Meta(pattern=BRIDGE_PATTERN)]
MacAddress = Annotated[str, Meta(pattern=MAC_PATTERN)]


class Disk(Frozen):
    """pveplan extension: one of a VM's disks (`disks`). The first is the boot disk, which
    the image is imported into; the others are new and empty."""

    size: Annotated[DiskGb, Meta(description="Size in GB")]
    storage: Annotated[
        StorageId | None,
        Meta(description="PVE storage (default: the host's datastore)"),
    ] = None
    bus: Annotated[
        DiskBus | None,
        Meta(description="scsi (default), virtio or sata: the Nth disk on a bus is busN"),
    ] = None


class Nic(Frozen):
    """pveplan extension: one of a VM's network interfaces (`nics`): PVE's `netN`, and
    cloud-init's `ipconfigN` for it."""

    bridge: Annotated[
        BridgeName | None,
        Meta(description="Bridge (default: site.yaml's, else vmbr0)"),
    ] = None
    vlan: Annotated[VlanTag | None, Meta(description="VLAN tag (1-4094)")] = None
    mtu: Annotated[
        Mtu | None, Meta(description="MTU: 576-65520, or 1 for the bridge's (virtio only)")
    ] = None
    mac: Annotated[MacAddress | None, Meta(description="Pinned unicast MAC address")] = None
    firewall: Annotated[bool | None, Meta(description="PVE firewall on this NIC")] = None
    model: Annotated[NicModel | None, Meta(description="NIC model (default virtio)")] = None
    ipconfig: Annotated[
        str | None,
        Meta(
            description="cloud-init address: ip=dhcp, or ip=CIDR[,gw=ADDR], and/or "
            "ip6=dhcp|auto|CIDR[,gw6=ADDR] (default: ip=dhcp on the first NIC)"
        ),
    ] = None


Nameserver = Annotated[
    str | None,
    Meta(description="pveplan extension: cloud-init DNS servers (space-separated addresses)"),
]
Searchdomain = Annotated[
    str | None, Meta(description="pveplan extension: cloud-init DNS search domain(s)")
]


SNIPPET_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
UserData = Annotated[
    Annotated[str, Meta(pattern=SNIPPET_PATTERN)] | None,
    Meta(
        description="pveplan extension: a cloud-config snippet of the site config "
        "(snippets/NAME.yaml, or secrets.yaml's snippets.NAME) merged into the user-data "
        "pveplan writes (its lists added to pveplan's; the keys pveplan sets refused); "
        "the plan holds its keyed digest, never its text"
    ),
]
VendorData = Annotated[
    Annotated[str, Meta(pattern=SNIPPET_PATTERN)] | None,
    Meta(
        description="pveplan extension: a snippet of the site config (snippets/NAME.yaml, or "
        "secrets.yaml's snippets.NAME) given to cloud-init as vendor-data (PVE's cicustom "
        "vendor=); the plan holds its keyed digest, never its text"
    ),
]


SnapshotTrigger = Literal["resize", "replace"]


class SnapshotBefore(Frozen):
    """`snapshot_before: {changes: [resize], keep: true}`: the long form of `[resize]`
    (not `on:`, which YAML 1.1 reads as the boolean true)."""

    changes: Annotated[
        tuple[SnapshotTrigger, ...],
        Meta(description="The changes a snapshot is taken before: `resize` (a disk grows)"),
    ]
    keep: Annotated[
        bool, Meta(description="Keep the snapshot after a successful run (default: remove it)")
    ] = False


SnapshotPolicy = Annotated[
    tuple[SnapshotTrigger, ...] | SnapshotBefore | None,
    Meta(
        description="pveplan extension: snapshot a VM before a plan grows its disk "
        "(`[resize]`, or `{changes: [resize], keep: true}` to keep it); removed after a "
        "successful run unless `keep`. `replace` is refused: PVE destroys a VM's "
        "snapshots with it, so back up with vzdump instead"
    ),
]


class Settings(Frozen):
    """How a run behaves; `parallelism`, `nameserver`, `searchdomain`, `user_data` and
    `vendor_data` are pveplan extensions (the last four: every VM's default)."""

    verify_ssh: Annotated[bool, Meta(description="Verify SSH access at each node")] = True
    cleanup_on_failure: Annotated[bool, Meta(description="Destroy created nodes on failure")] = True
    timeout_buffer: Annotated[
        int, Meta(ge=0, le=86_400, description="Extra timeout seconds per nesting level")
    ] = 60
    on_error: Annotated[
        Literal["stop", "rollback", "continue"],
        Meta(
            description="stop (halt), rollback (destroy what this run created), "
            "continue (skip only the failed step's dependents)"
        ),
    ] = "stop"
    parallelism: Annotated[
        Parallelism | None,
        Meta(description="pveplan extension: most steps run at once (default 10)"),
    ] = None
    nameserver: Nameserver = None
    searchdomain: Searchdomain = None
    snapshot_before: SnapshotPolicy = None
    user_data: UserData = None
    vendor_data: VendorData = None


class Execution(Frozen):
    """Manifest-wide execution defaults."""

    default_mode: Annotated[
        Mode, Meta(description="push (configured over SSH by the driver) or pull (self-configured)")
    ] = "push"


class NodeExecution(Frozen):
    """Per-node execution overrides."""

    mode: Annotated[Mode | None, Meta(description="Override the manifest's default_mode")] = None


class Clone(Frozen):
    """pveplan extension: a VM made by cloning a template node of the same manifest
    (PVE's `qm clone`) instead of importing an image."""

    source: Annotated[
        NodeName, Meta(description="The template node (type: template) to clone from")
    ] = msgspec.field(name="from")
    linked: Annotated[
        bool,
        Meta(
            description="A linked clone (a thin child of the template's disk; only from a "
            "template, as PVE requires) or a full copy (false)"
        ),
    ] = True


class Node(Frozen):
    """One VM, container or nested PVE host; `parent` makes the tree."""

    name: NodeName
    type: Annotated[
        Literal["vm", "ct", "pve", "template"],
        Meta(
            description="vm (KVM), ct (LXC), pve (Proxmox VE host), template (pveplan "
            "extension: a VM template made once from an image, for clones)"
        ),
    ]
    spec: Annotated[str | None, Meta(description="FK to specs/{value}.yaml")] = None
    preset: Annotated[str | None, Meta(description="FK to presets/{value}.yaml (size)")] = None
    image: Annotated[
        str | None, Meta(description="Image catalog name (required for vm and pve nodes)")
    ] = None
    vmid: Annotated[VmId | None, Meta(description="Explicit PVE VM ID (100..999999999)")] = None
    disk: Annotated[DiskGb | None, Meta(description="Disk size in GB (overrides the preset)")] = (
        None
    )
    cores: Annotated[
        Cores | None, Meta(description="pveplan extension: CPU cores (overrides the preset)")
    ] = None
    memory: Annotated[
        MemoryMb | None, Meta(description="pveplan extension: memory in MB (overrides the preset)")
    ] = None
    template: Annotated[
        str | None,
        Meta(
            description="pveplan extension: LXC template for ct nodes (a vztmpl entry of "
            "the image catalog, e.g. debian-13-standard)"
        ),
    ] = None
    swap: Annotated[
        SwapMb | None,
        Meta(description="pveplan extension: swap in MB of a ct node (default 512)"),
    ] = None
    nesting: Annotated[
        bool | None,
        Meta(
            description="pveplan extension: the ct node's `nesting` feature, for systemd and "
            "containers inside it (default true)"
        ),
    ] = None
    unprivileged: Annotated[
        bool | None,
        Meta(description="pveplan extension: an unprivileged ct node (default true)"),
    ] = None
    onboot: Annotated[
        bool | None,
        Meta(description="pveplan extension: start the VM when its host boots (PVE's onboot)"),
    ] = None
    parent: Annotated[
        str | None,
        Meta(description="Name of the parent node; null or omitted = root on the target host"),
    ] = None
    execution: NodeExecution = NodeExecution()
    clone: Annotated[
        Clone | None,
        Meta(description="pveplan extension: make this vm by cloning a template node"),
    ] = None
    disks: Annotated[
        Annotated[tuple[Disk, ...], Meta(min_length=1, max_length=30)] | None,
        Meta(
            description="pveplan extension: the VM's disks, boot disk first "
            "(`disk: N` is short for one disk of N GB)",
        ),
    ] = None
    bridge: Annotated[
        BridgeName | None,
        Meta(
            description="pveplan extension: the bridge of the VM's one NIC "
            "(short for `nics: [{bridge: ...}]`; default: site.yaml's)",
        ),
    ] = None
    nics: Annotated[
        Annotated[tuple[Nic, ...], Meta(min_length=1, max_length=32)] | None,
        Meta(description="pveplan extension: the VM's network interfaces (net0 first)"),
    ] = None
    nameserver: Nameserver = None
    searchdomain: Searchdomain = None
    snapshot_before: SnapshotPolicy = None
    user_data: UserData = None
    vendor_data: VendorData = None
    host: Annotated[
        str | None,
        Meta(
            description="pveplan extension: the PVE host (a file in nodes/) this root node "
            "is placed on; null or omitted = the target host (-H)"
        ),
    ] = None


class Manifest(Frozen):
    """A whole deployment tree, as written by the user (before site config is applied)."""

    schema_version: Annotated[Literal[2], Meta(description="Must be 2 (graph-based node format)")]
    name: Annotated[str, Meta(pattern=MANIFEST_NAME_PATTERN, description="Manifest identifier")]
    nodes: Annotated[tuple[Node, ...], Meta(min_length=1, description="Nodes to deploy")]
    description: Annotated[str | None, Meta(description="Human-readable description")] = None
    pattern: Annotated[
        Literal["flat", "tiered"],
        Meta(description="flat (all on the target host) or tiered (parent-child nesting)"),
    ] = "flat"
    execution: Execution = Execution()
    settings: Settings = Settings()

    def node(self, name: str) -> Node:
        """The node called `name` (KeyError if none)."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def children(self, name: str | None) -> tuple[Node, ...]:
        """The nodes whose parent is `name` (None: the roots), in manifest order."""
        return tuple(node for node in self.nodes if node.parent == name)

    def mode_of(self, node: Node) -> Mode:
        """The node's effective execution mode (its override, else the manifest default)."""
        if node.execution.mode is not None:
            return node.execution.mode
        return self.execution.default_mode
