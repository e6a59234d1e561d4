"""Drift: how the live VMs of a host differ from what pveplan applied, as the plan shows it.

A probe (the executor's `probe_live`) reads a host's VMs in one listing and hands them here
as `LiveVm`s; `find_drift` compares them with the plan's create steps, pure. Only nodes the
store records as applied are compared (a node never applied is a create, not drift), and
only fields pveplan sets and PVE's listing carries: cores, memory, disk size, tags, and
whether the VM exists and runs. Fields pveplan does not set are never compared, and a tag
added by hand is left alone (pveplan only restores its own). What each difference means is
the args' own rule (`VmCreateArgs.RULES`): cores and memory are set back in place, a disk
smaller than wanted grows, a disk grown by hand cannot shrink (PVE has no shrink) and is
reported with what to do; a stopped VM is started, a missing one created again.

What only a VM's own config carries (its NIC, onboot, cloud-init user and keys) is compared
by a full refresh, in `_configdrift`.

The plan carries what was found (`Plan.drift`, hashed): `with_drift` makes that plan, and
`drift_reruns` tells the executor which steps to run again instead of reusing their results.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from ._hashing import plan_hash
from ._plan import Drift, Frozen, Plan, Step
from ._stepargs import (
    CtCreateArgs,
    StepArgsError,
    TemplateCreateArgs,
    VmCloneArgs,
    VmCreateArgs,
    args_of,
    change_of,
)

if TYPE_CHECKING:
    from ._nested_drift import LevelProbe

GUEST_CREATE = "pve.vm.create"
GUEST_KINDS = {
    "pve.vm.create": "qemu",
    "pve.clone.create": "qemu",
    "pve.template.create": "qemu",
    "pve.ct.create": "lxc",
}
"""Each guest-create kind, and the listing `type` of what it makes: a container and a VM
share one vmid space, so a vmid is ours only if the kind of what holds it matches."""
GUEST_START = "pve.vm.start"
DESTROYED = "missing on host: destroyed outside pveplan"
CHANGED = "changed outside pveplan"
UNRECORDED = "not in the store: destroyed by a targeted destroy, or its record removed"


class LiveVm(Frozen, kw_only=True):
    """One VM as a host's listing shows it: sizes in pveplan's units (MiB, GiB); None
    where the listing has no figure yet (PVE lists a just-made VM without its stats),
    which is never taken for drift."""

    vmid: int
    name: str
    status: str
    cores: int | None = None
    memory: int | None = None
    disk: int | None = None
    tags: tuple[str, ...] = ()
    kind: str = "qemu"
    """The listing's `type`: `qemu` (a VM) or `lxc` (a container)."""


class LiveHost(Frozen, kw_only=True):
    """Every VM one host's listing showed (one call to PVE, whatever the count)."""

    host: str
    vms: tuple[LiveVm, ...] = ()


def _by_host(live: LiveHost | Iterable[LiveHost] | None) -> dict[str, dict[int, LiveVm]]:
    """Each probed host's VMs by vmid (a plan's nodes may sit on several hosts: `host:`)."""
    hosts = () if live is None else (live,) if isinstance(live, LiveHost) else tuple(live)
    return {h.host: {vm.vmid: vm for vm in h.vms} for h in hosts}


def find_drift(
    plan: Plan,
    live: LiveHost | Iterable[LiveHost],
    resources: Mapping[str, Mapping[str, Any]],
    applied: Mapping[str, str] | None = None,
) -> tuple[Drift, ...]:
    """Every drift of the applied VMs of `plan`'s own level (`resources`: the store's live
    resources of the workspace, by address, with their recorded outputs), in plan order.

    `applied` is what the store records as applied (address -> step hash, as
    `AppliedState.steps` holds it): a create step whose hash differs
    from its applied one runs anyway and brings the VM to the new manifest, so for it a
    size or tag that differs is the plan's change (shown as such), not drift; only its VM
    being gone or stopped is. Without it every field is compared with `plan`'s."""
    probed = _by_host(live)
    addresses = {step.address for step in plan.steps}
    out: list[Drift] = []
    for step in plan.steps:
        if (args := _listed_args(step)) is None:
            continue
        if step.address not in resources:
            if applied is not None and applied.get(step.address) == step.hash:
                out.append(_unrecorded(step, args))
            continue
        by_vmid = probed.get(step.host)
        if by_vmid is None:  # its host was not probed (each host is one listing)
            continue
        recorded = resources[step.address]
        vmid = recorded.get("vm_id") or args.vmid
        vm = by_vmid.get(vmid) if isinstance(vmid, int) else None
        if vm is not None and (vm.name != args.name or vm.kind != GUEST_KINDS[step.kind]):
            vm = None  # its vmid now belongs to another VM: ours is gone
        fields = applied is None or applied.get(step.address) == step.hash
        out.extend(_compare(step, args, vm, addresses, fields=fields))
    return tuple(out)


