"""How a homestak verb (`create`, `destroy`, `test`) ends: its report.

Every node of the manifest with iac-driver's status, in create order (`_homestak_report`),
printed as JSON or a table and written to the report directory (`_report_files`). Kept
apart from `_apply`, which runs the verbs, so each module keeps one job.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from pveplan.planner import Plan, PlanError

if TYPE_CHECKING:
    from pveplan.executor import RunReport

    from . import Console
    from ._apply import Prepared
    from ._homestak_report import NodeResult, Phase


def homestak_end(
    args: argparse.Namespace,
    console: Console,
    prepared: Prepared,
    verb: str,
    report: RunReport,
    plan: Plan,
    started: float,
    *,
    layout: Plan | None = None,
    success: bool | None = None,
    phases: tuple[Phase, ...] = (),
    error: str | None = None,
    nodes: list[NodeResult] | None = None,
) -> int:
    """End a homestak verb: every node of the manifest with iac-driver's status, in create
    order (`_homestak_report`), printed as JSON or a table and written to `reports/`
    (`_report_files`); the exit code."""
    from ._homestak_report import verb_report
    from ._report_files import emit_report, subject_of

    if nodes is None:
        nodes = verb_nodes(args, console, prepared, report, plan, layout=layout)
    ok = report.status == "ok" if success is None else success
    extra = {"phases": [_phase_json(p) for p in phases]} if phases else {}
    typed = getattr(args, "report_verb", None) or verb  # `manifest apply`: apply
    data = verb_report(typed, ok, time.time() - started, nodes, error=error, **extra)
    return emit_report(
        args,
        console,
        data,
        host=plan.host,
        subject=subject_of(verb, plan.manifest),
        started=started,
        phases=phases,
        nodes=nodes,
        title=f"manifest-{verb}-{plan.manifest}",
    )


def verb_nodes(
    args: argparse.Namespace,
    console: Console,
    prepared: Prepared,
    report: RunReport,
    plan: Plan,
    *,
    layout: Plan | None = None,
) -> list[NodeResult]:
    from ._homestak_report import report_nodes

    order = node_order(args, console, prepared)
    return report_nodes(report, plan, layout=layout, order=order, destroy=plan.action == "destroy")


def _phase_json(phase: Phase) -> dict[str, Any]:
    return {"name": phase.name, "status": phase.status, "duration": round(phase.duration, 1)}


def node_order(
    args: argparse.Namespace, console: Console, prepared: Prepared
) -> list[tuple[str, str | None]] | None:
    """The manifest's node order (a saved plan's manifest is found as `_manifest_of` does)."""
    from ._apply import _manifest_of
    from ._homestak_report import manifest_order

    path = None
    if prepared.saved:
        try:
            path = str(_manifest_of(args, console, prepared.plan_file, prepared.site.root))
        except PlanError:
            return None
    return manifest_order(args, console, path)
