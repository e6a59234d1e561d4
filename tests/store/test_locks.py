"""Workspace locks between real processes, lock recovery after SIGKILL, and gc's store lock."""

from __future__ import annotations

import datetime
import getpass
import json
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from pveplan.store import Store, StoreError, WorkspaceLocked, open_store

from .conftest import python, wait_for_line

WORKSPACE = "n2-tiered@sim"

HOLDER = r"""
import sys
from pathlib import Path
from pveplan.store import open_store
with open_store(Path(sys.argv[1])) as s, s.lock_workspace(sys.argv[2]) as lock:
    print("locked", flush=True)
    sys.stdin.read()   # hold until the test closes stdin, or kills us
"""

CONTENDER = r"""
import sys
from pathlib import Path
from pveplan.store import StoreError, open_store
with open_store(Path(sys.argv[1])) as s:
    try:
        with s.lock_workspace(sys.argv[2]):
            print("acquired", flush=True)
    except StoreError as exc:
        print(exc.summary)
        print(exc.detail)
        sys.exit(3)
"""


def start_holder(root: Path, workspace: str = WORKSPACE) -> subprocess.Popen[str]:
    proc = python(HOLDER, str(root), workspace, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    wait_for_line(proc, "locked")
    return proc


def lock_file(root: Path) -> Path:
    [path] = [p for p in (root / "locks").glob("*.lock") if p.name != "store.lock"]
    return path


def expected_summary(pid: int, since: str, workspace: str = WORKSPACE) -> str:
    user = getpass.getuser()
    return (
        f"workspace {workspace} locked by pid {pid} ({user}) "
        f"on host {socket.gethostname()} since {since}"
    )


def test_a_second_process_is_refused_with_the_holders_pid(root: Path) -> None:
    holder = start_holder(root)
    try:
        since = json.loads(lock_file(root).read_text())["since"]
        assert datetime.datetime.fromisoformat(since).tzinfo is not None
        contender = python(CONTENDER, str(root), WORKSPACE, stdout=subprocess.PIPE)
        out, _ = contender.communicate(timeout=10)
        assert contender.returncode == 3
        summary, detail = out.splitlines()
        assert summary == expected_summary(holder.pid, since)
        assert "wait" in detail and "released automatically" in detail

        with open_store(root) as store, pytest.raises(WorkspaceLocked) as info:
            store.lock_workspace(WORKSPACE).acquire()
        assert info.value.summary == expected_summary(holder.pid, since)
        assert info.value.holder.pid == holder.pid
    finally:
        holder.communicate(input="", timeout=10)  # close stdin: a clean release
    assert holder.returncode == 0
    assert lock_file(root).read_text() == ""  # a clean release leaves nothing to recover

    with open_store(root) as store, store.lock_workspace(WORKSPACE) as lock:
        assert lock.recovered_from is None


def test_a_holder_killed_with_sigkill_leaves_a_lock_the_next_run_recovers(root: Path) -> None:
    holder = start_holder(root)
    stale = json.loads(lock_file(root).read_text())
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    assert json.loads(lock_file(root).read_text()) == stale  # the JSON outlives its owner

    with open_store(root) as store:
        with store.lock_workspace(WORKSPACE) as lock:
            assert lock.recovered_from is not None
            assert lock.recovered_from.pid == holder.pid == stale["pid"]
            assert lock.recovered_from.host == socket.gethostname()
            assert lock.recovered_from.since == stale["since"]
            assert lock.recovered_from.workspace == WORKSPACE
            assert json.loads(lock_file(root).read_text())["pid"] != holder.pid
        with store.lock_workspace(WORKSPACE) as again:
            assert again.recovered_from is None


def test_the_same_process_cannot_take_a_workspace_twice(store: Store) -> None:
    import os

    with store.lock_workspace(WORKSPACE) as first:
        assert first.held
        with pytest.raises(StoreError) as info:
            store.lock_workspace(WORKSPACE).acquire()
        assert first.holder is not None
        assert info.value.summary == expected_summary(os.getpid(), first.holder.since)
        assert "already holds" in info.value.detail
        # Other workspaces are independent.
        with store.lock_workspace("other@sim") as other:
            assert other.held
    assert not first.held
    with store.lock_workspace(WORKSPACE):
        pass


def test_lock_files_are_named_by_hash_so_any_workspace_name_works(store: Store, root: Path) -> None:
    odd = "../weird name/with slashes@host"
    with store.lock_workspace(odd) as lock:
        assert lock.path.parent == root / "locks"
        assert re.fullmatch(r"[0-9a-f]{32}\.lock", lock.path.name)
        assert json.loads(lock.path.read_text())["workspace"] == odd


def test_gc_is_refused_while_another_process_has_the_store_open(root: Path) -> None:
    with open_store(root) as store:
        store.put_object(b"garbage")
        holder = start_holder(root, "busy@sim")
        try:
            with pytest.raises(StoreError) as info:
                store.gc()
            assert info.value.summary == f"store at {root} is in use by another pveplan process"
            assert store.put_object(b"still writable")  # refusal left our shared lock intact
        finally:
            holder.communicate(input="", timeout=10)
        assert store.gc().objects_removed == 2


def test_gc_is_refused_while_a_second_store_is_open_in_this_process(root: Path) -> None:
    with open_store(root) as first, open_store(root) as second:
        second.put_object(b"x")
        with pytest.raises(StoreError, match="in use by another pveplan process"):
            first.gc()
