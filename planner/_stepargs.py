"""Each step kind's args as a frozen Struct: what a kind reads, declared once.

The planner builds a kind's args as its Struct; `to_wire` turns it into the plain dict a
`Step` carries (and plan files, hashes and diffs see), and `args_of` turns a step's dict
back into the Struct of its kind, once, for the kind that runs it. The wire form is the
one plans had before args were typed: the same keys, and a key that only some steps
carry (an unpinned image's `url`, a pull node's `cloud_init.pull`, a destroy delegate's
`action`) is `UNSET` here, so it is left out rather than written as null. So typing the
args moved no plan's bytes or hashes.

A step whose args do not fit its kind's Struct (an edited plan, or one from another
pveplan) is a `StepArgsError` naming the step and the field, never a KeyError in a kind.

How a change of a field is carried out lives here too, next to the field (`RULES`): the
planner's diff calls a change that cannot be made in place a replacement, and the VM kind
reconciles a live VM by the same rules (`reconcile`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from ._argsbase import (  # noqa: F401 - re-exported: the kinds' args and their rules
    AuthMethod,
    Change,
    NoArgs,
    Rule,
    StepArgs,
    change_of,
)
from ._errors import PlanError

# --- images and guests ---------------------------------------------------------------


class ImageEnsureArgs(StepArgs, frozen=True, kw_only=True):
    """An image on a storage: a pinned one is its sha256 (its URL is a hint, not hashed);
    an unpinned one has only its `url` to say which it is."""

    RULES = {field: "replace" for field in ("sha256", "url", "filename", "format", "storage")}

    name: str
    filename: str
    format: str
    storage: str
    sha256: str | None
    url: str | UnsetType = UNSET


class StorageContentArgs(StepArgs, frozen=True, kw_only=True):
    """A storage of the host that the plan's steps use, and the content types they need
    on it (sorted): `import` for images, `snippets` for cloud-init, `images` (`rootdir`
    for containers) on the datastore. `enable` (site.yaml `storage.enable_content`) says
    whether a missing type is enabled, or refused with the command that enables it."""

    storage: str
    content: tuple[str, ...]
    enable: bool


class GuestCreateArgs(StepArgs, frozen=True, kw_only=True):
    """What a VM and a container are both made with. Which resource it is (name, vmid,
    type, storage) only changes by recreating it; sizes change on the live guest, except
    that a disk only grows: a smaller one is kept (`keep`), never shrunk."""

    RULES = {
        **dict.fromkeys(("name", "type", "vmid", "storage"), "replace"),
        "cores": "in_place",
        "memory": "in_place",
        "disk": "grow",
    }

    name: str
    type: Literal["vm", "ct", "pve"]
    vmid: int | None
    cores: int
    memory: int
    disk: int
    bridge: str | None
    storage: str
    tags: tuple[str, ...]


class PullBoot(StepArgs, frozen=True, kw_only=True):
    """What a pull node's first boot needs to fetch its spec (the server's certificate
    is the running server's, known only at apply)."""

    identity: str
    spec: str | None
    auth: AuthMethod
    server: str | None


class CloudInit(StepArgs, frozen=True, kw_only=True):
    user: str
    sudo: bool
    packages: tuple[str, ...]
    timezone: str | None
    agent: bool
    serial: bool
    mode: Literal["push", "pull"]
    pull: PullBoot | UnsetType = UNSET


class DiskArgs(StepArgs, frozen=True, kw_only=True):
    """One disk of a VM: the Nth disk on `bus` is PVE's `busN`. A disk grows in place
    (`resize`) and a smaller one is kept (PVE cannot shrink); one on another bus or
    storage is a new disk, so a new VM (a bus is the guest's device name)."""

    RULES = {"size": "grow", "bus": "replace", "storage": "replace"}

    size: int
    bus: Literal["scsi", "virtio", "sata"]
    storage: str


class NicArgs(StepArgs, frozen=True, kw_only=True):
    """One NIC of a VM (PVE's `netN`) and its cloud-init address (`ipconfigN`): every
    field changes in place (`qm set --netN`, which PVE hot-plugs). An unset field is
    PVE's default: no VLAN, the bridge's MTU, a generated MAC, no firewall, and for the
    first NIC `ip=dhcp`."""

    bridge: str
    model: str
    vlan: int | UnsetType = UNSET
    mtu: int | UnsetType = UNSET
    mac: str | UnsetType = UNSET
    firewall: bool | UnsetType = UNSET
    ipconfig: str | UnsetType = UNSET


