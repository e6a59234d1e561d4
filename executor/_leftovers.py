"""Destroying without records: finding a manifest's VMs on the host when the store has none.

A destroy normally removes what the store recorded. A store can lose that (deleted, a
different machine, a kill between a create and its record, VMs made by homestak's
iac-driver): then the VMs are found on the host itself, from **one** listing of it
(`/cluster/resources`, the same call over the API or `pvesh`), by two rules:

- **tag**: a VM carrying `pveplan-<manifest>` was made by pveplan for this manifest;
- **name+vmid**: a VM at a node's pinned vmid whose name is that node's name. A VM at that
  vmid with **another name** is never selected: it is named in a warning instead, so a
  mistyped vmid in a manifest never destroys somebody else's VM. A VM pveplan tagged for
  another manifest, or a template, is left alone the same way.

A node with no pinned vmid is found by its tag only (a name alone proves nothing).

Nested hosts: the VMs inside a nested PVE host are not on this host's listing, and the
nested host cannot be reached to look (its SSH host key was kept in the store that is
gone, and pveplan never trusts a host key on first use). They live on the nested host's
disks, so they go when that host's VM is destroyed: such nodes are reported as found with
their parent (`parent`); under a parent that is not there, they cannot exist either.

The rules are pure (`match_leftovers`, `node_findings`); `find_leftovers` adds the one
listing and `destroy_leftovers` the destroys, through the same step kind a recorded
destroy uses (which checks the name at the vmid once more, right before destroying).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import msgspec

from pveplan.planner import Plan

from ._context import Services
from ._model import Event
from ._results import host_walk, node_of

FoundBy = Literal["record", "tag", "name+vmid", "parent"]
FindingStatus = Literal["would destroy", "destroyed", "not found", "left alone", "failed"]
MANAGED = "pveplan"


class Frozen(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Wanted(Frozen):
    """A VM node of the manifest: its name, pinned vmid (None: PVE picks one), and the
    chain of nested hosts it lives in (() = the target host itself)."""

    name: str
    vmid: int | None = None
    path: tuple[str, ...] = ()


class Found(Frozen):
    """A VM on the host selected for destruction, and why."""

    vmid: int
    vm_name: str
    found_by: FoundBy
    node: str | None = None
    """The manifest node it is (None: tagged for this manifest, but no node of that name:
    a node since removed or renamed)."""
    kind: str = "qemu"
    """The listing's `type`: a VM (`qemu`) or a container (`lxc`), each destroyed by its
    own kind."""


class Refused(Frozen):
    """A VM that looked like a node's but is left alone; `reason` says why, for a warning."""

    vmid: int
    vm_name: str
    node: str
    reason: str


class Leftovers(Frozen):
    """What one listing of the host showed: VMs to destroy, VMs left alone (warnings)."""

    found: tuple[Found, ...] = ()
    refused: tuple[Refused, ...] = ()


class NodeFinding(Frozen):
    """One node of the manifest (or a tagged VM of no node) in a destroy's report.

    `found_by` is None when nothing of it was on the host; `status` is what happened (or,
    in a dry run, `would destroy`). `note` says why a node was left alone or failed.
    """

    name: str
    path: tuple[str, ...] = ()
    vmid: int | None = None
    found_by: FoundBy | None = None
    status: FindingStatus = "not found"
    note: str = ""
    in_manifest: bool = True


def wanted_nodes(plan: Plan) -> list[Wanted]:
    """The VM nodes of `plan` at every level, in the plan's (creation) order."""
    out: list[Wanted] = []
    for path, step in host_walk(plan):
        if step.kind not in ("pve.vm.create", "pve.clone.create"):  # a template is left alone
            continue
        name = node_of(step.address)
        vmid = step.args.get("vmid")
        if name is None:
            continue
        pinned = vmid if isinstance(vmid, int) and not isinstance(vmid, bool) else None
        out.append(Wanted(name=name, vmid=pinned, path=path))
    return out


