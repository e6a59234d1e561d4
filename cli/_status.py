"""`pveplan status -M X -H HOST`: the health of an applied lab, changing nothing.

Every node's live state (from the one listing of the host that `plan` probes with; with
`--refresh=full` also each applied VM's config, as `plan --refresh=full` reads it) against
what the store records as applied: in sync, drifted (each field, live and wanted), missing,
never applied, or on a host that did not answer (named, with why). Nested levels are
probed by their own hosts' executors (`executor.probe_nested`), the same way; a node under
a nested host that did not answer is unreachable, with that host named, and one under an
executor too old to know the probe is not probed, with what to do. It also says when the
manifest has changes not applied yet (`pveplan plan` shows them).

Exit codes: 0 (every node answered); 1 an error, or a host (the plan's own, or a nested
one) did not answer; with `--detailed-exitcode`, 2 when anything differs (drift, missing,
not applied, manifest changes) and every host answered.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

import msgspec

from pveplan.planner import diff_plans, node_statuses, summarize

from ._drift import full_refresh, probe_all
from ._plan import make_plan
from ._state import applied_resources

if TYPE_CHECKING:
    from pveplan.planner import Drift, LevelProbe, LiveHost, NodeStatus

    from . import Console

LABELS = {
    "in_sync": "in sync",
    "drift": "drifted",
    "missing": "missing",
    "not_applied": "not applied",
    "not_probed": "not probed",
    "unreachable": "unreachable",
}


def run_status(args: argparse.Namespace, console: Console) -> int:
    plan_file, old, site = make_plan(args, console)
    plan = plan_file.plan
    workspace = plan_file.header.workspace
    resources = applied_resources(console, workspace)
    live: list[LiveHost] = []
    drift: tuple[Drift, ...] = ()
    levels: tuple[LevelProbe, ...] = ()
    failures: list[str] = []
    steps = {s.address: s.hash for s in old.steps} if old is not None else None
    if resources:  # one listing per host; a host that does not answer is named
        probed = probe_all(
            console,
            site,
            plan,
            workspace,
            resources,
            steps,
            full=full_refresh(args),
            keep_going=True,
        )
        live, drift, levels, failures = probed
    unreachable = "; ".join(failures)
    nodes = node_statuses(plan, live, resources, drift, levels)
    lost = tuple(
        f"nested host {' › '.join(lv.path)} did not answer: {lv.reason}"
        for lv in levels
        if lv.state == "unreachable"
    )
    pending = summarize(diff_plans(plan, old)) if old is not None else None
    manifest_changes = pending is not None and pending.changes
    counts = {state: sum(1 for n in nodes if n.state == state) for state in LABELS}
    if getattr(args, "json", False):
        report = {
            "format": "pveplan-status/1",
            "workspace": workspace,
            "host": plan.host,
            "reachable": not unreachable,
            "unreachable": unreachable or None,
            "nested": [
                {"path": list(lv.path), "state": lv.state, "reason": lv.reason or None}
                for lv in levels
            ],
            "applied": old.hash if old is not None else None,
            "manifest_changes": bool(manifest_changes),
            "summary": counts,
            "nodes": [msgspec.to_builtins(n) for n in nodes],
        }
        console.print(json.dumps(report, indent=2, sort_keys=True))
    else:
        _print_text(console, workspace, nodes, counts, unreachable, old is not None)
        for line in lost:
            console.error(f"error: {line}")
        if manifest_changes:
            console.print("The manifest has changes not applied yet: `pveplan plan` shows them.")
    if unreachable or lost:
        return 1
    differs = manifest_changes or any(counts[s] for s in ("drift", "missing", "not_applied"))
    return 2 if getattr(args, "detailed_exitcode", False) and differs else 0


def _print_text(
    console: Console,
    workspace: str,
    nodes: tuple[NodeStatus, ...],
    counts: dict[str, int],
    unreachable: str,
    applied: bool,
) -> None:
    style = console.style
    console.print(style.bold(f"pveplan status: {workspace}"))
    if not applied:
        console.print("Nothing is applied to this workspace.")
    rows = [("NODE", "TYPE", "HOST", "VMID", "LIVE", "STATE")]
    rows += [
        (n.name, n.type, n.host, str(n.vmid or "-"), n.live or "-", LABELS[n.state]) for n in nodes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        console.print(style.bold(line.rstrip()) if index == 0 else line.rstrip())
        node = nodes[index - 1] if index else None
        for detail in node.detail if node is not None else ():
            console.print(f"    {detail}")
    if unreachable:
        console.error(f"error: {unreachable}")
    named = ", ".join(n.name for n in nodes if n.state == "unreachable")
    if named:
        console.print(f"Unreachable: {named}.")
    parts = [f"{counts[state]} {LABELS[state]}" for state in LABELS if counts[state]]
    console.print(f"{len(nodes)} node(s): {', '.join(parts) or 'none'}.")
