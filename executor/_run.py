"""One `apply` or `destroy` of a workspace: lock, run record, events, applied state.

Around the scheduler (`_scheduler.execute`), this is the part Terraform calls "the
command": it holds the workspace lock for the whole run, destroys the live resources the
new plan no longer has, runs the plan, writes every event to the store's run record (in
batches: thousands of cached steps would otherwise cost thousands of fsyncs), and, when
everything succeeded, records the plan as the workspace's applied state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import msgspec
import trio

from pveplan.planner import Plan, Step
from pveplan.store import Resource, RunEvent

from ._context import Services
from ._model import Event, Outputs, RunReport
from ._scheduler import HOST_OUTPUT, destroy_resources, execute
from ._snapshots import remove_snapshots

FLUSH_EVERY = 0.25
_STORE_KINDS = {"started", "finished", "cached", "failed", "log"}


class EventLog:
    """Buffers events and writes them to the run record in batches (and at the end)."""

    def __init__(self, services: Services, run_id: int, display: Callable[[Event], None]) -> None:
        self.services = services
        self.run_id = run_id
        self.display = display
        self.pending: list[RunEvent] = []

    def emit(self, event: Event) -> None:
        self.display(event)
        kind = event.kind if event.kind in _STORE_KINDS else "log"
        message = event.message if event.kind in _STORE_KINDS else f"{event.kind}: {event.message}"
        self.pending.append(
            RunEvent(
                address=event.address,
                kind=kind,  # type: ignore[arg-type]
                message=message,
                at=event.at,
                duration=event.duration,
                host=" › ".join(event.path) or event.host,
            )
        )

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        if batch:
            self.services.store.add_events(self.run_id, batch)

    async def flusher(self) -> None:
        while True:  # cancelled by the run's nursery when the run ends
            await trio.sleep(FLUSH_EVERY)
            await trio.to_thread.run_sync(self.flush)


def resource_step(
    host: str, address: str, kind: str, outputs: Mapping[str, Any]
) -> tuple[Step, Outputs]:
    """A live resource as a step its kind can destroy, rebuilt from its outputs (name, vm_id)."""
    step = Step(
        address=address,
        kind=kind,
        kind_version=1,
        host=host,
        args={"name": outputs.get("name"), "vmid": outputs.get("vm_id")},
        hash="",
    )
    return step, dict(outputs)


def resource_host(default: str, outputs: Mapping[str, Any]) -> str:
    """The host a live resource is on: the one recorded with it, else its plan's."""
    return str(outputs.get(HOST_OUTPUT) or default)


def removed_resources(
    services: Services, plan: Plan, live: Sequence[Resource] | None = None
) -> list[tuple[Step, Outputs]]:
    """Live resources of the workspace (`live`, else read now) that `plan` no longer
    has, newest first."""
    wanted = {step.address for step in plan.steps}
    if live is None:
        live = services.store.resources(services.workspace)
    return [
        resource_step(resource_host(plan.host, r.outputs), r.address, r.kind, r.outputs)
        for r in reversed(live)
        if r.address not in wanted
    ]


async def run_workspace(
    plan: Plan,
    plan_object: str | None,
    services: Services,
    display: Callable[[Event], None],
    *,
    verb: Literal["apply", "destroy"] = "apply",
    parallelism: int | None = None,
    refresh: bool = False,
    running: dict[str, float] | None = None,
) -> RunReport:
    """Run `plan` on its workspace (the caller holds the workspace lock).

    `plan_object` is the stored object of the plan file (None for a destroy plan, which
    is not kept). On success an apply records `plan` as applied; a destroy clears it.
    A targeted plan (`plan.targets`, from `-target`) is a partial view: it destroys no
    resource it does not name and leaves the applied state as it was.
    """
    partial = bool(plan.targets)
    store = services.store
    run_id = store.start_run(services.workspace, plan.hash, verb)
    log = EventLog(services, run_id, display)
    report: RunReport | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(log.flusher)
            removed: list[str] = []
            removal_errors: list[str] = []
            # Read once: the scheduler reuses it when nothing was removed (the workspace
            # lock keeps other runs from changing it meanwhile).
            live: Sequence[Resource] | None = store.resources(services.workspace)
            if verb == "apply" and not partial:
                gone = removed_resources(services, plan, live)
                if gone:
                    live = None  # changed by the removal: the scheduler reads it again
                    removed, removal_errors = await destroy_resources(services, gone, log.emit)
            report = await execute(
                plan,
                services,
                log.emit,
                run_id=run_id,
                parallelism=parallelism,
                refresh=refresh,
                running=running,
                live=live,
            )
            if verb == "apply" and report.status == "ok":
                await remove_snapshots(services, log.emit)
            if verb == "destroy" and not partial:  # what failed runs left behind
                removed, removal_errors = await destroy_resources(
                    services, removed_resources(services, plan), log.emit
                )
            if removal_errors:
                report = msgspec.structs.replace(report, status="failed")
            report = msgspec.structs.replace(report, removed=tuple(removed))
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(log.flush)
            status = "interrupted" if report is None else report.status
            await trio.to_thread.run_sync(store.finish_run, run_id, status)
    if report.status == "ok" and not partial:
        if verb == "apply" and plan_object is not None:
            store.put_plan(plan.hash, plan_object, services.workspace)
            store.set_applied(
                services.workspace, plan.hash, {s.address: s.hash for s in plan.steps}
            )
        elif verb == "destroy":
            store.clear_applied(services.workspace)
    return report