def _unrecorded(step: Step, args: VmCreateArgs | CtCreateArgs | VmCloneArgs) -> Drift:
    """A guest of the applied plan, unchanged in this one, that the store no longer
    records (a `destroy -target` removed it and kept the applied plan, as Terraform's
    targeting does): apply makes it again, so the plan must say so, not "No changes"."""
    return Drift(
        address=step.address,
        node=args.name,
        type=args.type,
        field="exists",
        live="not recorded",
        wanted="present",
        cause=UNRECORDED,
        fix="recreate",
    )


def _compare(
    step: Step,
    args: VmCreateArgs | CtCreateArgs | VmCloneArgs,
    vm: LiveVm | None,
    addresses: set[str],
    *,
    fields: bool,
) -> list[Drift]:
    def drift(field: str, live: str, wanted: str, cause: str, fix: Any, address: str = "") -> Drift:
        return Drift(
            address=address or step.address,
            node=args.name,
            type=args.type,
            field=field,
            live=live,
            wanted=wanted,
            cause=cause,
            fix=fix,
        )

    if vm is None:
        return [drift("exists", "missing", "present", DESTROYED, "recreate")]
    out: list[Drift] = []
    for field, unit in (("cores", ""), ("memory", ""), ("disk", "G")) if fields else ():
        have, want = getattr(vm, field), getattr(args, field)
        if have is None or have == want:
            continue
        rule = change_of(type(args), field, have, want)
        if rule == "in_place":
            out.append(drift(field, f"{have}{unit}", f"{want}{unit}", CHANGED, "in_place"))
        else:  # a disk grown by hand: the manifest's is smaller, and PVE cannot shrink
            cause = (
                f"grown outside pveplan; PVE cannot shrink a disk: set disk = {have} in the "
                "manifest to keep it, or destroy the VM (its data too) and apply to recreate it"
            )
            out.append(drift(field, f"{have}{unit}", f"{want}{unit}", cause, "report"))
    missing = [tag for tag in args.tags if tag.lower() not in {t.lower() for t in vm.tags}]
    if missing and fields:
        out.append(
            drift(
                "tags",
                ";".join(vm.tags) or "(none)",
                ";".join(args.tags),
                f"{', '.join(missing)} removed outside pveplan",
                "in_place",
            )
        )
    start = step.address.rsplit(".", 1)[0] + ".start"
    if vm.status != "running" and start in addresses:
        out.append(
            drift("status", vm.status, "running", f"{vm.status} outside pveplan", "start", start)
        )
    return out


def with_drift(plan: Plan, drift: Iterable[Drift]) -> Plan:
    """`plan` carrying `drift` (re-hashed: the drift is part of what apply does)."""
    import msgspec

    found = tuple(drift)
    return msgspec.structs.replace(
        plan,
        drift=found,
        hash=plan_hash(
            plan.manifest,
            plan.host,
            plan.action,
            plan.settings,
            [(s.address, s.hash) for s in plan.steps],
            drift=found,
            targets=plan.targets,
        ),
    )


def drift_reruns(plan: Plan) -> frozenset[str]:
    """The steps an apply of `plan` runs again whatever their recorded results: those
    that converge a drift (a reported one has none). A nested level's drift is its own
    executor's to converge (its delegate always runs), never a step of this level."""
    return frozenset(d.address for d in plan.drift if d.fix != "report" and not d.path)


def drift_line(item: Drift) -> str:
    """`~ vm db  memory: 4096 (live) -> 2048 (manifest)  (changed outside pveplan)`."""
    if item.fix == "recreate":
        return f"+ {item.type} {item.node}  ({item.cause})"
    symbol = "!" if item.fix == "report" else "~"
    return (
        f"{symbol} {item.type} {item.node}  {item.field}: {item.live} (live) -> "
        f"{item.wanted} (manifest)  ({item.cause})"
    )


