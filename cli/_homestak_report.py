"""homestak's run report: every node of the manifest with iac-driver's status, in create order.

iac-driver registers every node of the manifest before a run starts (`pending`), marks a
node `completed` or `failed` when its turn comes, `destroyed` when a destroy (or the
rollback of a failed create) removes it, and reports the nodes breadth-first from the
roots in manifest order. Its users read that report (`--json-output`, `reports/`), so
`create`, `destroy` and `test` tell it the same way. pveplan's executor knows more (a
node can be `cached`, or `skipped` because a step it needed failed); this module is the
one place where that is folded into iac-driver's four words:

- `completed`: every step of the node ran or was cached (a create);
- `destroyed`: a destroy removed it, or it was rolled back, or it lived inside a host
  that was (nothing of it is left);
- `failed`: one of its own steps failed (a pve host whose only trouble is a child's
  failure is `completed`: the child carries the failure);
- `pending`: the run never got to it, or stopped before it was done.

Functions of values, but for `manifest_order` (and `dry_run_report`, which uses it): a plan
keeps siblings in name order, so create order needs the manifest, read again. Files and
printing are `_report_files`'.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import msgspec

if TYPE_CHECKING:
    from pveplan.executor import NodeRow, RunReport
    from pveplan.planner import Plan

NodeStatus = Literal["pending", "completed", "failed", "destroyed"]
PhaseStatus = Literal["passed", "failed", "skipped"]


class NodeResult(msgspec.Struct, frozen=True, kw_only=True):
    """One node of a homestak report (`nodes[]` of `--json-output` and of `reports/`)."""

    name: str
    status: NodeStatus
    vm_id: int | str | None = None
    ip: str | None = None
    duration: float | None = None
    error: str | None = None
    path: tuple[str, ...] = ()
    """The hosts it is nested in (not in the JSON: iac-driver names a node alone)."""
    found_by: str | msgspec.UnsetType | None = msgspec.UNSET
    """A destroy's search only: how its VM was found on the host (`record`, `tag`,
    `name+vmid`, `parent`; None: nothing of it there). pveplan's own key."""

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "status": self.status,
            "vm_id": self.vm_id,
            "ip": self.ip,
            "duration": self.duration,
            "error": self.error,
        }
        if self.found_by is not msgspec.UNSET:
            data["found_by"] = self.found_by
        return data


class Phase(msgspec.Struct, frozen=True, kw_only=True):
    """One phase of a scenario (or of `test`: create, verify, destroy), as iac-driver's
    `PhaseResult`: passed, failed or skipped, with its time and a message."""

    name: str
    status: PhaseStatus
    duration: float = 0.0
    message: str = ""
    description: str = ""


def homestak_status(row_status: str, *, destroy: bool, rolled_back: bool = False) -> NodeStatus:
    """iac-driver's word for a node row's status (`executor.NodeRow.status`).

    `destroy`: the row comes from a destroy run; `rolled_back`: the node (or a host it is
    nested in) was destroyed by the rollback of a failed create.
    """
    if row_status == "failed":
        return "failed"
    if row_status in ("skipped", "-"):
        return "pending"
    if row_status == "destroyed" or rolled_back or destroy:
        return "destroyed"
    return "completed"  # completed or cached: the node is there, as the manifest says


def create_order(nodes: Iterable[tuple[str, str | None]]) -> list[str]:
    """Node names breadth-first from the roots, siblings in manifest order (iac-driver's
    `ManifestGraph.create_order`). `nodes`: (name, parent) in manifest order; a node
    whose parent is not among them counts as a root."""
    listed = list(nodes)
    names = {name for name, _ in listed}
    children: dict[str | None, list[str]] = {}
    for name, parent in listed:
        children.setdefault(parent if parent in names else None, []).append(name)
    order: list[str] = []
    queue = deque(children.get(None, []))
    while queue:
        name = queue.popleft()
        order.append(name)
        queue.extend(children.get(name, []))
    return order


def plan_nodes(plan: Plan) -> list[tuple[str, str | None]]:
    """(name, parent) of every node of a plan, all levels: the order when the manifest
    itself is not at hand (a plan keeps siblings in name order, not manifest order)."""
    from pveplan.executor import node_rows

    return [
        (row.name, row.path[-1] if row.path else None) for row in node_rows(_empty_report(), plan)
    ]


def _empty_report() -> RunReport:
    from pveplan.executor import RunReport

    return RunReport(plan_hash="", status="ok", outcomes=())


