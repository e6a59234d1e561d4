"""Crash safety (a "must show"): SIGKILL a writer anywhere, and nothing it committed is lost.

A child process writes objects, step results, applied state and run events in a loop and
prints each one, flushed, only after the store call returned. The test kills it with
SIGKILL after a random delay (anywhere: while opening or migrating the store, mid-blob,
between a blob's rename and its row, mid-transaction), several times, then checks that
the store opens, is undamaged, and holds everything the children printed.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import time
from pathlib import Path

from pveplan.store import Store, open_store

from .conftest import python

WORKSPACE = "crash@sim"

CHILD = r"""
import os, random, sys, time
from pathlib import Path
from pveplan.store import RunEvent, StepResult, open_store

root, round_ = Path(sys.argv[1]), int(sys.argv[2])
rng = random.Random(round_)
ws = "crash@sim"
with open_store(root) as s:
    lock = s.lock_workspace(ws).acquire()
    gone = lock.recovered_from
    print("lock", os.getpid(), gone.pid if gone else 0, flush=True)
    run = s.start_run(ws, f"plan-{round_}", "apply")
    print("run", run, flush=True)
    i = 0
    while True:
        blob = os.urandom(rng.randrange(1, 50_000))
        h = s.put_object(blob)
        print("object", h, flush=True)
        key = f"rk-{round_}-{i}"
        now = time.time()
        s.record_result(StepResult(
            run_key=key, step_hash=f"sh-{i}", address=f"node.n{i}.create", kind="test",
            status="ok", outputs={"object": h, "i": i}, run_id=run, started=now, finished=now,
        ))
        print("result", key, h, flush=True)
        plan = s.put_object(f"plan {round_} {i}".encode(), refs=[h])
        s.put_plan(f"plan-{round_}", plan, ws)
        s.set_applied(ws, f"plan-{round_}", {"counter": f"{round_:04d}:{i:06d}", "last": key})
        print("applied", f"{round_:04d}:{i:06d}", flush=True)
        s.add_event(run, RunEvent(address=f"node.n{i}.create", kind="finished",
                                  message=str(i), at=time.time(), duration=0.0))
        print("event", run, i, flush=True)
        i += 1
"""


def _run_rounds(root: Path, tmp_path: Path, rounds: int, budget: float) -> list[list[str]]:
    """Start and SIGKILL one child per round; each round's printed lines."""
    rng = random.Random()
    deadline = time.monotonic() + budget
    printed: list[list[str]] = []
    for round_ in range(rounds):
        if time.monotonic() > deadline:
            break
        out = tmp_path / f"child-{round_}.out"
        with out.open("w") as sink:
            proc = python(CHILD, str(root), str(round_), stdout=sink)
            # Early rounds may die while creating or migrating the store; later ones mostly
            # die mid-loop, at whatever point the delay happens to fall.
            time.sleep(rng.uniform(0.02, 0.1) if round_ < 2 else rng.uniform(0.15, 0.7))
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=5) == -signal.SIGKILL
        # A kill can land mid-print: only newline-terminated lines were printed in full.
        text = out.read_text()
        printed.append(text[: text.rfind("\n") + 1].splitlines())
    return printed


def test_sigkill_at_random_points_loses_nothing_committed(tmp_path: Path) -> None:
    root = tmp_path / "store"
    printed = _run_rounds(root, tmp_path, rounds=9, budget=6.0)
    lines = [line.split() for round_lines in printed for line in round_lines]
    assert any(line[0] == "event" for line in lines), "no child got as far as one full step"

    with open_store(root) as store:
        report = store.verify()
        assert report.damage == (), report.problems
        _assert_everything_printed_is_stored(store, printed)
        _assert_every_result_object_is_readable(store, root)
        _assert_lock_takeovers_were_reported(printed)

        collected = store.gc()
        assert collected.tmp_removed + collected.orphans_removed == len(report.collectable)
        assert store.verify().problems == ()
        # gc kept what results and the applied plan still need (a blob whose result was
        # never committed is garbage now).
        _assert_everything_printed_is_stored(store, printed, after_gc=True)
        _assert_every_result_object_is_readable(store, root)


def _assert_everything_printed_is_stored(
    store: Store, printed: list[list[str]], after_gc: bool = False
) -> None:
    last_counter = ""
    events: dict[int, list[str]] = {}
    for round_lines in printed:
        for line in round_lines:
            word, *rest = line.split()
            if word == "object" and not after_gc:
                assert store.has_object(rest[0])
            elif word == "result":
                result = store.get_result(rest[0])
                assert result is not None, f"result {rest[0]} was printed but is lost"
                assert result.status == "ok"
                assert result.outputs["object"] == rest[1]
                assert store.get_object(rest[1])
            elif word == "applied":
                last_counter = max(last_counter, rest[0])
            elif word == "run":
                events.setdefault(int(rest[0]), [])
            elif word == "event":
                events.setdefault(int(rest[0]), []).append(rest[1])

    applied = store.applied(WORKSPACE)
    if last_counter:
        assert applied is not None
        # The store may be one commit ahead of the last line printed, never behind it.
        assert applied.steps["counter"] >= last_counter
        assert set(applied.steps) == {"counter", "last"}
        plan_object = store.plan_object(applied.plan_hash)
        assert plan_object is not None
        assert store.get_object(plan_object).startswith(b"plan ")

    recorded_runs = {run.id: run for run in store.runs(WORKSPACE, limit=100)}
    for run_id, messages in events.items():
        assert run_id in recorded_runs
        assert recorded_runs[run_id].status == "running"  # killed: never finished
        stored = [event.message for event in store.run_events(run_id)]
        assert stored[: len(messages)] == messages
        assert len(stored) - len(messages) <= 1


def _assert_every_result_object_is_readable(store: Store, root: Path) -> None:
    """Every result in the database, printed or not (the child may die before printing)."""
    conn = sqlite3.connect(f"file:{root / 'store.sqlite'}?mode=ro", uri=True)
    try:
        keys = [key for (key,) in conn.execute("SELECT run_key FROM results")]
    finally:
        conn.close()
    for key in keys:
        result = store.get_result(key)
        assert result is not None
        digest = result.outputs["object"]
        assert isinstance(digest, str)
        assert store.get_object(digest)


def _assert_lock_takeovers_were_reported(printed: list[list[str]]) -> None:
    """Each child that locked died holding the lock; the next one to lock says so."""
    previous_holder = 0
    for round_lines in printed:
        lock_lines = [line.split() for line in round_lines if line.startswith("lock ")]
        if not lock_lines:
            # Killed before it printed: it may or may not have taken the lock, so the
            # next child may recover either holder.
            previous_holder = 0
            continue
        _, pid, recovered = lock_lines[0]
        if previous_holder:
            assert int(recovered) == previous_holder
        previous_holder = int(pid)