DEFAULT_BUS = "scsi"
DEFAULT_NIC_MODEL = "virtio"
DNS_RULES: dict[str, Rule] = dict.fromkeys(("nameserver", "searchdomain"), "in_place")
SNIPPET_RULES: dict[str, Rule] = dict.fromkeys(("user_data", "vendor_data"), "in_place")


class SnapshotArgs(StepArgs, frozen=True, kw_only=True):
    """`snapshot_before`: snapshot the live VM before a disk of it grows (`resize`, the
    one change a snapshot can guard: PVE destroys a VM's snapshots with the VM, so a
    replacement is refused at validation). The snapshot is removed after the run
    succeeded unless `keep`."""

    changes: tuple[Literal["resize"], ...]
    keep: bool


class VmCreateArgs(GuestCreateArgs, frozen=True, kw_only=True):
    """A VM. `disks` and `nics` are set only when the manifest asks for more than the one
    disk (`disk` GB, scsi, on `storage`) and the one NIC (virtio on `bridge`) every VM
    has: so a plan that uses neither keeps its bytes. Then `disk` and `bridge` are the
    first disk's size and the first NIC's bridge. Its NICs' bridge, `onboot` and
    cloud-init options are set on the live VM in place (PVE takes cloud-init options at
    the guest's next boot); a full refresh compares them (`_configdrift`)."""

    RULES = {
        **GuestCreateArgs.RULES,
        "image": "replace",
        "disks": "items",
        "nics": "items",
        **DNS_RULES,
        "bridge": "in_place",
        "onboot": "in_place",
        "cloud_init": "in_place",
        "snapshot": "in_place",
        **SNIPPET_RULES,
    }
    ITEMS = {"disks": DiskArgs, "nics": NicArgs}
    SHORTHANDS = {"disk": "disks", "bridge": "nics"}

    image: str
    cloud_init: CloudInit
    disks: tuple[DiskArgs, ...] | UnsetType = UNSET
    nics: tuple[NicArgs, ...] | UnsetType = UNSET
    nameserver: str | UnsetType = UNSET
    searchdomain: str | UnsetType = UNSET
    onboot: bool | UnsetType = UNSET
    """Start the VM when its host boots; only when the manifest says (else PVE's own
    default, off, and never compared)."""
    snapshot: SnapshotArgs | UnsetType = UNSET
    """`snapshot_before`: only when the manifest asks (so no other plan's bytes move)."""
    user_data: str | UnsetType = UNSET
    vendor_data: str | UnsetType = UNSET
    """cloud-init snippets, when named: secret names `snippets.NAME` (text revealed at
    apply, keyed digests among the step's secrets); rewritten in place, read at next boot."""

    @classmethod
    def items_of(cls, field: str, wire: Mapping[str, Any]) -> list[dict[str, Any]]:
        listed = wire.get(field)
        if isinstance(listed, list):
            return list(listed)
        if field == "disks":
            return [{"size": wire.get("disk"), "bus": DEFAULT_BUS, "storage": wire.get("storage")}]
        return [{"bridge": wire.get("bridge") or "vmbr0", "model": DEFAULT_NIC_MODEL}]

    def disk_list(self) -> tuple[DiskArgs, ...]:
        """Every disk, boot disk first (the one `disk` means when `disks` is unset)."""
        if self.disks:
            return self.disks
        return (DiskArgs(size=self.disk, bus=DEFAULT_BUS, storage=self.storage),)

    def nic_list(self) -> tuple[NicArgs, ...]:
        """Every NIC, `net0` first (the one on `bridge` when `nics` is unset)."""
        if self.nics:
            return self.nics
        return (NicArgs(bridge=self.bridge or "vmbr0", model=DEFAULT_NIC_MODEL),)


class TemplateCreateArgs(StepArgs, frozen=True, kw_only=True):
    """A VM template made once from an image: the VM is created, then turned into a
    template (PVE's `template`), and never started. A template is read-only once made
    (PVE keeps its disk as a base volume that linked clones are children of), so every
    change makes a new template."""

    RULES = {
        field: "replace"
        for field in ("name", "vmid", "cores", "memory", "disk", "bridge", "storage", "image")
    }

    name: str
    vmid: int | None
    cores: int
    memory: int
    disk: int
    bridge: str | None
    storage: str
    tags: tuple[str, ...]
    image: str