def recorded_nodes(
    destroy: Plan | None, resources: Mapping[str, Mapping[str, Any]] = {}
) -> dict[str, int | None]:
    """Node name -> recorded vmid, for every node the store knows about: the destroy
    plan's nodes at every level, and the workspace's recorded resources."""
    out: dict[str, int | None] = {}
    if destroy is not None:
        for _, step in destroy.walk():
            name = node_of(step.address)
            if name is not None:
                vmid = step.args.get("vmid")
                if out.get(name) is None:
                    out[name] = vmid if isinstance(vmid, int) else None
    for address, outputs in resources.items():
        name = node_of(address)
        if name is not None and out.get(name) is None:
            vmid = outputs.get("vm_id")
            out[name] = vmid if isinstance(vmid, int) else None
    return out


def vm_tags(vm: Mapping[str, Any]) -> set[str]:
    """PVE's `tags` (`a;b`; older versions wrote spaces or commas), lower-cased."""
    raw = str(vm.get("tags") or "").replace(",", ";").replace(" ", ";")
    return {t.strip().lower() for t in raw.split(";") if t.strip()}


def manifest_tag(manifest: str) -> str:
    return f"{MANAGED}-{manifest}".lower()


def match_leftovers(
    wanted: Sequence[Wanted],
    vms: Iterable[Mapping[str, Any]],
    manifest: str,
    recorded: Mapping[str, int | None] = {},
) -> Leftovers:
    """Select the VMs of the listing `vms` that are this manifest's and not recorded.

    Only target-host nodes (empty path) are matched: nested ones are not on this listing.
    A VM counts as recorded (left to the recorded destroy) when its name is a recorded
    node's and its vmid the recorded one (or none was recorded). Pure; the order is by vmid.
    """
    tag = manifest_tag(manifest)
    top = [w for w in wanted if not w.path]
    names = {w.name for w in top}
    by_vmid = {w.vmid: w for w in top if w.vmid is not None and w.name not in recorded}
    found: list[Found] = []
    refused: list[Refused] = []
    for vm in sorted(vms, key=lambda v: _vmid(v) or 0):
        vmid = _vmid(vm)
        if vmid is None:
            continue
        name = str(vm.get("name") or "")
        if name in recorded and recorded[name] in (None, vmid):
            continue
        tags = vm_tags(vm)
        node = by_vmid.get(vmid)
        if _is_template(vm):
            if tag in tags or node is not None:
                refused.append(
                    Refused(
                        vmid=vmid,
                        vm_name=name,
                        node=node.name if node else name,
                        reason=f"VM {vmid} ({name}) is a template: templates are never destroyed",
                    )
                )
            continue
        if tag in tags:
            found.append(
                Found(
                    vmid=vmid,
                    vm_name=name,
                    found_by="tag",
                    node=name if name in names else None,
                    kind=str(vm.get("type") or "qemu"),
                )
            )
            continue
        if node is None:
            continue
        if name != node.name:
            refused.append(
                Refused(
                    vmid=vmid,
                    vm_name=name,
                    node=node.name,
                    reason=(
                        f"vmid {vmid} is VM {name!r}, not {node.name!r}: a VM of another name "
                        f"is never destroyed (check node {node.name}'s vmid in the manifest)"
                    ),
                )
            )
            continue
        other = sorted(t for t in tags if t.startswith(f"{MANAGED}-") and t != tag)
        if other:
            refused.append(
                Refused(
                    vmid=vmid,
                    vm_name=name,
                    node=node.name,
                    reason=(
                        f"VM {vmid} ({name}) is tagged {other[0]}: pveplan made it for another "
                        "manifest; destroy that manifest instead"
                    ),
                )
            )
            continue
        kind = str(vm.get("type") or "qemu")
        found.append(
            Found(vmid=vmid, vm_name=name, found_by="name+vmid", node=node.name, kind=kind)
        )
    return Leftovers(found=tuple(found), refused=tuple(refused))


def _vmid(vm: Mapping[str, Any]) -> int | None:
    vmid = vm.get("vmid")
    if isinstance(vmid, bool):
        return None
    if isinstance(vmid, int):
        return vmid
    try:
        return int(str(vmid))
    except ValueError:
        return None


def _is_template(vm: Mapping[str, Any]) -> bool:
    return str(vm.get("template", 0)) in ("1", "True", "true")


