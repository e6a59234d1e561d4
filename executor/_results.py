"""What a run did, node by node and counted at every level: the rows behind the final table.

The driver's report holds only its own level's outcomes: a nested host's steps are known
from the events its delegate forwarded (with a `path`, folded into `RunReport.nested` by
`with_nested`) and from the delegate's outputs (`node.NAME.vm_id|ip`, every level below
it). `node_rows` folds all of that into one row per node of the manifest, which both the
final table and homestak's `--json-output` entries are made from, so the two never
disagree. Pure functions of values: no clock, no I/O, nothing rendered with colour.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

import msgspec

from pveplan.planner import Plan, Step

from ._model import Event, Outcome, RunReport

RowStatus = Literal["completed", "failed", "cached", "skipped", "destroyed", "-"]

# The steps of a pve node that run its subtree (apply and destroy): their time and fate are
# the subtree's, not the host's own.
DELEGATE_STEPS = ("delegate", "destroy_subtree")
_STATUS_OF_EVENT = {"finished": "ok", "cached": "cached", "failed": "failed", "skipped": "skipped"}
_NODE_FIELDS = ("vm_id", "ip")


def host_walk(plan: Plan, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Step]]:
    """Every step of `plan` and its subplans with the chain of *hosts* leading to it.

    `Plan.walk` names a level by its delegate's address; events name it by host
    (`root-pve`), which is what a display or a report can match against.
    """
    for step in plan.steps:
        yield path, step
    for address, subplan in plan.subplans.items():
        try:
            host = str(plan.step(address).args.get("host") or subplan.host)
        except KeyError:
            host = subplan.host
        yield from host_walk(subplan, (*path, host))


def node_of(address: str) -> str | None:
    """`node.edge.create` -> `edge`; None for steps of no node (`image.debian-12.ensure`)."""
    parts = address.split(".")
    if len(parts) >= 3 and parts[0] == "node":
        return ".".join(parts[1:-1])
    return None


def is_delegate(address: str) -> bool:
    return node_of(address) is not None and address.rsplit(".", 1)[1] in DELEGATE_STEPS


def outcome_of(event: Event) -> Outcome | None:
    """The outcome a step's last event reports (None for `started` and `log`)."""
    status = _STATUS_OF_EVENT.get(event.kind)
    if status is None:
        return None
    return Outcome(
        address=event.address,
        status=status,  # type: ignore[arg-type]
        error=event.message if status in ("failed", "skipped") else "",
        duration=event.duration or 0.0,
        path=event.path,
    )


def with_nested(report: RunReport, outcomes: Iterable[Outcome]) -> RunReport:
    """`report` with the nested hosts' outcomes among `outcomes` (the driver's own, with an
    empty path, are in the report already and are left out)."""
    nested = tuple(o for o in outcomes if o.path)
    return msgspec.structs.replace(report, nested=nested)


class NodeRow(msgspec.Struct, frozen=True, kw_only=True):
    """One node of the manifest after a run: for the final table and `--json-output`.

    `status`: `completed` (something ran, nothing failed), `cached` (all its steps were),
    `destroyed`, `failed`, `skipped` (some step did not run because something it needed
    failed, or its host's subtree never ran), `-` (nothing is known: the run never got
    to it). A pve host's own status leaves out its subtree's, which its children's rows
    carry; `duration` is the time its own steps ran (None: none ran).
    """

    name: str
    path: tuple[str, ...] = ()
    status: RowStatus
    vm_id: int | str | None = None
    ip: str | None = None
    duration: float | None = None
    error: str = ""

    @property
    def label(self) -> str:
        """`root-pve › edge`: the hosts it is nested in, then its name."""
        return " › ".join((*self.path, self.name))


class _Node:
    """What is gathered about one node while the rows are built."""

    def __init__(self, name: str, path: tuple[str, ...], parent: str | None) -> None:
        self.name = name
        self.path = path
        self.parent = parent  # the host whose delegate runs it (None: the target host)
        self.outcomes: list[Outcome] = []
        self.delegate: Outcome | None = None
        self.vm_id: int | str | None = None
        self.ip: str | None = None


def node_rows(
    report: RunReport, plan: Plan | None = None, *, action: str | None = None
) -> list[NodeRow]:
    """One row per node: every node of `plan` (all levels) when given, else every node the
    report names; hosts before the nodes nested in them.

    `action` ("apply" or "destroy") defaults to the plan's; a destroy's nodes whose steps
    succeeded are `destroyed`.
    """
    done_word: RowStatus = (
        "destroyed"
        if (action or (plan.action if plan else "apply")) == ("destroy")
        else "completed"
    )
    nodes: dict[str, _Node] = {}

    def node(name: str, path: tuple[str, ...] | None, parent: str | None = None) -> _Node:
        found = nodes.get(name)
        if found is None:
            found = nodes[name] = _Node(name, path or (), path[-1] if path else parent)
        elif path and not found.path:  # placed by a delegate's outputs, now known exactly
            found.path, found.parent = path, path[-1]
        return found

    if plan is not None:
        for path, step in host_walk(plan):
            name = node_of(step.address)
            if name is not None:
                entry = node(name, path)
                vmid = step.args.get("vmid")
                if entry.vm_id is None and isinstance(vmid, int) and not isinstance(vmid, bool):
                    entry.vm_id = vmid
    for outcome in (*report.outcomes, *report.nested):
        name = node_of(outcome.address)
        if name is None:
            continue
        entry = node(name, outcome.path)
        if is_delegate(outcome.address):
            entry.delegate = outcome
        else:
            entry.outcomes.append(outcome)
        _take_fields(entry, outcome.outputs)
    for outcome in report.outcomes:
        if is_delegate(outcome.address):
            host = node_of(outcome.address)
            for key, value in outcome.outputs.items():
                inner = key.split(".")
                if len(inner) == 3 and inner[0] == "node" and inner[2] in _NODE_FIELDS:
                    _take_fields(node(inner[1], None, host), {inner[2]: value})
    return [_row(entry, nodes, done_word) for entry in _tree_order(nodes)]


