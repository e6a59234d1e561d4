"""The executor end of the protocol: `pveplan executor --stdio` on a nested host.

One session runs one subplan: read the driver's `hello`, answer with ours, read the `plan`,
re-hash it (a plan that does not match its hash is refused: whatever changed it in transit
or on disk, it is not what was reviewed), then run it against this host's own store with the
same scheduler and caching as the driver, streaming every event back. The run ends with a
`result` frame. If the driver goes away (stdin ends) the run is cancelled: what finished is
already recorded, so the next session resumes from this store's cache. A session may bring
a `probe` instead of a plan (protocol 2): the same subplan, read but never run, answered
with this level's drift and that of the levels below (`_probe.probe_level`).

`_home.serve_stdio` (what `pveplan executor --stdio` calls) hands in the byte streams, the
open store, and a factory for `Services` (SSH pool, host access, keys): this module only
speaks the protocol and drives `run_workspace`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import msgspec
import trio

from pveplan.executor._live import with_level_drift
from pveplan.executor._model import Event, RunReport
from pveplan.executor._run import run_workspace

from ._protocol import (
    HEARTBEAT_EVERY,
    PROTOCOL_VERSION,
    ErrorFrame,
    EventFrame,
    Failure,
    FrameStream,
    Heartbeat,
    Hello,
    PlanFrame,
    ProbedFrame,
    ProbeFrame,
    ProtocolError,
    ResultFrame,
    RunOptions,
    check_hello,
)

if TYPE_CHECKING:
    from pveplan.executor._context import Services
    from pveplan.planner import Plan
    from pveplan.store import Store

HELLO_TIMEOUT = 30.0
"""Seconds the executor waits for the driver's first frames before giving up."""
LOCK_WAIT = 15.0
"""Seconds to wait for the workspace lock: a session the driver just lost may still be
winding down (its process group is being killed) when the re-run arrives."""
OpenServices = Callable[["Plan", RunOptions], AbstractAsyncContextManager["Services"]]


def decode_plan(frame: PlanFrame | ProbeFrame) -> Plan:
    """The plan in `frame`, re-hashed: any difference from its claimed hash is refused."""
    from pveplan.planner import Plan, verify_plan

    try:
        plan = msgspec.json.decode(frame.plan, type=Plan)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"the subplan does not decode: {exc}") from None
    problems = verify_plan(plan)
    if problems:
        raise ProtocolError(
            "refusing the subplan: it does not match its hashes (changed in transit?): "
            + "; ".join(problems[:3])
        )
    if plan.hash != frame.hash:
        raise ProtocolError(
            f"refusing the subplan: its hash is {plan.hash}, the driver sent {frame.hash}"
        )
    return plan


async def serve(
    stream: FrameStream,
    store: Store,
    open_services: OpenServices,
    *,
    version: str,
    bundle: str = "",
) -> int:
    """Run one session on `stream`; the exit status for the process (0: the run was ok)."""
    try:
        with trio.fail_after(HELLO_TIMEOUT):
            first = await stream.next()
            if first is None:
                return 2  # the driver left before saying anything: nothing to do
            check_hello(first, "driver", version)
            await stream.send(
                Hello(
                    protocol=PROTOCOL_VERSION,
                    pveplan=version,
                    role="executor",
                    store_id=store.store_id,
                    bundle=bundle,
                )
            )
            frame = await stream.next()
        if not isinstance(frame, PlanFrame | ProbeFrame):
            got = "the end of the stream" if frame is None else type(frame).__name__
            raise ProtocolError(f"expected the plan, got {got}")
        plan = decode_plan(frame)
    except trio.TooSlowError:
        await _say_error(stream, f"no plan from the driver within {HELLO_TIMEOUT:g}s")
        return 2
    except ProtocolError as exc:
        await _say_error(stream, str(exc))
        return 2
    if isinstance(frame, ProbeFrame):
        return await _probe(stream, open_services, plan)
    return await _run(stream, store, open_services, plan, frame.options)