def node_findings(
    wanted: Sequence[Wanted],
    recorded: Mapping[str, int | None],
    leftovers: Leftovers,
    *,
    done: FindingStatus = "would destroy",
    failed: Mapping[int, str] = {},
) -> list[NodeFinding]:
    """One finding per node of the manifest, in creation order, then the tagged VMs of no
    node. `done` is the status of what was (or would be) destroyed; `failed` maps the
    vmids whose destroy failed to the error."""
    top: dict[str, Found] = {f.node: f for f in leftovers.found if f.node is not None}
    refused = {r.node: r for r in leftovers.refused}

    def status_of(vmid: int) -> tuple[FindingStatus, str]:
        if vmid in failed:
            return "failed", failed[vmid]
        return done, ""

    out: list[NodeFinding] = []
    fate: dict[str, NodeFinding] = {}
    for node in wanted:
        if node.name in recorded:
            finding = NodeFinding(
                name=node.name,
                path=node.path,
                vmid=recorded[node.name] or node.vmid,
                found_by="record",
                status=done,
            )
        elif node.path:
            finding = _inside(node, fate.get(node.path[0]))
        elif node.name in top:
            hit = top[node.name]
            status, note = status_of(hit.vmid)
            finding = NodeFinding(
                name=node.name,
                path=node.path,
                vmid=hit.vmid,
                found_by=hit.found_by,
                status=status,
                note=note,
            )
        elif node.name in refused and not node.path:
            finding = NodeFinding(
                name=node.name,
                vmid=node.vmid,
                status="left alone",
                note=refused[node.name].reason,
            )
        else:
            finding = NodeFinding(name=node.name, path=node.path, vmid=node.vmid)
        if not node.path:
            fate[node.name] = finding
        out.append(finding)
    for hit in leftovers.found:
        if hit.node is None:
            status, note = status_of(hit.vmid)
            out.append(
                NodeFinding(
                    name=hit.vm_name,
                    vmid=hit.vmid,
                    found_by=hit.found_by,
                    status=status,
                    note=note or "tagged for this manifest, but no node of that name",
                    in_manifest=False,
                )
            )
    return out


def _inside(node: Wanted, host: NodeFinding | None) -> NodeFinding:
    """A nested node shares the fate of the VM of its top-level host: it lives on its disks."""
    if host is not None and host.status == "left alone":
        note = f"inside {host.name}, which is left alone"
        return NodeFinding(
            name=node.name, path=node.path, vmid=node.vmid, status="left alone", note=note
        )
    if host is None or host.found_by is None:
        return NodeFinding(name=node.name, path=node.path, vmid=node.vmid)
    return NodeFinding(
        name=node.name,
        path=node.path,
        vmid=node.vmid,
        found_by="parent",
        status=host.status,
        note=f"inside {host.name}: goes with it",
    )


async def find_leftovers(
    services: Services,
    host: str,
    wanted: Sequence[Wanted],
    manifest: str,
    recorded: Mapping[str, int | None] = {},
) -> Leftovers:
    """One listing of `host` (`/cluster/resources`), matched by `match_leftovers`."""
    pve = await services.pve(host)
    return match_leftovers(wanted, await pve.guests(), manifest, recorded)


async def destroy_leftovers(
    services: Services, host: str, found: Sequence[Found], emit: Callable[[Event], None]
) -> dict[int, str]:
    """Destroy the VMs `found` (highest vmid first) with the VM kind's destroy, which checks
    the name at the vmid again before it destroys; vmid -> error for those that failed."""
    from ._run import resource_step
    from ._scheduler import destroy_resources

    failed: dict[int, str] = {}
    for hit in sorted(found, key=lambda f: -f.vmid):
        step = resource_step(
            host,
            f"node.{hit.node or hit.vm_name}.create",
            "pve.ct.create" if hit.kind == "lxc" else "pve.vm.create",
            {"vm_id": hit.vmid, "name": hit.vm_name},
        )
        _, errors = await destroy_resources(services, [step], emit)
        if errors:
            failed[hit.vmid] = "; ".join(errors)
    return failed
