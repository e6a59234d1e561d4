"""Workspace locks on both backends, between real processes: refusal naming the holder,
takeover after SIGKILL, waiting (`--lock-timeout`), and breaking a dead holder's lock."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from pveplan.store import Store, StoreError, WorkspaceLocked, open_store
from tests._postgres import PostgresDatabase

from .conftest import python, wait_for_line

WORKSPACE = "n2-tiered@father"
PLAN = "4f2a" * 8

HOLDER = r"""
import sys
from pveplan.store import open_store
with open_store(sys.argv[1]) as s, s.lock_workspace(sys.argv[2], plan=sys.argv[3]) as lock:
    print("locked", flush=True)
    sys.stdin.read()   # hold until the test closes stdin, or kills us
"""


def start_holder(where: str) -> subprocess.Popen[str]:
    proc = python(HOLDER, where, WORKSPACE, PLAN, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    wait_for_line(proc, "locked")
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def test_a_second_run_is_refused_naming_user_host_pid_and_plan(store: Store, where: str) -> None:
    holder = start_holder(where)
    try:
        with pytest.raises(WorkspaceLocked) as info:
            store.lock_workspace(WORKSPACE).acquire()
        found = info.value.holder
        assert (found.pid, found.host, found.plan) == (holder.pid, socket.gethostname(), PLAN)
        assert found.user
        assert f"pid {holder.pid}" in info.value.summary
        assert f"applying plan {PLAN[:12]}" in info.value.summary
        assert "--lock-timeout" in info.value.detail
    finally:
        holder.communicate(input="", timeout=10)  # a clean release
    with store.lock_workspace(WORKSPACE) as lock:
        assert lock.recovered_from is None  # nothing left behind by a clean release


def test_a_sigkilled_holder_lets_the_next_run_take_the_lock_and_says_who_died(
    store: Store, where: str
) -> None:
    holder = start_holder(where)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    # 5 s is far below any keepalive: the lock is free because its session ended.
    with store.lock_workspace(WORKSPACE, plan="next", wait=5.0) as lock:
        assert lock.recovered_from is not None
        assert (lock.recovered_from.pid, lock.recovered_from.plan) == (holder.pid, PLAN)
        assert lock.holder is not None and lock.holder.pid == os.getpid()


def test_a_waiting_run_gets_the_lock_once_the_holder_finishes(store: Store, where: str) -> None:
    holder = start_holder(where)
    assert holder.stdin is not None
    release = threading.Timer(0.5, holder.stdin.close)  # the holder lets go while we wait
    try:
        release.start()
        with store.lock_workspace(WORKSPACE, wait=30.0) as lock:
            assert lock.held and lock.recovered_from is None
    finally:
        release.cancel()
        stop(holder)


def test_a_wait_that_runs_out_is_refused(store: Store, where: str) -> None:
    holder = start_holder(where)
    try:
        with pytest.raises(WorkspaceLocked):
            store.lock_workspace(WORKSPACE, wait=0.3).acquire()
    finally:
        stop(holder)


def test_breaking_a_live_local_holders_lock_is_refused(store: Store, where: str) -> None:
    holder = start_holder(where)
    try:
        with pytest.raises(WorkspaceLocked) as info:
            store.break_lock(WORKSPACE)
        assert info.value.holder.pid == holder.pid
    finally:
        stop(holder)
    assert store.break_lock("never-locked@x") is None


@pytest.fixture
def shared(postgres_db: PostgresDatabase) -> str:
    return postgres_db.dsn.replace("pveplan@", f"pveplan:{postgres_db.password}@", 1)


def test_breaking_the_lock_of_a_holder_on_a_vanished_machine_frees_it(
    postgres_db: PostgresDatabase, shared: str
) -> None:
    """The holder's row says another host (its machine is gone, its session lingers):
    `break_lock` ends that session, and the workspace can be locked again."""
    with open_store(shared) as store:
        holder = start_holder(shared)
        try:
            with postgres_db.connect(autocommit=True) as conn:
                conn.execute("UPDATE workspace_locks SET host = 'gone.example'")
            broken = store.break_lock(WORKSPACE)
            assert broken is not None and broken.host == "gone.example"
            with store.lock_workspace(WORKSPACE, wait=5.0) as lock:
                assert lock.held and lock.recovered_from is None
        finally:
            stop(holder)


def test_gc_is_refused_while_another_process_has_the_shared_store_open(shared: str) -> None:
    """(The local store's twin is in test_locks.py.)"""
    with open_store(shared) as store:
        store.put_object(b"garbage")
        holder = start_holder(shared)
        try:
            with pytest.raises(StoreError) as info:
                store.gc()
            assert "in use by another pveplan process" in info.value.summary
            assert store.put_object(b"still writable")  # the refusal kept our shared hold
        finally:
            holder.communicate(input="", timeout=10)
        deadline = time.monotonic() + 10
        while True:  # the holder's session ends a moment after its process does
            try:
                report = store.gc()
                break
            except StoreError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert report.objects_removed == 2
