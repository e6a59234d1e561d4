"""`pveplan config apply` on a pull-mode node: converge on spec.yaml, mark, report.

The spec becomes a node-local plan (`pveplan.planner.build_node_plan`) run by the ordinary executor
(`run_workspace`) against the node's own store, under the workspace lock, always with
refresh: a cached step is probed first and re-run only if its part of the world drifted.
So a run with nothing drifted runs nothing, and a run after drift repairs exactly that.

What the run did is read from its events, the same ones the store records: a step that
ran (status ok) is *changed*; the scheduler's `drift: ...` log line for a cached step whose
probe found a difference is its *drift*; a kind's `repaired: ...` lines say what it
changed. The outcome goes to the state markers (complete.json or failure.json: they hold
the truth) and, unless told not to, to the spec server as a NodeReport; a report that
cannot be delivered is a warning, never a failed convergence.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec
import trio

from pveplan.planner import (
    Plan,
    SpecDocument,
    SpecError,
    build_node_plan,
    canonical,
    node_workspace,
)
from pveplan.store import StoreError, WorkspaceLocked, open_store

from .._model import Event, RunReport
from .._run import run_workspace
from ..remote._bundle import running_bundle
from ._client import PullClient, PullError
from ._layout import NODE_STORE, LayoutError, PullConfig, node_path, read_pull_config, read_token
from ._node import NodeError
from ._node_services import node_services
from ._node_spec import read_document
from ._node_state import mark_complete, mark_failure
from ._report import NodeReport

DRIFT_PREFIX = "drift: "
REPAIRED_PREFIX = "repaired: "


class ApplyResult(msgspec.Struct, frozen=True, kw_only=True):
    """One convergence: what ran, what had drifted, what each step repaired, or why not."""

    identity: str
    spec_name: str
    spec_hash: str
    instance: str
    status: Literal["converged", "failed"]
    changed: list[str] = msgspec.field(default_factory=list)
    drift: list[str] = msgspec.field(default_factory=list)
    """`ADDRESS: what the probe found`, for each cached step that had drifted."""
    repairs: list[str] = msgspec.field(default_factory=list)
    """`ADDRESS: what was changed`, one per change made."""
    error: str | None = None
    """Every failure in one line (what the report and failure.json carry)."""
    failures: list[str] = msgspec.field(default_factory=list)
    """`ADDRESS: why`, one per failed step."""
    duration: float = 0.0
    warnings: list[str] = msgspec.field(default_factory=list)


class _Collector:
    """The display of the run: keeps its drift and repair lines, passes events on."""

    def __init__(self, display: Callable[[Event], None] | None) -> None:
        self.display = display
        self.drift: list[str] = []
        self.repairs: list[str] = []

    def __call__(self, event: Event) -> None:
        if event.kind == "log":
            if event.message.startswith(DRIFT_PREFIX):
                self.drift.append(f"{event.address}: {event.message[len(DRIFT_PREFIX) :]}")
            elif event.message.startswith(REPAIRED_PREFIX):
                self.repairs.append(f"{event.address}: {event.message[len(REPAIRED_PREFIX) :]}")
        if self.display is not None:
            self.display(event)


def _pull_config() -> PullConfig | None:
    try:
        return read_pull_config()
    except LayoutError:
        return None


def _bundle(pull: PullConfig | None) -> str | None:
    """The installed bundle a converge timer runs: pull.json's, else the running one."""
    if pull is not None:
        return pull.bundle
    running = running_bundle()
    return running.hash if running is not None else None


def config_apply(
    *,
    spec_file: Path | None = None,
    report: bool = True,
    display: Callable[[Event], None] | None = None,
) -> ApplyResult:
    """Converge this node on its saved spec; mark and report the outcome.

    NodeError only when nothing was attempted and nothing should be marked (another run
    holds the workspace: it marks and reports its own outcome); every other failure is a
    `failed` result, with failure.json.
    """
    started = time.time()
    pull = _pull_config()
    instance = pull.instance if pull is not None else ""
    try:
        document = read_document(spec_file)
    except (LayoutError, SpecError) as exc:
        result = ApplyResult(
            identity=pull.identity if pull is not None else "",
            spec_name="",
            spec_hash="",
            instance=instance,
            status="failed",
            error=str(exc),
        )
        return _finish(result, pull, report, started)
    result = _converge(document, instance, _bundle(pull), display)
    return _finish(result, pull, report, started)


