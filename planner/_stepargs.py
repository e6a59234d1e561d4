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
from typing import Any, ClassVar, Literal, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from ._errors import PlanError

AuthMethod = Literal["network", "site_token", "node_token"]

Rule = Literal["in_place", "replace", "grow"]
"""How a changed field is carried out: changed on the live resource (`in_place`), only by
recreating it (`replace`), or in place when it grows and by recreating when it shrinks
(`grow`: a disk). A field without a rule changes in place."""

Change = Literal["in_place", "replace"]


class StepArgs(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every kind's args. No field has a default but `UNSET` (left out on the
    wire), so the wire form holds exactly the keys plans always had."""

    RULES: ClassVar[Mapping[str, Rule]] = {}

    def wait_limit(self) -> int | None:
        """The step's own time limit in seconds (a wait's `timeout`), else None."""
        return None

    def reconcile(self, live: Mapping[str, Any]) -> dict[str, Change]:
        """For each field in `live` (its value on the real resource) that differs from
        these args: how to make it so. The executor's view of `RULES`."""
        found: dict[str, Change] = {}
        for field, value in live.items():
            wanted = getattr(self, field)
            if value != wanted:
                found[field] = change_of(type(self), field, value, wanted)
        return found


def change_of(args: type[StepArgs], field: str, old: Any, new: Any) -> Change:
    """How `field` of a step with `args` changing from `old` to `new` is carried out."""
    rule = args.RULES.get(field, "in_place")
    if rule == "grow":
        shrinks = isinstance(old, int) and isinstance(new, int) and new < old
        return "replace" if shrinks else "in_place"
    return rule


class NoArgs(StepArgs, frozen=True, kw_only=True):
    """Kinds whose step needs nothing beyond its refs and secrets (`{}`)."""


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
    that a disk only grows: a smaller disk is a new guest."""

    RULES = {
        "name": "replace",
        "type": "replace",
        "vmid": "replace",
        "storage": "replace",
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


class VmCreateArgs(GuestCreateArgs, frozen=True, kw_only=True):
    RULES = {**GuestCreateArgs.RULES, "image": "replace"}

    image: str
    cloud_init: CloudInit


class CtCreateArgs(GuestCreateArgs, frozen=True, kw_only=True):
    """A container (`POST /nodes/{node}/lxc`): its root file system made from `template`
    (a vztmpl volume, pinned like an image) on `storage` with `disk` GiB (`rootfs`), one
    NIC on `bridge` (DHCP), `hostname` its name, root's keys the step's secrets.

    A new template is a new container (PVE unpacks it once, at create); so is a change
    of `unprivileged`, which PVE fixes at create (its uid mapping is baked into the
    files). Cores, memory, swap and the `nesting` feature are set on the live container;
    the root file system grows in place (`pct resize`) and never shrinks."""

    RULES = {
        **GuestCreateArgs.RULES,
        "template": "replace",
        "unprivileged": "replace",
        "swap": "in_place",
        "nesting": "in_place",
    }

    template: str | None
    swap: int
    nesting: bool
    unprivileged: bool


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
