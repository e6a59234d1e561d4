"""`--timeout`'s deadline: one cancel scope around the whole run (executor/_deadline.py).

iac-driver's `--timeout` is checked between phases, so a phase that hangs runs on. Here
the deadline cancels what is running; what finished stays recorded (the scheduler records
under a shield), the run record is closed, nothing is recorded as applied, and the caller
hears of it as `DeadlineExpired`, never as a report that looks complete.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from pveplan.executor import (
    DeadlineExpired,
    ExecutorError,
    StepKind,
    register,
    run_workspace,
    with_deadline,
)
from pveplan.executor._context import Services
from pveplan.planner import Plan, PlanSettings, Step, StepArgs
from pveplan.store import Store, open_store

WORKSPACE = "deadline@h"


class NapArgs(StepArgs, frozen=True, kw_only=True):
    seconds: float


@register
class Nap(StepKind):
    name = "test.deadline.nap"
    args_type = NapArgs

    async def apply(self, ctx: Any, step: Step, refs: Any) -> dict[str, Any]:
        await trio.sleep(ctx.args.seconds)
        return {"slept": True}


def _plan(*naps: tuple[str, float]) -> Plan:
    """A chain of naps: each waits for the one before it."""
    steps, previous = [], None
    for i, (address, seconds) in enumerate(naps):
        steps.append(
            Step(
                address=address,
                kind=Nap.name,
                kind_version=1,
                host="h",
                args={"seconds": seconds},
                deps=(previous,) if previous else (),
                hash=f"{i + 1:032x}",
            )
        )
        previous = address
    return Plan(
        manifest="deadline",
        host="h",
        settings=PlanSettings(parallelism=4),
        steps=tuple(steps),
        hash="d" * 32,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(tmp_path / "store") as opened:
        yield opened


def _services(store: Store) -> Services:
    return Services(
        store=store,
        workspace=WORKSPACE,
        hosts=None,  # type: ignore[arg-type]  (naps touch no host)
        pool=None,  # type: ignore[arg-type]
        driver_key=(b"", ""),
        reveal=lambda name: "",
    )


def _run(store: Store, plan: Plan, deadline: float | None) -> Any:
    plan_object = store.put_object(b"the plan file")

    async def body(services: Services) -> Any:
        return await run_workspace(plan, plan_object, services, lambda event: None)

    bounded = with_deadline(body, deadline)
    return trio.run(bounded, _services(store))


def test_no_deadline_leaves_the_run_as_it_is() -> None:
    async def body(arg: int) -> int:
        return arg

    assert with_deadline(body, None) is body


def test_a_run_that_finishes_in_time_returns_its_report(store: Store) -> None:
    report = _run(store, _plan(("nap.a", 0.0), ("nap.b", 0.01)), time.time() + 30)
    assert report.status == "ok"
    assert store.applied(WORKSPACE) is not None


def test_expiry_stops_the_running_step_and_keeps_what_finished(store: Store) -> None:
    plan = _plan(("nap.first", 0.0), ("nap.hangs", 60.0), ("nap.never", 0.0))
    started = time.time()
    with pytest.raises(DeadlineExpired) as caught:
        _run(store, plan, started + 0.5)
    took = time.time() - started
    assert took < 10, "the hanging step was not cancelled at the deadline"
    assert isinstance(caught.value, ExecutorError)  # the CLI renders it: exit 1, no traceback
    assert 0.4 <= caught.value.seconds < 10

    (record,) = store.runs(WORKSPACE, limit=5)
    assert record.status == "interrupted" and record.finished is not None
    events = store.run_events(record.id)
    finished = {e.address for e in events if e.kind == "finished"}
    started_steps = {e.address for e in events if e.kind == "started"}
    assert finished == {"nap.first"}  # recorded: a re-run finds it cached
    assert "nap.hangs" in started_steps and "nap.never" not in started_steps
    assert store.applied(WORKSPACE) is None  # a cut-off run is never the applied state


def test_a_deadline_already_past_runs_nothing(store: Store) -> None:
    with pytest.raises(DeadlineExpired):
        _run(store, _plan(("nap.a", 0.0)), time.time() - 5)
    for record in store.runs(WORKSPACE, limit=5):
        assert not [e for e in store.run_events(record.id) if e.kind == "finished"]