def report_nodes(
    report: RunReport | None,
    plan: Plan,
    *,
    layout: Plan | None = None,
    order: Sequence[tuple[str, str | None]] | None = None,
    destroy: bool = False,
) -> list[NodeResult]:
    """Every node of the manifest with iac-driver's status, in create order.

    `report`: the run (None: nothing ran, a dry run: every node `pending`); `plan`: the
    plan that ran; `layout`: the manifest's apply plan, whose nodes are all listed even
    where `plan` (a destroy's) does not name them; `order`: the manifest's (name, parent)
    pairs in manifest order (else the plan's order).
    """
    from pveplan.executor import node_rows

    base = layout or plan
    known = {row.name: row for row in node_rows(_empty_report(), base)}
    if report is not None:
        ran = node_rows(report, plan, action="destroy" if destroy else "apply")
        known.update({row.name: _merged(known.get(row.name), row) for row in ran})
    pairs = list(order) if order else plan_nodes(base)
    listed = {name for name, _ in pairs}
    names = create_order([*pairs, *((n, None) for n in known if n not in listed)])
    rolled = _rolled_back(report) if report is not None else set()
    nothing_ran = report is None
    succeeded = report is not None and report.status == "ok"
    emptied = _subtrees_removed(report) if report is not None and destroy else set()
    results = []
    for name in names:
        row = known.get(name)
        if row is None:
            continue
        gone = name in rolled or any(host in rolled for host in row.path)
        status = (
            "pending"
            if nothing_ran
            else _status_of(
                row,
                destroy=destroy,
                rolled_back=gone,
                succeeded=succeeded or any(host in emptied for host in row.path),
            )
        )
        results.append(_result(row, status))
    return results


def _merged(planned: NodeRow | None, ran: NodeRow) -> NodeRow:
    """The run's row, keeping the planned vmid and place when the run did not learn them."""
    if planned is None:
        return ran
    return msgspec.structs.replace(
        ran,
        vm_id=ran.vm_id if ran.vm_id is not None else planned.vm_id,
        path=ran.path or planned.path,
    )


def _status_of(row: NodeRow, *, destroy: bool, rolled_back: bool, succeeded: bool) -> NodeStatus:
    if destroy and row.status == "-" and succeeded:
        # A destroy that succeeded and had nothing recorded of the node: nothing is left.
        return "destroyed"
    return homestak_status(row.status, destroy=destroy, rolled_back=rolled_back)


def _subtrees_removed(report: RunReport) -> set[str]:
    """The hosts whose subtree a destroy removed (their `destroy_subtree` step succeeded):
    what they hosted is gone, even when the run failed elsewhere."""
    return {
        name
        for o in report.outcomes
        if o.address.endswith(".destroy_subtree") and o.status in ("ok", "cached")
        if (name := _node_name(o.address)) is not None
    }


def _rolled_back(report: RunReport) -> set[str]:
    """The nodes a rollback destroyed (`node.NAME.STEP` addresses of the driver's level)."""
    return {name for a in report.rolled_back if (name := _node_name(a)) is not None}


def _result(row: NodeRow, status: NodeStatus) -> NodeResult:
    """Only a failed node, or one a run stopped short of (why it did not run), has an error."""
    error = (row.error or None) if status in ("failed", "pending") else None
    return NodeResult(
        name=row.name,
        status=status,
        vm_id=row.vm_id,
        ip=row.ip,
        duration=row.duration,
        error=error,
        path=row.path,
    )


def pending_nodes(
    plan: Plan, order: Sequence[tuple[str, str | None]] | None = None
) -> list[NodeResult]:
    """A dry run's nodes: every node of the manifest, `pending`, in create order."""
    return report_nodes(None, plan, order=order)


def context_of(nodes: Iterable[NodeResult]) -> dict[str, Any]:
    """iac-driver's run context: `{name}_vm_id` and `{name}_ip` of every node that has them
    (what its next verb, `destroy` say, reads)."""
    context: dict[str, Any] = {}
    for node in nodes:
        if node.vm_id is not None:
            context[f"{node.name}_vm_id"] = node.vm_id
        if node.ip:
            context[f"{node.name}_ip"] = node.ip
    return context


def first_error(nodes: Iterable[NodeResult]) -> str | None:
    """The run's error: the first failed node's (in create order), named."""
    for node in nodes:
        if node.status == "failed":
            return f"{node.name}: {node.error}" if node.error else f"{node.name} failed"
    return None


