"""Step results, applied state, resources, runs and events: what the executor records."""

from __future__ import annotations

import subprocess
import time

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pveplan.store import RunEvent, StepResult, Store, StoreError, open_store

from .._tiers import examples
from .conftest import python, wait_for_line


def result(
    run_key: str = "rk",
    status: str = "ok",
    finished: float = 2.0,
    outputs: dict[str, str | int | bool | None] | None = None,
) -> StepResult:
    return StepResult(
        run_key=run_key,
        step_hash="s" * 32,
        address="node.edge.wait_ip",
        kind="pve.vm.wait_ip",
        status=status,  # type: ignore[arg-type]
        outputs={"ip": "10.0.0.7"} if outputs is None else outputs,
        error="" if status == "ok" else "timed out",
        run_id=1,
        started=1.0,
        finished=finished,
    )


# -- results -------------------------------------------------------------------------------


def test_a_result_round_trips_with_its_output_types(store: Store) -> None:
    assert store.get_result("rk") is None
    recorded = result(outputs={"ip": "10.0.0.7", "vmid": 99021, "up": True, "mac": None})
    store.record_result(recorded)
    assert store.get_result("rk") == recorded
    got = store.get_result("rk")
    assert got is not None and got.outputs["up"] is True and got.outputs["vmid"] == 99021


def test_the_latest_successful_result_wins(store: Store) -> None:
    store.record_result(result(status="failed", finished=1.0))
    assert store.get_result("rk") == result(status="failed", finished=1.0)
    store.record_result(result(finished=2.0, outputs={"ip": "a"}))
    store.record_result(result(finished=4.0, outputs={"ip": "b"}))
    store.record_result(result(status="failed", finished=9.0))
    got = store.get_result("rk")
    assert got is not None and got.status == "ok" and got.outputs == {"ip": "b"}


def test_results_are_durable_across_processes(where: str) -> None:
    code = (
        "import sys\nfrom pveplan.store import StepResult, open_store\n"
        "with open_store(sys.argv[1]) as s:\n"
        "    s.record_result(StepResult(run_key='from-child', step_hash='h', address='a',"
        " kind='k', status='ok', outputs={'n': 1}, started=0.0, finished=1.0))\n"
    )
    assert python(code, where).wait(timeout=10) == 0
    with open_store(where) as store:
        got = store.get_result("from-child")
        assert got is not None and got.outputs == {"n": 1}


def test_bad_results_are_bugs_not_store_errors(store: Store) -> None:
    with pytest.raises(ValueError, match="'ok' or 'failed'"):
        store.record_result(result(status="maybe"))
    with pytest.raises(ValueError, match="outputs must map"):
        store.record_result(result(outputs={"load": 0.5}))  # no floats in outputs
    assert store.get_result("rk") is None


# -- applied state ---------------------------------------------------------------------------


def test_applied_state_is_replaced_not_merged(store: Store) -> None:
    assert store.applied("lab@a") is None
    store.set_applied("lab@a", "plan-1", {"node.a.create": "h1", "node.b.create": "h2"})
    store.set_applied("lab@a", "plan-2", {"node.c.create": "h3"})
    applied = store.applied("lab@a")
    assert applied is not None
    assert (applied.plan_hash, applied.steps) == ("plan-2", {"node.c.create": "h3"})
    assert store.applied("lab@b") is None
    store.clear_applied("lab@a")
    assert store.applied("lab@a") is None