def _take_fields(entry: _Node, outputs: dict[str, object]) -> None:
    vm_id, ip = outputs.get("vm_id"), outputs.get("ip")
    if isinstance(vm_id, int | str) and not isinstance(vm_id, bool):
        entry.vm_id = vm_id
    if isinstance(ip, str) and ip:
        entry.ip = ip


def _tree_order(nodes: dict[str, _Node]) -> list[_Node]:
    """Hosts first, each followed by the nodes nested in it (depth first), else in the
    order they were found."""
    children: dict[str | None, list[_Node]] = {}
    for entry in nodes.values():
        parent = entry.parent if entry.parent in nodes else None
        children.setdefault(parent, []).append(entry)
    out: list[_Node] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        entry = stack.pop()
        out.append(entry)
        stack.extend(reversed(children.get(entry.name, [])))
    return out


def _row(entry: _Node, nodes: dict[str, _Node], done_word: RowStatus) -> NodeRow:
    status, error = _status(entry, nodes, done_word)
    timed = [o.duration for o in entry.outcomes if o.status in ("ok", "failed") or o.duration]
    return NodeRow(
        name=entry.name,
        path=entry.path,
        status=status,
        vm_id=entry.vm_id,
        ip=entry.ip,
        duration=round(sum(timed), 3) if timed else None,
        error=error,
    )


def _status(entry: _Node, nodes: dict[str, _Node], done_word: RowStatus) -> tuple[RowStatus, str]:
    failed = [o for o in entry.outcomes if o.status == "failed"]
    if failed:
        return "failed", failed[0].error
    delegate = entry.delegate
    if delegate is not None and delegate.status == "failed" and not _failed_below(entry, nodes):
        # Its subtree failed, and no nested step says where: reaching the host failed.
        return "failed", delegate.error
    skipped = [o for o in entry.outcomes if o.status == "skipped"]
    if skipped:
        return "skipped", skipped[0].error
    if not entry.outcomes:
        return _inherited(entry, nodes, done_word)
    if all(o.status == "cached" for o in entry.outcomes):
        return "cached", ""
    return done_word, ""


def _inherited(
    entry: _Node, nodes: dict[str, _Node], done_word: RowStatus
) -> tuple[RowStatus, str]:
    """A node no step of which was reported: it shares what its host's delegate did (a
    nested host gone on destroy took its VMs with it; a subtree that never ran skipped
    them), and is unknown when there is no such delegate to ask."""
    host = nodes.get(entry.parent) if entry.parent else None
    delegate = host.delegate if host is not None else None
    if delegate is None:
        return "-", ""
    if delegate.status in ("failed", "skipped"):
        return "skipped", f"{delegate.address} did not succeed"
    return ("cached" if delegate.status == "cached" else done_word), ""


def _failed_below(host: _Node, nodes: dict[str, _Node]) -> bool:
    return any(
        o.status == "failed"
        for entry in nodes.values()
        if host.name in entry.path
        for o in (*entry.outcomes, *((entry.delegate,) if entry.delegate else ()))
    )


TABLE_LIMIT = 40


def node_table(rows: list[NodeRow], *, limit: int = TABLE_LIMIT) -> str:
    """The rows as aligned columns (node, status, vmid, address, duration), `-` for unknown.

    Beyond `limit` rows the cached ones are folded into one line: a no-op re-run of 1,000
    nodes should not scroll 1,000 lines of nothing by. Columns are two spaces apart, so no
    `<digits> cached` run appears that a log scraper could take for the summary's counts.
    No rows, no table: the empty string.
    """
    if not rows:
        return ""  # nothing to tabulate (a destroy of nothing recorded): no bare header
    shown = rows
    folded = 0
    if len(rows) > limit:
        shown = [r for r in rows if r.status != "cached"]
        folded = len(rows) - len(shown)
    table = [("node", "status", "vmid", "address", "duration")]
    for row in shown:
        table.append(
            (
                row.label,
                row.status,
                "-" if row.vm_id is None else str(row.vm_id),
                row.ip or "-",
                "-" if row.duration is None else f"{row.duration:.1f}s",
            )
        )
    widths = [max(len(cells[i]) for cells in table) for i in range(5)]
    lines = []
    for cells in table:
        left = "  ".join(cell.ljust(width) for cell, width in zip(cells[:4], widths, strict=False))
        lines.append(f"  {left}  {cells[4].rjust(widths[4])}")
    if folded:
        lines.append(f"  ... and {folded} cached node(s), not listed")
    return "\n".join(lines)