async def _probe(stream: FrameStream, open_services: OpenServices, plan: Plan) -> int:
    """Answer a probe: this level's drift and the levels' below it; heartbeats meanwhile
    (a deep tree takes a Python start per level). Changes nothing, so takes no lock."""
    from ._probe import probe_level

    async def heartbeat() -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            while True:
                await trio.sleep(HEARTBEAT_EVERY)
                await stream.send(Heartbeat(at=time.time()))

    error = ""
    levels: tuple = ()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(heartbeat)
        try:
            async with open_services(plan, RunOptions()) as services:
                levels = await probe_level(services, plan)
        except Exception as exc:  # its site config, its PVE, its store: the driver shows why
            error = f"{plan.host}: {exc}"
        nursery.cancel_scope.cancel()
    if error:
        await _say_error(stream, error)
        return 1
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        await stream.send(ProbedFrame(levels=levels))
        return 0
    return 1  # the driver is gone


async def _say_error(stream: FrameStream, message: str) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        await stream.send(ErrorFrame(message=message))


@contextlib.asynccontextmanager
async def _workspace_lock(store: Store, workspace: str) -> AsyncIterator[None]:
    from pveplan.store import WorkspaceLocked

    deadline = trio.current_time() + LOCK_WAIT
    while True:
        lock = store.lock_workspace(workspace)
        try:
            lock.__enter__()
            break
        except WorkspaceLocked:
            if trio.current_time() >= deadline:
                raise
            await trio.sleep(0.2)
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


async def _run(
    stream: FrameStream,
    store: Store,
    open_services: OpenServices,
    plan: Plan,
    options: RunOptions,
) -> int:
    from pveplan.planner import canonical, workspace_name

    workspace = workspace_name(plan.manifest, plan.host)
    send_events, receive_events = trio.open_memory_channel[Event](math.inf)
    report: RunReport | None = None
    run_id = 0

    def emit(event: Event) -> None:
        send_events.send_nowait(event)

    async def forward_events() -> None:
        async with receive_events:
            async for event in receive_events:
                await stream.send(EventFrame(event=event))

    async def heartbeat() -> None:
        while True:
            await trio.sleep(HEARTBEAT_EVERY)
            await stream.send(Heartbeat(at=time.time()))

    async def watch_driver(cancel: trio.CancelScope) -> None:
        """Anything but silence from the driver now means it is gone: stop the run."""
        with contextlib.suppress(ProtocolError, trio.BrokenResourceError, OSError):
            await stream.next()
        cancel.cancel()

    try:
        async with _workspace_lock(store, workspace), open_services(plan, options) as services:
            verb = "destroy" if plan.action == "destroy" else options.verb
            services.probe_live = options.probe_live  # and the levels below this one
            if verb == "apply" and options.probe_live:
                plan = await with_level_drift(plan, services, emit)
            plan_object = store.put_object(canonical(plan)) if plan.action == "apply" else None
            async with trio.open_nursery() as nursery:
                nursery.start_soon(forward_events)
                with trio.CancelScope() as run_scope:
                    async with trio.open_nursery() as helpers:
                        helpers.start_soon(heartbeat)
                        helpers.start_soon(watch_driver, run_scope)
                        report = await run_workspace(
                            plan,
                            plan_object,
                            services,
                            emit,
                            verb=verb,
                            parallelism=options.parallelism,
                            refresh=options.refresh,
                        )
                        helpers.cancel_scope.cancel()
                send_events.close()  # forward_events drains what is left, then ends
            runs = store.runs(workspace, limit=1)
            run_id = runs[0].id if runs else 0
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return 1  # the driver is gone; the run record says "interrupted"
    except Exception as exc:  # setting up: site config, node file, keys, store
        await _say_error(stream, f"{plan.host}: {exc}")
        return 1
    if report is None:
        return 1  # cancelled because the driver left
    await stream.send(result_frame(report, plan, run_id))
    return 0 if report.status == "ok" else 1


def result_frame(report: RunReport, plan: Plan, run_id: int) -> ResultFrame:
    """The frame that ends a session: counts, outputs of what succeeded, what failed."""
    outputs = {o.address: o.outputs for o in report.outcomes if o.status in ("ok", "cached")}
    failures = tuple(
        Failure(address=o.address, host=plan.host, message=o.error)
        for o in report.outcomes
        if o.status == "failed"
    )
    return ResultFrame(
        status=report.status,
        run_id=run_id,
        ran=report.count("ok"),
        cached=report.count("cached"),
        failed=report.count("failed"),
        skipped=report.count("skipped"),
        outputs=outputs,
        failures=failures,
        rolled_back=report.rolled_back,
        removed=report.removed,
    )
