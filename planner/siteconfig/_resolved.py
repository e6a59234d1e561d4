"""What a manifest becomes once every name in it is looked up in the site config.

This is the planner's input: each node with its size, image, spec, posture, packages and
users settled, so building steps needs no more lookups and no file access. Everything is
a frozen Struct of tuples, encodable canonically, and holds no secret: users' keys are
`SecretRef`s, revealed only by the executor.

Packages, timezone, the VM user and its keys sit on the node, not in the spec, because
cloud-init applies them to every VM, with or without a spec; the spec part holds what
only the config phase does (users, services, static network, PVE options).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from pveplan import dsl

from ._hosts import HostConfig
from ._images import CatalogImage
from ._model import Frozen, Posture, Preset, SpecNetwork, SpecPveConfig, SpecRun
from ._secrets import SecretRef

# Size of a node that names no preset (and overrides nothing): homestak's vm-small.
DEFAULT_SIZE = Preset(cores=2, memory=2048, disk=10)
DEFAULT_TIMEZONE = "UTC"
DEFAULT_VM_USER = "homestak"
DEFAULT_BRIDGE = "vmbr0"
DEFAULT_CT_SWAP = 512
CT_USER = "root"
"""Who pveplan reaches a container as: its template has no other user (nor sudo)."""


class ResolvedUser(Frozen):
    """A user the spec creates; `ssh_keys` already expanded ("omitted" became every key)."""

    name: str
    sudo: bool = False
    ssh_keys: tuple[SecretRef, ...] = ()


class ResolvedSpec(Frozen):
    """A spec as it applies to one node (site defaults filled in, key ids checked)."""

    hostname: str
    domain: str | None = None
    users: tuple[ResolvedUser, ...] = ()
    services_enable: tuple[str, ...] = ()
    services_disable: tuple[str, ...] = ()
    network: SpecNetwork | None = None
    pve: SpecPveConfig | None = None
    config_extra: dict[str, Any] = msgspec.field(default_factory=dict)
    run: SpecRun | None = None


class ResolvedNode(Frozen, kw_only=True):
    """One node with every foreign key replaced by what it names.

    Sizes: the manifest's override, else the preset's, else `DEFAULT_SIZE`. `packages`
    is site defaults + posture + spec, de-duplicated in that order. `authorized_keys` are
    the keys cloud-init gives `vm_user` (every key in secrets.ssh_keys).
    """

    name: str
    type: Literal["vm", "ct", "pve", "template"]
    parent: str | None = None
    depth: int = 0
    vmid: int | None = None
    mode: Literal["push", "pull"] = "push"
    cores: int
    memory: int
    disk: int
    preset: str | None = None
    image: CatalogImage | None = None
    template: str | None = None
    spec_name: str | None = None
    spec: ResolvedSpec | None = None
    posture_name: str | None = None
    posture: Posture | None = None
    packages: tuple[str, ...] = ()
    timezone: str = DEFAULT_TIMEZONE
    vm_user: str = DEFAULT_VM_USER
    authorized_keys: tuple[SecretRef, ...] = ()
    bridge: str = DEFAULT_BRIDGE
    clone: dsl.Clone | None = None
    """A vm made by cloning this template node of the manifest (`image` is then None)."""
    inherits_disk: bool = False
    """A clone without a `disk` of its own: at least its template's size (a preset's
    disk only where it is larger)."""
    disks: tuple[dsl.Disk, ...] = ()
    """The manifest's `disks` as written (empty: the one disk of `disk` GB). `disk` is
    the first one's size either way: the boot disk."""
    nics: tuple[dsl.Nic, ...] = ()
    """The manifest's `nics` as written (empty: one NIC on `bridge`). `bridge` is the
    first one's bridge, or the site's default."""
    nameserver: str | None = None
    searchdomain: str | None = None
    """cloud-init DNS: the node's own, else the manifest settings' (None: PVE's default,
    the host's)."""
    user_data: SecretRef | None = None
    vendor_data: SecretRef | None = None
    """cloud-init snippets (`snippets.NAME`, revealed only at apply): the node's own, else
    the manifest settings'; None for a container or a template (no cloud-init of their own)."""
    host: str | None = None
    """The PVE host a root node names (`host:`), when it names one other than the target
    host; None: the target host (a child is always on its parent)."""
    snapshot_before: tuple[str, ...] = ()
    """The changes the VM is snapshotted before (the node's `snapshot_before`, else the
    settings'): empty for none; `snapshot_keep` keeps the snapshot after the run."""
    snapshot_keep: bool = False
    onboot: bool | None = None
    """The manifest's `onboot`; None when it does not say (PVE's default, never compared)."""
    swap: int = DEFAULT_CT_SWAP
    """A container's swap in MiB, its `nesting` feature and whether it is unprivileged
    (ct nodes only: the manifest's, else PVE's defaults for a new container)."""
    nesting: bool = True
    unprivileged: bool = True


class ResolvedManifest(Frozen, kw_only=True):
    """A manifest bound to a site config (and a target host, when one was given).

    `warnings` are the resolver's own (unpinned images, missing keys); the manifest's
    warnings stay on the `LoadedManifest`.
    """

    name: str
    host: str | None = None
    host_config: HostConfig | None = None
    pattern: Literal["flat", "tiered"] = "flat"
    settings: dsl.Settings = dsl.Settings()
    server_url: str = ""
    """site.yaml's `defaults.server_url`: where pull nodes reach the spec server ("" means
    the URL of the server the driver runs)."""
    enable_content: bool = True
    """site.yaml's `storage.enable_content`: enable a content type a storage lacks, or
    refuse with the command that does."""
    nodes: tuple[ResolvedNode, ...]
    warnings: tuple[dsl.Diagnostic, ...] = ()
    host_configs: dict[str, HostConfig] = msgspec.field(default_factory=dict)
    """The other PVE hosts the nodes name (`host:`), by name: each one's node file."""

    def node(self, name: str) -> ResolvedNode:
        """The node called `name` (KeyError if none)."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)