def verb_report(
    verb: str,
    success: bool,
    seconds: float,
    nodes: Sequence[NodeResult],
    *,
    error: str | None = None,
    context: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """`--json-output` of create/destroy/test: verb, success, duration_seconds, nodes[],
    context, error (None on success); `extra` keys (a dry run's diff, test's phases) after."""
    if error is None and not success:
        error = first_error(nodes)
    return {
        "verb": verb,
        "success": success,
        "duration_seconds": round(seconds, 2),
        "nodes": [node.as_json() for node in nodes],
        "context": context if context is not None else context_of(nodes),
        "error": error,
        **extra,
    }


def scenario_report(
    scenario: str,
    success: bool,
    seconds: float,
    phases: Sequence[Phase],
    *,
    context: dict[str, Any] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """`--json-output` of a scenario run (iac-driver's `TestReport.to_dict`): scenario,
    success, duration_seconds, phases[] (name, status, duration), context, error (the
    first failed phase's message when not given)."""
    if error is None and not success:
        error = next((p.message for p in phases if p.status == "failed" and p.message), None)
    public = {k: v for k, v in (context or {}).items() if not k.startswith("_")}
    return {
        "scenario": scenario,
        "success": success,
        "duration_seconds": round(seconds, 1),
        "phases": [
            {"name": p.name, "status": p.status, "duration": round(p.duration, 1)} for p in phases
        ],
        "context": public,
        "error": error,
    }


def phases_of_test(
    created: bool,
    nodes: Sequence[NodeResult],
    seconds: float,
    problems: dict[str, str],
    destroyed: tuple[bool, float] | None,
) -> tuple[Phase, ...]:
    """`test`'s phases as iac-driver's report names them: create (failed naming the failed
    nodes), verify (only after a create that succeeded), destroy (when it ran: always after
    a good create, after a failed one with cleanup_on_failure). `created`: the create
    run succeeded; `nodes`: what it left."""
    failed = [node.name for node in nodes if node.status == "failed"]
    ok = created
    phases = [
        Phase(
            name="create",
            description="Provision infrastructure",
            status="passed" if ok else "failed",
            duration=seconds,
            message=f"{len(nodes)} node(s) created"
            if ok
            else f"Failed node(s): {', '.join(failed) or 'none failed, some not created'}",
        )
    ]
    if ok:
        checked = "; ".join(f"{name}: {problem}" for name, problem in problems.items())
        phases.append(
            Phase(
                name="verify",
                description="Verify SSH connectivity",
                status="failed" if problems else "passed",
                message=f"SSH verification failed: {checked}"
                if problems
                else "All nodes reachable",
            )
        )
    if destroyed is not None:
        phases.append(
            Phase(
                name="destroy",
                description="Destroy infrastructure",
                status="passed" if destroyed[0] else "failed",
                duration=destroyed[1],
                message="All nodes destroyed" if destroyed[0] else "Destroy failed",
            )
        )
    return tuple(phases)


def _node_name(address: str) -> str | None:
    parts = address.split(".")
    return ".".join(parts[1:-1]) if len(parts) >= 3 and parts[0] == "node" else None


def node_table(nodes: Sequence[NodeResult]) -> str:
    """The nodes as aligned columns (node, status, vmid, address, duration): the table
    create/destroy/test print, the same rows as their JSON."""
    if not nodes:
        return ""
    table = [("node", "status", "vmid", "address", "duration")]
    for node in nodes:
        table.append(
            (
                " › ".join((*node.path, node.name)),
                node.status,
                "-" if node.vm_id is None else str(node.vm_id),
                node.ip or "-",
                "-" if node.duration is None else f"{node.duration:.1f}s",
            )
        )
    widths = [max(len(cells[i]) for cells in table) for i in range(5)]
    lines = []
    for cells in table:
        left = "  ".join(cell.ljust(width) for cell, width in zip(cells[:4], widths, strict=False))
        lines.append(f"  {left}  {cells[4].rjust(widths[4])}")
    return "\n".join(lines)


def manifest_order(
    args: Any, console: Any, path: str | None = None
) -> list[tuple[str, str | None]] | None:
    """The manifest's (name, parent) pairs in its own order, read again from what the
    arguments name (`--manifest-json`, FILE, --manifest-file, -M), or from `path` (the
    manifest of a saved plan). A plan keeps siblings in name order, so create order needs
    the manifest; None when it cannot be read now (the report then uses the plan's order).
    """
    from pveplan.dsl import load_manifest, load_yaml, manifest_from_data

    from ._select import manifest_paths

    try:
        if getattr(args, "manifest_json", None):
            data, smap = load_yaml(args.manifest_json, "<manifest-json>")
            manifest = manifest_from_data(data, smap).manifest
        else:
            manifest = load_manifest(path or manifest_paths(args, console)[0]).manifest
    except Exception:  # it was read once already; an order is a nicety, never a failure
        return None
    return [(node.name, node.parent) for node in manifest.nodes]


def dry_run_report(args: Any, console: Any, plan: Plan, diff: dict[str, Any]) -> dict[str, Any]:
    """`create|destroy|test --dry-run --json-output`: the verb's report with every node of
    the manifest `pending` (nothing ran), and the plan diff under its own keys (`plan`,
    `summary`, `changes`; the diff's per-node summary as `node_changes`)."""
    nodes = pending_nodes(plan, manifest_order(args, console))
    extra = {k: v for k, v in diff.items() if k != "nodes"}
    return verb_report(
        getattr(args, "report_verb", None) or args.command,  # `manifest apply`: apply
        True,
        0.0,
        nodes,
        context={},  # nothing ran, so nothing is known yet
        dry_run=True,
        node_changes=diff.get("nodes", []),
        **extra,
    )


def phase_table(phases: Sequence[Phase]) -> str:
    """A scenario's phases as aligned columns (phase, status, duration, message)."""
    rows = [("phase", "status", "duration", "message")]
    rows += [(p.name, p.status, f"{p.duration:.1f}s", p.message) for p in phases]
    widths = [max(len(cells[i]) for cells in rows) for i in range(3)]
    return "\n".join(
        "  "
        + "  ".join(c.ljust(w) for c, w in zip(cells[:3], widths, strict=False))
        + "  "
        + cells[3]
        for cells in rows
    ).rstrip()
