"""The state as a snapshot plus a journal (`sim._statefile`): what `read_state` and
`locked_state` give is what one JSON file under a lock gave, while a change writes only
what it changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pveplan.sim import _statefile
from pveplan.sim._state import (
    SimRoot,
    empty_state,
    locked_state,
    read_state,
    write_json_atomic,
)


def plain(state: dict[str, Any]) -> dict[str, Any]:
    return json.loads(
        json.dumps(
            {key: dict(value) if key in ("vms", "tasks") else value for key, value in state.items()}
        )
    )


def fresh_read(root: SimRoot) -> dict[str, Any]:
    """What another process reads: no cache, the files only."""
    _statefile._CACHES.pop(root.path, None)
    return plain(read_state(root))


KEYS = st.sampled_from([f"sim/{n}" for n in range(6)])
OPS = st.one_of(
    st.tuples(st.just("set"), KEYS, st.integers(0, 3)),
    st.tuples(st.just("edit"), KEYS, st.integers(0, 3)),
    st.tuples(st.just("del"), KEYS, st.just(0)),
    st.tuples(st.just("task"), KEYS, st.integers(0, 3)),
    st.tuples(st.just("core"), st.just("next_address"), st.integers(0, 9)),
    st.tuples(st.just("fail"), KEYS, st.integers(0, 3)),
    st.tuples(st.just("replace_tasks"), KEYS, st.just(0)),
    st.tuples(st.just("forget_cache"), KEYS, st.just(0)),
)


def apply(state: dict[str, Any], op: tuple[str, str, int]) -> None:
    kind, key, value = op
    if kind == "set":
        state["vms"][key] = {"vmid": value, "config": {"cores": value}, "status": "stopped"}
    elif kind == "edit" and key in state["vms"]:
        state["vms"][key]["config"]["memory"] = str(value)
        state["vms"][key]["status"] = "running"
    elif kind == "del":
        state["vms"].pop(key, None)
    elif kind == "task":
        state["tasks"][f"UPID:{key}:{value}"] = {"log": ["TASK OK"], "n": value}
    elif kind == "core":
        state[key] = value
    elif kind == "replace_tasks":
        state["tasks"] = {u: t for u, t in state["tasks"].items() if t["n"] % 2}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(OPS, max_size=25), fold_at=st.sampled_from([0, 300, 1 << 20]))
def test_a_run_of_changes_reads_back_as_the_plain_state_would(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    ops: list[tuple[str, str, int]],
    fold_at: int,
) -> None:
    monkeypatch.setattr(_statefile, "COMPACT_MIN", fold_at)  # fold often, sometimes never
    root = SimRoot(tmp_path_factory.mktemp("state"))
    model = empty_state(root)
    for op in ops:
        if op[0] == "forget_cache":
            _statefile._CACHES.pop(root.path, None)
            continue
        if op[0] == "fail":  # a block that raises changes nothing
            with pytest.raises(RuntimeError), locked_state(root) as state:
                apply(state, ("set", op[1], op[2]))
                apply(state, ("edit", op[1], op[2]))
                raise RuntimeError
            continue
        with locked_state(root) as state:
            apply(state, op)
        apply(model, op)
        assert plain(read_state(root)) == model  # this process, from its cache
    assert fresh_read(root) == model  # another process, from the files


def test_a_change_writes_only_what_it_changed(tmp_path: Path) -> None:
    root = SimRoot(tmp_path)
    with locked_state(root) as state:
        for n in range(200):
            state["vms"][f"sim/{n}"] = {"vmid": n, "status": "stopped", "config": {"x": "y" * 50}}
    snapshot = root.state.stat()
    with locked_state(root) as state:
        state["vms"]["sim/7"]["status"] = "running"
    assert root.state.stat().st_ino == snapshot.st_ino  # not rewritten
    last = root.journal.read_text().splitlines()[-1]
    assert json.loads(last) == {"set": {"vms": {"sim/7": {**fresh_read(root)["vms"]["sim/7"]}}}}
    before = root.journal.stat().st_size
    with locked_state(root) as state:
        assert state["vms"]["sim/8"]["status"] == "stopped"  # read, not changed
    assert root.journal.stat().st_size == before  # nothing written


def test_a_torn_last_line_is_ignored_and_cut_by_the_next_writer(tmp_path: Path) -> None:
    root = SimRoot(tmp_path)
    with locked_state(root) as state:
        state["vms"]["sim/1"] = {"status": "stopped"}
    with locked_state(root) as state:
        state["vms"]["sim/1"]["status"] = "running"
    with root.journal.open("ab") as journal:  # a writer killed in the middle of its line
        journal.write(b'{"set":{"vms":{"sim/1":{"status":"gar')
    assert fresh_read(root)["vms"] == {"sim/1": {"status": "running"}}
    with locked_state(root) as state:
        state["vms"]["sim/2"] = {"status": "stopped"}
    assert fresh_read(root)["vms"] == {
        "sim/1": {"status": "running"},
        "sim/2": {"status": "stopped"},
    }
    assert all(json.loads(line) for line in root.journal.read_text().splitlines())


def test_state_json_written_whole_by_anything_else_is_the_state(tmp_path: Path) -> None:
    root = SimRoot(tmp_path)
    with locked_state(root) as state:
        state["vms"]["sim/1"] = {"status": "stopped"}
    with locked_state(root) as state:
        state["vms"]["sim/1"]["status"] = "running"  # in the journal only
    whole = {**empty_state(root), "vms": {"sim/9": {"status": "stopped"}}}
    write_json_atomic(root.state, whole)  # what tests and older simulators do
    assert plain(read_state(root))["vms"] == {"sim/9": {"status": "stopped"}}
    with locked_state(root) as state:
        state["vms"]["sim/9"]["status"] = "running"
    assert fresh_read(root)["vms"] == {"sim/9": {"status": "running"}}


def test_another_process_change_is_seen_through_the_journal(tmp_path: Path) -> None:
    root = SimRoot(tmp_path)
    with locked_state(root) as state:
        state["vms"]["sim/1"] = {"status": "stopped"}
    assert read_state(root)["vms"]["sim/1"]["status"] == "stopped"  # now cached here
    code = (
        "from pveplan.sim._state import SimRoot, locked_state\n"
        f"with locked_state(SimRoot({str(tmp_path)!r})) as state:\n"
        "    state['vms']['sim/1']['status'] = 'running'\n"
        "    state['nodes']['sim'] = {'address': '127.1.0.1'}\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    state = read_state(root)
    assert state["vms"]["sim/1"]["status"] == "running"
    assert state["nodes"] == {"sim": {"address": "127.1.0.1"}}
