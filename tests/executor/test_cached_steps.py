"""Steps the store already answers are decided without a task each, with the same result.

`execute` first settles, in plan order, every step whose inputs are known and whose
result is recorded (`_Run.settle_cached`): a no-op apply of thousands of steps then costs
a lookup per step instead of a trio task, an event and a limiter slot. The cheaper path
must decide exactly what the task path decides: these tests run the same second apply
with the pass and without it (every step through a task, as before) and compare
everything a caller sees, over random DAGs, changed steps and destroyed resources.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from pveplan.executor import StepKind, execute, register
from pveplan.executor._context import Services
from pveplan.executor._scheduler import _Run
from pveplan.planner import Plan, PlanSettings, Step, StepArgs, digest
from pveplan.store import Store, open_store

from .._tiers import examples

_RUNS: list[str] = []  # addresses whose kind's apply ran, in order
_tmp_counter = itertools.count()


class EchoArgs(StepArgs, frozen=True, kw_only=True):
    salt: str = ""


@register
class Echo(StepKind):
    name = "test.cached.echo"
    args_type = EchoArgs

    async def apply(self, ctx: Any, step: Step, refs: Mapping[str, Any]) -> dict[str, Any]:
        _RUNS.append(step.address)
        await trio.sleep(0)
        return {"v": f"{step.address}/{ctx.args.salt}/{sorted(refs.items())}"}


@register
class Made(Echo):
    """A resource kind: reused only while the store records it live."""

    name = "test.cached.made"
    resource = True


def _services(store: Store) -> Services:
    return Services(
        store=store,
        workspace="t@h",
        hosts=None,  # type: ignore[arg-type]  (the test kinds reach no host)
        pool=None,  # type: ignore[arg-type]
        driver_key=(b"", ""),
        reveal=lambda name: "",
    )


def _plan(shape: list[tuple[bool, list[int], list[int]]], salts: Mapping[int, str]) -> Plan:
    """Step i: a resource or not, deps on earlier steps, refs to earlier steps' `v`."""
    steps = []
    for i, (resource, deps, refs) in enumerate(shape):
        salt = salts.get(i, "")
        steps.append(
            Step(
                address=f"s.{i}",
                kind="test.cached.made" if resource else "test.cached.echo",
                kind_version=1,
                host="h",
                args={"salt": salt} if salt else {},
                deps=tuple(f"s.{d}" for d in sorted(set(deps))),
                refs={f"r{r}": f"s.{r}#v" for r in sorted(set(refs))},
                hash=digest(f"{i}/{salt}".encode()),
            )
        )
    return Plan(
        manifest="t",
        host="h",
        settings=PlanSettings(parallelism=4, on_error="continue"),
        steps=tuple(steps),
        hash="0" * 32,
    )


def _seen(report: Any) -> list[tuple[str, str, dict[str, Any], str]]:
    return [(o.address, o.status, dict(o.outputs), o.error) for o in report.outcomes]


def _apply(store: Store, plan: Plan, *, settle: bool, events: list[Any] | None = None) -> Any:
    original = _Run.settle_cached
    if not settle:
        _Run.settle_cached = lambda self: None  # type: ignore[method-assign]
    try:
        sink = events.append if events is not None else (lambda event: None)
        return trio.run(execute, plan, _services(store), sink)
    finally:
        _Run.settle_cached = original  # type: ignore[method-assign]


shapes = st.integers(min_value=1, max_value=14).flatmap(
    lambda n: st.tuples(
        *(
            st.tuples(
                st.booleans(),
                st.lists(st.integers(0, i - 1), max_size=3) if i else st.just([]),
                st.lists(st.integers(0, i - 1), max_size=2) if i else st.just([]),
            )
            for i in range(n)
        )
    )
)


@settings(max_examples=examples(60))
@given(
    shape=shapes,
    changed=st.sets(st.integers(0, 13), max_size=4),
    destroyed=st.sets(st.integers(0, 13), max_size=3),
)
def test_settling_cached_steps_decides_what_the_tasks_decide(
    tmp_path_factory: pytest.TempPathFactory,
    shape: tuple[tuple[bool, list[int], list[int]], ...],
    changed: set[int],
    destroyed: set[int],
) -> None:
    first = _plan(list(shape), {})
    second = _plan(list(shape), {i: "changed" for i in changed})
    seen = []
    for settle in (True, False):
        root = tmp_path_factory.mktemp(f"store{next(_tmp_counter)}")
        with open_store(Path(root)) as store:
            _apply(store, first, settle=settle)
            for i in destroyed:  # destroyed behind the plan's back: must run again
                store.remove_resource("t@h", f"s.{i}")
            _RUNS.clear()
            events: list[Any] = []
            report = _apply(store, second, settle=settle, events=events)
            live = {r.address: dict(r.outputs) for r in store.resources("t@h")}
            kinds = sorted((e.address, e.kind) for e in events)
            seen.append((_seen(report), sorted(_RUNS), live, kinds, report.status))
    assert seen[0] == seen[1]


def test_a_no_op_apply_runs_no_kind_and_reports_every_step_cached(tmp_path: Path) -> None:
    shape = [(True, [], []), (False, [0], [0]), (True, [1], [0, 1]), (False, [], [2])]
    plan = _plan(shape, {})
    with open_store(tmp_path) as store:
        cold = _apply(store, plan, settle=True)
        _RUNS.clear()
        events: list[Any] = []
        again = _apply(store, plan, settle=True, events=events)
    assert [o.status for o in cold.outcomes] == ["ok"] * 4
    assert _RUNS == []
    assert [o.status for o in again.outcomes] == ["cached"] * 4
    assert [dict(o.outputs) for o in again.outcomes] == [dict(o.outputs) for o in cold.outcomes]
    assert sorted(e.kind for e in events) == ["cached"] * 4