def _converge(
    document: SpecDocument,
    instance: str,
    bundle: str | None,
    display: Callable[[Event], None] | None,
) -> ApplyResult:
    base = ApplyResult(
        identity=document.identity,
        spec_name=document.spec_name,
        spec_hash=document.spec_hash,
        instance=instance,
        status="failed",
    )
    try:
        plan = build_node_plan(document, bundle=bundle)
    except SpecError as exc:
        return msgspec.structs.replace(base, error=str(exc))
    collector = _Collector(display)
    try:
        report = _run(plan, document, collector)
    except StoreError as exc:
        if isinstance(exc, WorkspaceLocked):
            raise NodeError(
                f"another convergence of this node is running ({exc.summary}); "
                "it marks and reports its own outcome"
            ) from None
        return msgspec.structs.replace(base, error=str(exc))
    changed = [o.address for o in report.outcomes if o.status == "ok"]
    failed = [f"{o.address}: {o.error}" for o in report.outcomes if o.status == "failed"]
    return msgspec.structs.replace(
        base,
        status="converged" if report.status == "ok" else "failed",
        changed=changed,
        drift=_in_plan_order(plan, collector.drift),
        repairs=_in_plan_order(plan, collector.repairs),
        error="; ".join(failed) or (None if report.status == "ok" else "the run failed"),
        failures=failed,
    )


def _in_plan_order(plan: Plan, lines: list[str]) -> list[str]:
    """`ADDRESS: ...` lines sorted by their step's place in the plan (steps run
    concurrently, so events arrive in any order), each step's own lines kept in order."""
    order = {step.address: index for index, step in enumerate(plan.steps)}
    return sorted(lines, key=lambda line: order.get(line.partition(": ")[0], len(order)))


def _run(plan: Plan, document: SpecDocument, collector: _Collector) -> RunReport:
    """Run the node plan against the node's store, holding the workspace lock."""
    name = node_workspace(document.identity)
    with open_store(node_path(NODE_STORE)) as store, store.lock_workspace(name):
        plan_object = store.put_object(canonical(plan))
        services = node_services(store, name, document.identity, document.secrets)
        run = functools.partial(run_workspace, plan, plan_object, services, collector, refresh=True)
        return trio.run(run)


def _finish(
    result: ApplyResult, pull: PullConfig | None, report: bool, started: float
) -> ApplyResult:
    result = msgspec.structs.replace(result, duration=round(time.time() - started, 3))
    warnings: list[str] = []
    try:
        if result.status == "converged":
            mark_complete(result.spec_hash, result.instance, result.changed, result.drift)
        else:
            mark_failure("config", result.error or "failed")
    except OSError as exc:
        warnings.append(f"cannot write the state marker: {exc.strerror or exc} ({exc.filename})")
    if report:
        warning = _report(result, pull)
        if warning is not None:
            warnings.append(warning)
    return msgspec.structs.replace(result, warnings=warnings)


def _report(result: ApplyResult, pull: PullConfig | None) -> str | None:
    """POST the outcome to the spec server; a warning when it could not be delivered."""
    if pull is None:
        return "not reporting: no pull.json (this node has no spec server)"
    node_report = NodeReport(
        identity=result.identity or pull.identity,
        instance=result.instance,
        spec_hash=result.spec_hash,
        status=result.status,
        changed=result.changed,
        drift=result.drift,
        error=result.error,
        duration=result.duration,
    )
    try:
        token = read_token()
        with PullClient(pull.server, pull.fingerprint, token=token) as client:
            client.post_json(f"/report/{node_report.identity}", node_report)
    except (PullError, LayoutError) as exc:
        return f"the report was not delivered (the state markers have it): {exc}"
    return None