NodeState = Literal["in_sync", "drift", "missing", "not_applied", "not_probed", "unreachable"]


class NodeStatus(Frozen, kw_only=True):
    """One node's health for `pveplan status`: its live state against the store's."""

    name: str
    type: str
    host: str
    vmid: int | None = None
    live: str = ""
    """The VM's status on its host (`running`, `stopped`), `missing`, or empty if not seen."""
    state: NodeState
    detail: tuple[str, ...] = ()


def node_statuses(
    plan: Plan,
    live: LiveHost | Iterable[LiveHost] | None,
    resources: Mapping[str, Mapping[str, Any]],
    drift: Iterable[Drift] = (),
    levels: Iterable[LevelProbe] = (),
) -> tuple[NodeStatus, ...]:
    """Every node of `plan` (nested levels too), in plan order: in sync, drifted (the
    drift lines of its fields), missing, never applied, on a host that did not answer
    (`live` None), or on a nested level: as its own executor found it (`levels`, what
    `executor.probe_nested` answered), else `not_probed`."""
    from ._nested_drift import nested_status

    found_levels = {level.path: level for level in levels}
    probed = _by_host(live)
    drift_of: dict[str, list[Drift]] = {}
    for item in drift:
        drift_of.setdefault(item.node, []).append(item)
    out: list[NodeStatus] = []
    for path, step in plan.walk():
        if (args := _status_args(step)) is None:
            continue
        host = step.host
        kind = "template" if isinstance(args, TemplateCreateArgs) else args.type
        if path:
            out.append(nested_status(args.name, kind, host, args.vmid, path, found_levels))
            continue
        recorded = resources.get(step.address)
        vmid = (recorded or {}).get("vm_id") or args.vmid
        vmid = vmid if isinstance(vmid, int) else None
        base = {"name": args.name, "type": kind, "host": host, "vmid": vmid}
        if recorded is None:
            out.append(NodeStatus(**base, state="not_applied"))
        elif host not in probed:
            out.append(NodeStatus(**base, state="unreachable"))
        else:
            found = probed[host].get(vmid) if vmid is not None else None
            if found is not None and found.kind != GUEST_KINDS[step.kind]:
                found = None  # its vmid is held by a guest of the other kind
            mine = drift_of.get(args.name, [])
            if any(d.fix == "recreate" for d in mine) or found is None:
                out.append(NodeStatus(**base, live="missing", state="missing"))
            elif mine:
                lines = tuple(drift_line(d) for d in mine)
                out.append(NodeStatus(**base, live=found.status, state="drift", detail=lines))
            else:
                out.append(NodeStatus(**base, live=found.status, state="in_sync"))
    return tuple(out)


def _create_args(step: Step) -> VmCreateArgs | CtCreateArgs | None:
    """A guest-create step's arguments (a VM's or a container's), or None for any other
    step (or unreadable ones)."""
    cls = {GUEST_CREATE: VmCreateArgs, "pve.ct.create": CtCreateArgs}.get(step.kind)
    if cls is None:
        return None
    try:
        args = args_of(step, cls)
    except StepArgsError:
        return None
    return args if isinstance(args, VmCreateArgs | CtCreateArgs) else None


def _listed_args(step: Step) -> VmCreateArgs | CtCreateArgs | VmCloneArgs | None:
    """A guest-create step's arguments as the listing compares them: a VM's, a
    container's or a clone's (a clone is a VM like any once made: its sizes, tags and
    state drift the same way; its config is not read by a full refresh)."""
    if step.kind != "pve.clone.create":
        return _create_args(step)
    try:
        args = args_of(step, VmCloneArgs)
    except StepArgsError:
        return None
    return args if isinstance(args, VmCloneArgs) else None


def _status_args(
    step: Step,
) -> VmCreateArgs | CtCreateArgs | VmCloneArgs | TemplateCreateArgs | None:
    """What `status` reports on: every guest the listing shows, templates too (a
    template is in sync while it exists; it never runs, and nothing converges it)."""
    if step.kind != "pve.template.create":
        return _listed_args(step)
    try:
        args = args_of(step, TemplateCreateArgs)
    except StepArgsError:
        return None
    return args if isinstance(args, TemplateCreateArgs) else None