class VmCloneArgs(GuestCreateArgs, frozen=True, kw_only=True):
    """A VM cloned from the template step named by its `template` ref (`source` is that
    node's name), linked (a thin child of the template's disk) or full. Which template
    and how are fixed at cloning, so changing either makes a new VM; a linked clone is
    also remade when its template is (`REPLACED_WITH`: its disk is the old template's
    child). Sizes, NIC and cloud-init are set after cloning, as for any VM."""

    RULES = {
        **GuestCreateArgs.RULES,
        "source": "replace",
        "linked": "replace",
        **DNS_RULES,
        **SNIPPET_RULES,
    }

    source: str
    linked: bool
    cloud_init: CloudInit
    nameserver: str | UnsetType = UNSET  # cloud-init DNS, as a VM's (`qm set` after cloning)
    searchdomain: str | UnsetType = UNSET
    # one disk, one NIC, no onboot of its own yet: read by the VM kind's adopt as a VM's
    onboot: bool | UnsetType = UNSET
    snapshot: SnapshotArgs | UnsetType = UNSET
    user_data: str | UnsetType = UNSET  # cloud-init snippets, as a VM's
    vendor_data: str | UnsetType = UNSET

    def replaced_with(self) -> frozenset[str]:
        return frozenset({"template"}) if self.linked else frozenset()

    def disk_list(self) -> tuple[DiskArgs, ...]:
        """Its one disk, as a VM's `disk` shorthand means it."""
        return (DiskArgs(size=self.disk, bus=DEFAULT_BUS, storage=self.storage),)

    def nic_list(self) -> tuple[NicArgs, ...]:
        """Its one NIC, as a VM's `bridge` shorthand means it."""
        return (NicArgs(bridge=self.bridge or "vmbr0", model=DEFAULT_NIC_MODEL),)


class CtCreateArgs(GuestCreateArgs, frozen=True, kw_only=True):
    """A container (`POST /nodes/{node}/lxc`): its root file system made from `template`
    (a vztmpl volume, pinned like an image) on `storage` with `disk` GiB (`rootfs`), one
    NIC on `bridge` (DHCP), `hostname` its name, root's keys the step's secrets.

    A new template is a new container (PVE unpacks it once, at create); so is a change
    of `unprivileged`, which PVE fixes at create (its uid mapping is baked into the
    files). Cores, memory, swap, DNS and `nesting` are set on the live container; the
    root file system grows in place (`pct resize`) and never shrinks."""

    RULES = {
        **GuestCreateArgs.RULES,
        "template": "replace",
        "unprivileged": "replace",
        "swap": "in_place",
        "nesting": "in_place",
        **DNS_RULES,
    }

    template: str | None
    swap: int
    nesting: bool
    unprivileged: bool
    nameserver: str | UnsetType = UNSET  # PVE writes it to the container's resolv.conf
    searchdomain: str | UnsetType = UNSET


class WaitIpArgs(StepArgs, frozen=True, kw_only=True):
    timeout: int

    def wait_limit(self) -> int | None:
        return self.timeout


class GuestDestroyArgs(StepArgs, frozen=True, kw_only=True):
    """A destroy plan's step: the guest by name, and the vmid it was given at apply."""

    name: str | None
    vmid: int | None


# --- reaching a guest, and a nested PVE host's lifecycle -------------------------------


class SshWaitArgs(StepArgs, frozen=True, kw_only=True):
    user: str
    timeout: int

    def wait_limit(self) -> int | None:
        return self.timeout


class SiteConfigArgs(StepArgs, frozen=True, kw_only=True):
    exclude: tuple[str, ...]
    """Secret name prefixes that never leave the driver (`api_tokens`)."""
    mode: str


class BridgeArgs(StepArgs, frozen=True, kw_only=True):
    bridge: str
    interface: str


class ApiTokenArgs(StepArgs, frozen=True, kw_only=True):
    user: str
    token: str
    privsep: int


class DelegateArgs(StepArgs, frozen=True, kw_only=True):
    """A subplan run on `host`; `subplan` is its hash (the Merkle link). An apply
    delegate names the `children` it creates; a destroy plan's has `action: destroy`."""

    host: str
    subplan: str
    children: tuple[str, ...] | UnsetType = UNSET
    action: Literal["destroy"] | UnsetType = UNSET


