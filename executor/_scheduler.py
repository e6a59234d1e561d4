"""Run a plan's DAG with trio: every ready step at once, up to the parallelism.

Each step is a task that waits for the steps it depends on, then either reuses a recorded
result (its run key has a successful one in the store: "cached") or runs its kind's
`apply` under a timeout and records the result durably *before* its dependents may start
(steps finishing together share one commit: `_recorder`).
A killed run therefore loses nothing that finished, and the re-run picks up where it was.

The run key of a step is hash(step hash, the values its refs resolved to, the outputs of
every step it depends on). A VM re-created with a new identity (a new `uuid` output)
therefore re-runs everything downstream of it, while an unchanged world stays cached.

`on_error` (DESIGN.md): `stop` lets running steps finish and starts nothing new;
`continue` skips only the dependents of what failed; `rollback` stops, then destroys
what this run created (resource kinds, including a create that failed half-way), in
reverse order of completion.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec
import trio

from pveplan.planner import (
    STEP_ARGS,
    Plan,
    Step,
    StepArgs,
    StepArgsError,
    args_of,
    canonical,
    digest,
    drift_reruns,
)
from pveplan.store import Resource, StepResult

from ._context import Services, StepContext
from ._import import adopted_key
from ._kinds import StepKind, kind_for
from ._model import Event, Outcome, Outputs, RunReport, StepFailed
from ._recorder import GroupCommit

Emit = Callable[[Event], None]


def run_key(step: Step, ref_values: Mapping[str, Any], upstream: Mapping[str, Outputs]) -> str:
    """The cache key of one execution of `step` given what its inputs turned out to be."""
    return _run_key(step, ref_values, {a: outputs_digest(out) for a, out in upstream.items()})


def outputs_digest(outputs: Outputs) -> str:
    """The digest of a step's outputs as its dependents' run keys hash them."""
    return digest(canonical(outputs))


def _run_key(step: Step, ref_values: Mapping[str, Any], upstream: Mapping[str, str]) -> str:
    """`run_key` from the upstream outputs' digests (`outputs_digest`), which a run
    computes once per step instead of once per dependent."""
    return digest(canonical({"step": step.hash, "refs": dict(ref_values), "upstream": upstream}))


def upstream_of(step: Step) -> tuple[str, ...]:
    """The steps `step` waits for: its deps and the steps its refs read."""
    return tuple(dict.fromkeys((*step.deps, *step.ref_addresses())))


HOST_OUTPUT = "host"
"""Recorded with a resource made on a host other than its plan's (a node placed with
`host:`), so that destroying it later, when no plan names it any more, finds the host."""


class _Run:
    """The mutable bookkeeping of one run (one plan level), owned by `execute`."""

    def __init__(
        self,
        plan: Plan,
        services: Services,
        emit: Emit,
        *,
        live: Sequence[Resource],
        run_id: int | None,
        parallelism: int,
        refresh: bool,
        on_error: str,
    ) -> None:
        self.plan = plan
        self.services = services
        self.emit = emit
        self.run_id = run_id
        self.host = plan.host
        self.refresh = refresh
        # Steps that converge the drift the plan's probe found: never taken from the cache.
        self.rerun = drift_reruns(plan)
        self.on_error = on_error
        self.limiter = trio.CapacityLimiter(max(1, parallelism))
        self.done: dict[str, trio.Event] = {}  # per step left to a task (`execute`)
        self.outcomes: dict[str, Outcome] = {}
        self.outputs: dict[str, Outputs] = {}
        self.digests: dict[str, str] = {}  # address -> outputs_digest (`_digest`), memo
        self.running: dict[str, float] = {}
        self.created: list[tuple[Step, StepArgs, Outputs]] = []  # resource steps this run ran
        self.stopping = False
        self.live: dict[str, Outputs] = {r.address: dict(r.outputs) for r in live}
        self.recorder = GroupCommit(services.store, services.workspace)
        # Every recorded result of this plan's steps, read once: a step then finds its run
        # key here instead of asking the store (a round trip each, on PostgreSQL).
        self.recorded = services.store.results_for(step.address for step in plan.steps)

    # --- the steps the store answers -------------------------------------------------

    def settle_cached(self) -> None:
        """Decide, in plan order and without a task each, every step whose inputs are
        already known and whose result the store holds: a no-op apply of thousands of
        steps costs a dictionary lookup per step, not a trio task, an event and a slot
        of the limiter. The rule is `_cached_result`'s, as in the task path; anything
        else (a step to run, to probe, to fail or to skip) is left to the tasks, which
        decide it as before."""
        if self.refresh:
            return  # every cached step is probed: that is I/O, done by the tasks
        outputs = self.outputs  # the steps that succeeded so far
        kinds: dict[str, StepKind | None] = {}
        for step in self.plan.steps:
            if not all(a in outputs for a in step.deps):
                continue
            refs: dict[str, Any] | None = {}
            upstream = dict.fromkeys(step.deps)
            for name, ref in step.refs.items():
                address, _, output = ref.partition("#")
                produced = outputs.get(address)
                if produced is None or output not in produced:
                    refs = None  # not succeeded, or no such output: the task decides
                    break
                refs[name] = produced[output]
                upstream[address] = None
            if refs is None or step.address in self.rerun:
                continue
            kind = (
                kinds[step.kind]
                if step.kind in kinds
                else kinds.setdefault(step.kind, kind_for(step.kind))
            )
            args_type = None if kind is None else kind.args_type or STEP_ARGS.get(step.kind)
            if kind is None or args_type is None:
                continue
            try:  # what the task path refuses (`args_of`), it still refuses
                msgspec.convert(step.args, args_type)
            except msgspec.ValidationError:
                continue
            key = _run_key(step, refs, {a: self._digest(a) for a in upstream})
            result = self._cached_result(step, kind, key)
            if result is not None:
                self._reuse(step, result)

    # --- one step --------------------------------------------------------------------

    async def step(self, step: Step) -> None:
        try:
            await self._step(step)
        finally:
            self.done[step.address].set()

    async def _step(self, step: Step) -> None:
        upstream = upstream_of(step)
        for address in upstream:
            if address not in self.outcomes:  # else decided already (`settle_cached`)
                await self.done[address].wait()
        blocked = [a for a in upstream if self.outcomes[a].status in ("failed", "skipped")]
        if blocked:
            self._finish(
                step,
                Outcome(
                    address=step.address, status="skipped", error=f"{blocked[0]} did not succeed"
                ),
            )
            return
        if self.stopping:
            self._finish(
                step,
                Outcome(
                    address=step.address, status="skipped", error="not started: the run is stopping"
                ),
            )
            return
        kind = kind_for(step.kind)
        if kind is None:
            self._fail(
                step,
                f"unknown step kind {step.kind!r} (this pveplan is too old for the plan?)",
                0.0,
            )
            return
        try:
            args = args_of(step, kind.args_type)  # decoded once: the kind reads `ctx.args`
        except StepArgsError as exc:
            self._fail(step, str(exc), 0.0)
            return
        try:
            refs = self._resolve(step)
        except StepFailed as exc:
            self._fail(step, str(exc), 0.0)
            return
        key = _run_key(step, refs, {a: self._digest(a) for a in upstream})
        async with self.limiter:
            if self.stopping:
                self._finish(
                    step,
                    Outcome(
                        address=step.address,
                        status="skipped",
                        error="not started: the run is stopping",
                    ),
                )
                return
            ctx = StepContext(self.services, step, self.emit, self.plan, args)
            if await self._cached(ctx, kind, key, refs):
                return
            await self._run(ctx, kind, key, refs)

    def _resolve(self, step: Step) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, ref in step.refs.items():
            address, _, output = ref.partition("#")
            outputs = self.outputs.get(address, {})
            if output not in outputs:
                raise StepFailed(f"{address} produced no output {output!r}, which this step needs")
            values[name] = outputs[output]
        return values

    async def _cached(
        self, ctx: StepContext, kind: StepKind, key: str, refs: Mapping[str, Any]
    ) -> bool:
        step = ctx.step
        result = self._cached_result(step, kind, key)
        if result is None:
            return False
        if step.address in self.rerun:
            ctx.log("drift: the live VM moved since the last apply; running again to converge")
            return False
        if self.refresh:
            try:
                with trio.fail_after(kind.timeout(ctx.args)):
                    drift = await kind.probe(ctx, step, refs, result.outputs)
            except (Exception, trio.TooSlowError) as exc:
                drift = f"probe failed: {exc}"
            if drift is not None:
                ctx.log(f"drift: {drift}")
                return False
        self._reuse(step, result)
        return True

    def _cached_result(self, step: Step, kind: StepKind, key: str) -> StepResult | None:
        """The recorded success `step` may reuse under run key `key`, if any (before the
        drift and probe checks)."""
        if not kind.cacheable:
            return None
        result = self.recorded.get(key)
        if result is None and kind.resource:  # adopted by `pveplan import` (see _import)
            result = self.recorded.get(adopted_key(step))
        if result is None or result.status != "ok":
            return None
        if kind.resource and step.address not in self.live:
            return None  # destroyed since (or rolled back): the record is history
        return result

    def _reuse(self, step: Step, result: StepResult) -> None:
        outputs = dict(result.outputs)
        self._succeeded(step.address, outputs)
        self._finish(step, Outcome(address=step.address, status="cached", outputs=outputs))

    def _succeeded(self, address: str, outputs: Outputs) -> None:
        self.outputs[address] = outputs

    def _digest(self, address: str) -> str:
        """`outputs_digest` of a step that succeeded, computed once, when a dependent
        first needs it."""
        found = self.digests.get(address)
        if found is None:
            found = self.digests[address] = outputs_digest(self.outputs[address])
        return found

    async def _run(
        self, ctx: StepContext, kind: StepKind, key: str, refs: Mapping[str, Any]
    ) -> None:
        step = ctx.step
        started = time.time()
        self.running[step.address] = started
        self.emit(Event(address=step.address, kind="started", host=step.host, at=started))
        outputs: Outputs = {}
        error = ""
        try:
            with trio.fail_after(kind.timeout(ctx.args)):
                outputs = dict(await kind.apply(ctx, step, refs))
        except trio.TooSlowError:
            error = f"timed out after {kind.timeout(ctx.args):g} s"
        except StepFailed as exc:
            error, outputs = str(exc), dict(exc.outputs)
        except Exception as exc:  # a kind's bug or an environment failure: report, don't crash
            error = _describe(exc)
        finally:
            self.running.pop(step.address, None)
        finished = time.time()
        status = "failed" if error else "ok"
        result = StepResult(
            run_key=key,
            step_hash=step.hash,
            address=step.address,
            kind=step.kind,
            status=status,
            outputs=outputs,
            error=error,
            run_id=self.run_id,
            started=started,
            finished=finished,
        )
        live = kind.resource and bool(outputs or not error)
        # A resource on another host than the plan's (`host:`) is recorded with its host,
        # so that destroying it once no plan names it still finds it.
        kept = outputs if step.host == self.host else {**outputs, HOST_OUTPUT: step.host}
        with trio.CancelScope(shield=True):  # what finished is recorded, even on Ctrl-C
            await self.recorder.record(result, kept if live else None)
        if live:
            self.live[step.address] = outputs
        if kind.resource:
            self.created.append((step, ctx.args, outputs))
        duration = finished - started
        if error:
            self._fail(step, error, duration, outputs)
        else:
            self._succeeded(step.address, outputs)
            # A delegate whose remote level changed nothing counts as cached, like its steps.
            status = "cached" if kind.unchanged(outputs) else "ok"
            self._finish(
                step,
                Outcome(address=step.address, status=status, outputs=outputs, duration=duration),
            )

    # --- bookkeeping -----------------------------------------------------------------

    def _fail(
        self, step: Step, error: str, duration: float, outputs: Outputs | None = None
    ) -> None:
        self._finish(
            step,
            Outcome(
                address=step.address,
                status="failed",
                error=error,
                duration=duration,
                outputs=outputs or {},
            ),
        )
        if self.on_error in ("stop", "rollback"):
            self.stopping = True

    def _finish(self, step: Step, outcome: Outcome) -> None:
        self.outcomes[step.address] = outcome
        kind = {"ok": "finished"}.get(outcome.status, outcome.status)
        # Steps that ran were timed; so was a delegate reported cached (its level ran).
        timed = outcome.status in ("ok", "failed") or outcome.duration > 0
        self.emit(
            Event(
                address=step.address,
                kind=kind,  # type: ignore[arg-type]
                host=step.host,
                at=time.time(),
                message=outcome.error,
                duration=outcome.duration if timed else None,
            )
        )

    async def rollback(self) -> list[str]:
        """Destroy what this run created, newest first; the addresses destroyed."""
        undone: list[str] = []
        for step, args, outputs in reversed(self.created):
            kind = kind_for(step.kind)
            assert kind is not None
            ctx = StepContext(self.services, step, self.emit, self.plan, args)
            ctx.log("rollback: destroying what this run created")
            await trio.to_thread.run_sync(
                self.services.store.remove_resource, self.services.workspace, step.address
            )
            self.live.pop(step.address, None)
            try:
                with trio.fail_after(kind.timeout(args)):
                    await kind.destroy(ctx, step, outputs)
            except (Exception, trio.TooSlowError) as exc:
                ctx.log(f"rollback of {step.address} failed: {_describe(exc)}")
                continue
            undone.append(step.address)
        return undone


def _describe(exc: BaseException) -> str:
    """An error as one line for the user (its message, else its type's name)."""
    return str(exc) or type(exc).__name__


async def execute(
    plan: Plan,
    services: Services,
    emit: Emit,
    *,
    run_id: int | None = None,
    parallelism: int | None = None,
    refresh: bool = False,
    on_error: str | None = None,
    running: dict[str, float] | None = None,
    live: Sequence[Resource] | None = None,
) -> RunReport:
    """Run `plan` (one level; delegate steps run subplans elsewhere) and report.

    `running` (optional) is kept up to date with the steps in flight, so a caller that is
    interrupted can say what was running. `live` is the workspace's resources when the
    caller has just read them under the workspace lock (else they are read here).
    """
    run = _Run(
        plan,
        services,
        emit,
        live=services.store.resources(services.workspace) if live is None else live,
        run_id=run_id,
        parallelism=parallelism or plan.settings.parallelism,
        refresh=refresh,
        on_error=on_error or plan.settings.on_error,
    )
    if running is not None:
        run.running = running
    run.settle_cached()
    left = [step for step in plan.steps if step.address not in run.outcomes]
    run.done = {step.address: trio.Event() for step in left}
    async with trio.open_nursery() as nursery:
        for step in left:
            nursery.start_soon(run.step, step)
    outcomes = tuple(run.outcomes[s.address] for s in plan.steps)
    failed = any(o.status == "failed" for o in outcomes)
    rolled_back: list[str] = []
    if failed and run.on_error == "rollback":
        rolled_back = await run.rollback()
    return RunReport(
        plan_hash=plan.hash,
        status="failed" if failed else "ok",
        outcomes=outcomes,
        rolled_back=tuple(rolled_back),
    )


async def destroy_resources(
    services: Services, steps: Iterable[tuple[Step, Outputs]], emit: Emit
) -> tuple[list[str], list[str]]:
    """Destroy live resources (steps of resource kinds with their outputs, as
    `_run.resource_step` rebuilds them: args of the kind's `resource_args`), in the given
    order; (destroyed addresses, failure messages). Used for nodes removed from a manifest."""
    destroyed: list[str] = []
    errors: list[str] = []
    for step, outputs in steps:
        kind = kind_for(step.kind)
        if kind is None:
            errors.append(f"{step.address}: unknown step kind {step.kind!r}")
            continue
        try:  # rebuilt from the resource's outputs: only what its destroy needs
            args = args_of(step, kind.resource_args or kind.args_type)
        except StepArgsError as exc:
            errors.append(str(exc))
            continue
        ctx = StepContext(services, step, emit, args=args)
        started = time.time()
        emit(
            Event(
                address=step.address, kind="started", host=step.host, at=started, message="destroy"
            )
        )
        # Forgotten first: a destroy cut off half-way leaves no record claiming it is live.
        await trio.to_thread.run_sync(
            services.store.remove_resource, services.workspace, step.address
        )
        try:
            with trio.fail_after(kind.timeout(ctx.args)):
                await kind.destroy(ctx, step, outputs)
        except (Exception, trio.TooSlowError) as exc:
            message = f"{step.address}: destroy failed: {_describe(exc)}"
            errors.append(message)
            emit(
                Event(
                    address=step.address,
                    kind="failed",
                    host=step.host,
                    at=time.time(),
                    message=message,
                )
            )
            continue
        destroyed.append(step.address)
        emit(
            Event(
                address=step.address,
                kind="finished",
                host=step.host,
                at=time.time(),
                message="destroyed",
                duration=time.time() - started,
            )
        )
    return destroyed, errors