_applied_maps = st.lists(
    st.dictionaries(
        st.sampled_from([f"node.n{i}.{s}" for i in range(6) for s in ("create", "start")]),
        st.sampled_from(["h1", "h2", "h3"]),
        max_size=8,
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=examples(40), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(maps=_applied_maps)
def test_applied_state_is_always_the_last_map_written(
    store: Store, maps: list[dict[str, str]]
) -> None:
    """Only the rows that change are rewritten, yet every replacement reads back whole."""
    workspace = f"lab@{len(maps)}-{abs(hash(repr(maps)))}"
    for number, steps in enumerate(maps):
        store.set_applied(workspace, f"plan-{number}", steps)
        applied = store.applied(workspace)
        assert applied is not None
        assert (applied.plan_hash, applied.steps) == (f"plan-{number}", steps)
    assert store.verify().damage == ()


def test_a_failed_replacement_leaves_the_old_state(store: Store) -> None:
    store.set_applied("lab@a", "plan-1", {"node.a.create": "h1"})
    with pytest.raises(ValueError):
        store.set_applied("lab@a", "plan-2", {"node.b.create": "h2", "node.c.create": None})  # type: ignore[dict-item]
    applied = store.applied("lab@a")
    assert applied is not None and applied.plan_hash == "plan-1"
    assert applied.steps == {"node.a.create": "h1"}


WRITER = r"""
import sys
from pveplan.store import open_store
with open_store(sys.argv[1]) as s:
    print("ready", flush=True)
    n = 0
    while True:
        tag = "A" if n % 2 == 0 else "B"
        size = 40 if tag == "A" else 60
        s.set_applied("lab@a", f"plan-{tag}", {f"node.{tag}{i}.create": tag for i in range(size)})
        n += 1
"""


def test_readers_never_see_half_a_replacement(where: str) -> None:
    """A real writer process alternates two applied sets; every read is one or the other."""
    with open_store(where) as store:
        store.set_applied("lab@a", "plan-A", {f"node.A{i}.create": "A" for i in range(40)})
        writer = python(WRITER, where, stdout=subprocess.PIPE)
        try:
            wait_for_line(writer, "ready")
            seen = set()
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                applied = store.applied("lab@a")
                assert applied is not None
                tag = applied.plan_hash[-1]
                assert set(applied.steps.values()) == {tag}
                assert len(applied.steps) == (40 if tag == "A" else 60)
                seen.add(tag)
        finally:
            writer.kill()
            writer.wait(timeout=10)
    assert seen == {"A", "B"}, "the writer never got a turn; the test proved nothing"


# -- resources and workspaces ----------------------------------------------------------------


def test_resources_are_kept_per_workspace_sorted_by_address(store: Store) -> None:
    store.put_resource("lab@a", "node.b.vm", "pve.vm", {"vmid": 101})
    store.put_resource("lab@a", "node.a.vm", "pve.vm", {"vmid": 100})
    store.put_resource("lab@b", "node.a.vm", "pve.vm", {"vmid": 200})
    store.put_resource("lab@a", "node.b.vm", "pve.vm", {"vmid": 102, "node": "pve1"})
    got = store.resources("lab@a")
    assert [(r.address, r.outputs) for r in got] == [
        ("node.a.vm", {"vmid": 100}),
        ("node.b.vm", {"node": "pve1", "vmid": 102}),
    ]
    assert all(r.workspace == "lab@a" and r.kind == "pve.vm" for r in got)
    store.remove_resource("lab@a", "node.a.vm")
    store.remove_resource("lab@a", "node.never.vm")  # forgetting the absent is fine
    assert [r.address for r in store.resources("lab@a")] == ["node.b.vm"]
    assert store.resources("nowhere") == ()


def test_workspaces_lists_every_workspace_the_store_knows(store: Store) -> None:
    assert store.workspaces() == ()
    store.set_applied("z@host", "p", {})
    store.put_resource("a@host", "node.x.vm", "pve.vm", {})
    store.start_run("m@host", "p", "plan")
    assert store.workspaces() == ("a@host", "m@host", "z@host")


# -- runs and events -------------------------------------------------------------------------


def test_runs_are_listed_newest_first_and_events_in_order(store: Store) -> None:
    first = store.start_run("lab@a", "plan-1", "apply")
    second = store.start_run("lab@b", "plan-2", "apply")
    third = store.start_run("lab@a", "plan-3", "destroy")
    events = [
        RunEvent(address="node.a.create", kind="started", at=10.0, host="pve1"),
        RunEvent(address="node.a.create", kind="log", message="qm create 100", at=10.5),
        RunEvent(address="node.a.create", kind="finished", at=12.0, duration=2.0),
        RunEvent(address="node.b.create", kind="cached", at=12.1),
        RunEvent(address="node.c.create", kind="failed", message="boom", at=9.0),
    ]
    for event in events:
        store.add_event(third, event)
    store.add_event(first, RunEvent(address="x", kind="started", at=1.0))
    store.finish_run(third, "failed")

    assert [r.id for r in store.runs()] == [third, second, first]
    assert [r.id for r in store.runs("lab@a")] == [third, first]
    assert [r.id for r in store.runs(limit=1)] == [third]
    latest = store.runs("lab@a")[0]
    assert (latest.verb, latest.plan_hash, latest.status) == ("destroy", "plan-3", "failed")
    assert latest.finished is not None and latest.finished >= latest.started
    assert store.runs("lab@b")[0].status == "running" and store.runs("lab@b")[0].finished is None
    assert store.run_events(third) == tuple(events)  # insertion order, not timestamp order
    assert store.run_events(second) == ()


def test_events_of_an_unknown_run_are_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="run 42 is not in the store"):
        store.add_event(42, RunEvent(address="a", kind="log", at=0.0))
    with pytest.raises(StoreError, match="run 42 is not in the store"):
        store.finish_run(42, "ok")


def test_records_are_frozen_structs_that_encode(store: Store) -> None:
    store.record_result(result())
    got = store.get_result("rk")
    assert got is not None
    with pytest.raises(AttributeError):
        got.status = "failed"  # type: ignore[misc]
    assert msgspec.json.decode(msgspec.json.encode(got), type=StepResult) == got


def test_an_unknown_event_kind_is_a_bug(store: Store) -> None:
    run = store.start_run("lab@a", "p", "apply")
    with pytest.raises(ValueError, match="an event's kind is one of started, finished"):
        store.add_event(run, RunEvent(address="a", kind="exploded", at=0.0))  # type: ignore[arg-type]
    assert store.run_events(run) == ()


def test_one_store_may_be_shared_between_threads(store: Store) -> None:
    import threading

    def work(n: int) -> None:
        for i in range(20):
            digest = store.put_object(f"{n}-{i}".encode())
            store.record_result(result(run_key=f"{n}-{i}", outputs={"object": digest}))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n in range(4):
        for i in range(20):
            got = store.get_result(f"{n}-{i}")
            assert got is not None
            assert store.get_object(str(got.outputs["object"])) == f"{n}-{i}".encode()


def test_results_for_answers_what_get_result_answers_key_by_key(store: Store) -> None:
    """The run's one-pass lookup picks, per run key, the same result as `get_result`: the
    latest successful, else the latest failed; keys of other addresses are left out."""
    history = [
        ("a", "k1", "failed", 1.0),
        ("a", "k1", "ok", 2.0),
        ("a", "k1", "failed", 3.0),  # a later failure does not hide the success
        ("a", "k2", "failed", 1.0),
        ("a", "k2", "failed", 5.0),
        ("b", "k3", "ok", 1.0),
        ("b", "k3", "ok", 4.0),
        ("c", "k4", "ok", 1.0),
    ]
    for address, key, status, finished in history:
        store.record_result(
            msgspec.structs.replace(
                result(key, status, finished), address=address, outputs={"at": int(finished)}
            )
        )
    found = store.results_for(["a", "b", "unknown"])
    assert set(found) == {"k1", "k2", "k3"}
    for key, got in found.items():
        assert got == store.get_result(key)
    assert (found["k1"].status, found["k1"].finished) == ("ok", 2.0)
    assert (found["k2"].status, found["k2"].finished) == ("failed", 5.0)
    assert store.results_for([]) == {}