# --- a spec: pushed over SSH, or awaited from a pull node ------------------------------


class SpecUserArgs(StepArgs, frozen=True, kw_only=True):
    name: str
    sudo: bool
    ssh_keys: tuple[str, ...]
    """Secret names: the values are revealed at apply, never written into a plan."""


class ServicesArgs(StepArgs, frozen=True, kw_only=True):
    enable: tuple[str, ...]
    disable: tuple[str, ...]


class SpecArgs(StepArgs, frozen=True, kw_only=True):
    """A node's resolved spec, as `_pullspec.spec_args` builds it (no secret values).
    The free-form parts (posture, network, pve, config, run) are plain data."""

    spec: str | None
    hostname: str | None
    domain: str | None
    users: tuple[SpecUserArgs, ...]
    packages: tuple[str, ...]
    services: ServicesArgs
    timezone: str | None
    posture: str | None
    posture_settings: dict[str, Any] | None
    network: dict[str, Any] | None
    pve: dict[str, Any] | None
    config: dict[str, Any]
    run: dict[str, Any] | UnsetType = UNSET
    """Only when the spec sets it: plans made before `run` existed keep their hashes."""


class ConfigPushArgs(SpecArgs, frozen=True, kw_only=True):
    ssh_user: str


class PullTimeouts(StepArgs, frozen=True, kw_only=True):
    spec: int
    config: int


class AwaitReportArgs(StepArgs, frozen=True, kw_only=True):
    """What a pull node fetches (`spec`, named by `spec_hash`) and how it proves who it is."""

    identity: str
    spec_name: str
    auth: AuthMethod
    spec_hash: str
    spec: SpecArgs
    server: str | None
    timeouts: PullTimeouts


# --- a pull node's node-local steps (`_nodeplan`) --------------------------------------


class TimezoneArgs(StepArgs, frozen=True, kw_only=True):
    timezone: str


class PackagesArgs(StepArgs, frozen=True, kw_only=True):
    packages: tuple[str, ...]


class UserArgs(StepArgs, frozen=True, kw_only=True):
    name: str
    sudo: bool


class SshKeysArgs(StepArgs, frozen=True, kw_only=True):
    user: str
    keys: tuple[str, ...]


class SudoArgs(StepArgs, frozen=True, kw_only=True):
    user: str
    nopasswd: bool


class SshdArgs(StepArgs, frozen=True, kw_only=True):
    """Only the settings the posture sets."""

    port: int | UnsetType = UNSET
    permit_root_login: str | UnsetType = UNSET
    password_authentication: str | UnsetType = UNSET


class ConvergeTimerArgs(StepArgs, frozen=True, kw_only=True):
    interval: str
    """In systemd's time-span syntax."""
    boot: str
    bundle: str
    """The installed bundle's hash: what the timer runs."""


# --- host set-up: the steps of the `pve-setup` and `user-setup` scenarios (_hostplan) ----


class HostFileArgs(StepArgs, frozen=True, kw_only=True):
    """A file on the host with exactly this text (an apt source, a sudoers rule)."""

    path: str
    text: str
    mode: int


class HostDownloadArgs(StepArgs, frozen=True, kw_only=True):
    """A file fetched on the host from `url`, kept only if its sha256 is `sha256`: a
    fixed input, like an image (never trusted on first use)."""

    url: str
    path: str
    sha256: str
    mode: int


class HostKeysArgs(StepArgs, frozen=True, kw_only=True):
    """`user`'s authorized_keys hold these public keys (`keys`) and those of the secrets
    named in `secret_keys` (site `ssh_keys.*`, revealed only when the step runs)."""

    user: str
    keys: tuple[str, ...]
    secret_keys: tuple[str, ...]


class HostNodeFileArgs(StepArgs, frozen=True, kw_only=True):
    """How the new PVE host is reached, for the node file written into the site config."""

    address: str
    ssh_port: int
    ssh_user: str
    ssh_host_key: str
    datastore: str
    token_name: str


# --- the registry ----------------------------------------------------------------------

STEP_ARGS: Mapping[str, type[StepArgs]] = {
    "pve.storage.content": StorageContentArgs,
    "pve.image.ensure": ImageEnsureArgs,
    "pve.vm.create": VmCreateArgs,
    "pve.template.create": TemplateCreateArgs,
    "pve.clone.create": VmCloneArgs,
    "pve.vm.start": NoArgs,
    "pve.vm.wait_ip": WaitIpArgs,
    "pve.vm.destroy": GuestDestroyArgs,
    "pve.ct.create": CtCreateArgs,
    "pve.ct.start": NoArgs,
    "pve.ct.wait_ip": WaitIpArgs,
    "pve.ct.destroy": GuestDestroyArgs,
    "ssh.wait": SshWaitArgs,
    "config.push": ConfigPushArgs,
    "config.await_report": AwaitReportArgs,
    "pveplan.bootstrap": NoArgs,
    "pveplan.site_config": SiteConfigArgs,
    "ssh.authorize_driver_key": NoArgs,
    "ssh.install_next_hop_key": NoArgs,
    "pve.install": NoArgs,
    "pve.bridge": BridgeArgs,
    "pveplan.node_file": NoArgs,
    "pve.api_token": ApiTokenArgs,
    "ssh.authorize_own_key": NoArgs,
    "subplan.delegate": DelegateArgs,
    "node.timezone": TimezoneArgs,
    "node.packages": PackagesArgs,
    "node.fail2ban": NoArgs,
    "node.user": UserArgs,
    "node.ssh_keys": SshKeysArgs,
    "node.sudo": SudoArgs,
    "node.services": ServicesArgs,
    "node.sshd": SshdArgs,
    "node.converge_timer": ConvergeTimerArgs,
    "host.download": HostDownloadArgs,
    "host.apt_source": HostFileArgs,
    "host.pve_install": PackagesArgs,
    "host.bridge": BridgeArgs,
    "host.authorized_keys": HostKeysArgs,
    "host.api_token": ApiTokenArgs,
    "host.node_file": HostNodeFileArgs,
    "host.user": UserArgs,
    "host.sudoers": HostFileArgs,
}
"""Every step kind -> the Struct of its args."""

A = TypeVar("A", bound=StepArgs)
_wire_encoder = msgspec.json.Encoder()
_wire_decoder = msgspec.json.Decoder(dict[str, Any])


class StepArgsError(PlanError):
    """A step's args do not fit its kind (an edited plan, or another pveplan's)."""


def to_wire(kind: str, args: StepArgs) -> dict[str, Any]:
    """The plain dict a step of `kind` carries for `args` (what is hashed and written):
    JSON data as a plan file reads back (lists, not tuples), so a plan built here equals
    the same plan decoded from its file."""
    expected = STEP_ARGS.get(kind)
    if type(args) is not expected:  # a planner bug, not a user's mistake
        raise TypeError(f"{kind} takes {expected}, not {type(args).__name__}")
    return to_plain(args)


def to_plain(args: StepArgs) -> dict[str, Any]:
    """`args` as JSON data (lists, not tuples; `UNSET` fields left out)."""
    return _wire_decoder.decode(_wire_encoder.encode(args))


def args_of(step: Any, cls: type[StepArgs] | None = None) -> StepArgs:
    """The args of `step` (a `Step`) as its kind's Struct; StepArgsError if they do not fit.
    `cls` is for a kind the planner does not make (a benchmark's): its own Struct."""
    return decode_args(step.kind, step.args, step.address, cls)


def decode_args(
    kind: str, wire: Mapping[str, Any], address: str = "", cls: type[StepArgs] | None = None
) -> StepArgs:
    """`wire` (a step's args dict) as the Struct of `kind` (or `cls`)."""
    where = f"step {address} ({kind})" if address else f"a {kind} step"
    cls = cls or STEP_ARGS.get(kind)
    if cls is None:
        raise StepArgsError.at(
            None,
            f"{where}: unknown step kind {kind!r}",
            "the plan was made by another pveplan version: re-plan with this one",
        )
    try:
        return msgspec.convert(wire, cls)
    except msgspec.ValidationError as exc:
        raise StepArgsError.at(
            None,
            f"{where}: its args do not fit the kind: {exc}",
            "the plan was edited, or made by another pveplan version: re-plan with this one",
        ) from None


def args_as(args: StepArgs, cls: type[A]) -> A:
    """`args` as `cls`: a kind's own Struct, or a union of those it accepts (TypeError if
    the registry says otherwise: a bug)."""
    if not isinstance(args, cls):
        expected = getattr(cls, "__name__", str(cls))
        raise TypeError(f"expected {expected} args, got {type(args).__name__}")
    return args
