"""The simulator daemon stops by itself: its root deleted, idle past its limit, or the
process it was started to live with gone; and the next start on demand works again."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
import trio

from pveplan.executor.channels import ChannelError, CommandResult
from pveplan.sim import ensure_simulator
from pveplan.sim._control import (
    SimError,
    daemon_info,
    pid_is_daemon,
    start_daemon,
    stop_daemon,
    stop_daemons_living_with,
)
from pveplan.sim._lifetime import (
    IDLE_ENV,
    Lifetime,
    LifetimeOptions,
    daemons_living_with,
    options_from_env,
    parse_argv,
    runners_working,
    take_lock,
)
from pveplan.sim._runcmd import RECORD
from pveplan.sim._state import SimRoot, locked_state, read_config, vm_key, write_config
from tests.executor import Sim, group_alive, make_sim, run_trio, stop_sim, wait_until

NEVER = LifetimeOptions(idle_timeout=0)


@pytest.fixture
def pids() -> Iterator[list[int]]:
    """Daemon pids a test started: killed at its end, whatever became of their root."""
    started: list[int] = []
    yield started
    for pid in started:
        if pid_is_daemon(pid):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda pid=pid: not pid_is_daemon(pid), timeout=5, what=f"daemon {pid}")


def started(sim: Sim, pids: list[int], options: LifetimeOptions) -> int:
    sim.info = start_daemon(sim.root, lifetime=options)
    pids.append(sim.info["pid"])
    return int(sim.info["pid"])


def log_of(root: SimRoot) -> str:
    return (root.path / "daemon.log").read_text()


def test_deleting_the_root_stops_the_daemon_and_its_sessions(
    tmp_path: Path, pids: list[int]
) -> None:
    sim = make_sim(tmp_path / "sim", start=False)
    pid = started(sim, pids, NEVER)
    session: list[int] = []

    async def body() -> ChannelError:
        async with sim.pool() as pool:
            channel = await pool.channel(sim.host_target())
            async with trio.open_nursery() as nursery:

                async def delete_root() -> None:
                    session.append(await trio.to_thread.run_sync(sim.pid_of, "rm-marker"))
                    await trio.to_thread.run_sync(shutil.rmtree, sim.root.path)

                nursery.start_soon(delete_root)
                try:
                    await channel.run(["sh", "-c", "sleep 30", "rm-marker"])
                except ChannelError as exc:
                    return exc
        raise AssertionError("the session outlived the daemon's root")

    try:
        assert run_trio(body).kind == "lost"
        wait_until(lambda: not pid_is_daemon(pid), timeout=5, what="the daemon to exit")
        wait_until(lambda: not group_alive(session[0]), timeout=3, what="the session to die")
    finally:
        for group in session:
            if group_alive(group):
                os.killpg(group, signal.SIGKILL)


def test_a_root_replaced_by_a_new_directory_is_not_served(tmp_path: Path, pids: list[int]) -> None:
    sim = make_sim(tmp_path / "sim", start=False)
    pid = started(sim, pids, NEVER)
    moved = tmp_path / "moved"
    sim.root.path.rename(moved)
    sim.root.path.mkdir()  # same name, another directory: not the one it was started on
    wait_until(lambda: not pid_is_daemon(pid), timeout=5, what="the daemon to exit")
    assert "was replaced" in (moved / "daemon.log").read_text()


def test_a_deleted_state_json_stops_the_daemon(tmp_path: Path, pids: list[int]) -> None:
    sim = make_sim(tmp_path / "sim", start=False)
    pid = started(sim, pids, NEVER)
    sim.root.state.unlink()
    wait_until(lambda: not pid_is_daemon(pid), timeout=5, what="the daemon to exit")
    assert f"stopping by itself: {sim.root.state} was deleted" in log_of(sim.root)


def test_an_idle_daemon_stops_but_not_while_a_session_is_open(
    tmp_path: Path, pids: list[int]
) -> None:
    sim = make_sim(tmp_path / "sim", start=False)
    pid = started(sim, pids, LifetimeOptions(idle_timeout=2))

    async def long_session() -> CommandResult:
        async with sim.pool() as pool:
            channel = await pool.channel(sim.host_target())
            return await channel.run(["sleep", "3.5"])  # longer than the limit

    assert run_trio(long_session).exit_status == 0
    closed = time.monotonic()
    assert pid_is_daemon(pid), "the daemon stopped while a session was open"
    time.sleep(1)
    assert pid_is_daemon(pid), "the limit counts from the last connection, not the start"
    wait_until(lambda: not pid_is_daemon(pid), timeout=4, what="the idle daemon to exit")
    assert 1.9 <= time.monotonic() - closed <= 4.5
    assert not sim.root.daemon.exists()
    assert "stopping by itself: idle for 2s" in log_of(sim.root)


def test_a_state_change_counts_as_activity(tmp_path: Path, pids: list[int]) -> None:
    sim = make_sim(tmp_path / "sim", start=False)
    pid = started(sim, pids, LifetimeOptions(idle_timeout=1.5))
    began = time.monotonic()
    for vmid in (601, 602, 603):  # one change every 0.8 s for 2.4 s
        time.sleep(0.8)
        assert pid_is_daemon(pid)
        sim.add_vm(vmid)
    wait_until(lambda: not pid_is_daemon(pid), timeout=4, what="the idle daemon to exit")
    assert time.monotonic() - began >= 3.5


def test_config_json_sets_the_limit_when_the_starter_does_not(
    tmp_path: Path, pids: list[int]
) -> None:
    sim = make_sim(tmp_path / "sim", start=False)
    write_config(sim.root, {"idle_timeout": 1})
    pid = started(sim, pids, LifetimeOptions())
    wait_until(lambda: not pid_is_daemon(pid), timeout=4, what="the idle daemon to exit")
    assert "idle for 1s" in log_of(sim.root)


def test_after_an_idle_stop_the_next_start_on_demand_serves_again(
    tmp_path: Path, pids: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(IDLE_ENV, "1")  # as a user's shell would set it for `pveplan apply`
    public = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode()
    root = tmp_path / "sim"
    first = ensure_simulator(root, ["sim"], public)
    pids.append(first["pid"])
    wait_until(lambda: not pid_is_daemon(first["pid"]), timeout=4, what="the idle stop")
    monkeypatch.setenv(IDLE_ENV, "0")
    second = ensure_simulator(root, ["sim"], public)
    pids.append(second["pid"])
    try:
        assert second["pid"] != first["pid"]
        assert second["port"] == first["port"]  # a restarted sshd keeps its port too
        assert second["hosts"] == first["hosts"]
        assert daemon_info(SimRoot(root)) == second
    finally:
        stop_daemon(SimRoot(root))


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process for a daemon to live with (standing for the test run that started it)."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def test_a_daemon_exits_with_the_process_it_lives_with(
    tmp_path: Path, pids: list[int], sleeper: subprocess.Popen[bytes]
) -> None:
    sim = make_sim(tmp_path / "sim", start=False)
    pid = started(sim, pids, LifetimeOptions(idle_timeout=0, exit_with_pid=sleeper.pid))
    assert daemons_living_with(sleeper.pid) == [pid]
    time.sleep(0.3)
    assert pid_is_daemon(pid)
    sleeper.kill()
    sleeper.wait()
    wait_until(lambda: not pid_is_daemon(pid), timeout=3, what="the daemon to follow it")
    assert f"process {sleeper.pid}, which it was started to live with, has exited" in log_of(
        sim.root
    )


def test_the_session_end_stops_the_daemons_living_with_it(
    tmp_path: Path, pids: list[int], sleeper: subprocess.Popen[bytes]
) -> None:
    # A sleeper stands for the session: the real session's pid would also stop the daemons
    # of fixtures still in use (the integration tests' lab, session-scoped).
    sim = make_sim(tmp_path / "sim", start=False)
    other = make_sim(tmp_path / "other", start=False)
    mine = started(sim, pids, LifetimeOptions(idle_timeout=0, exit_with_pid=sleeper.pid))
    not_mine = started(other, pids, NEVER)
    try:
        assert stop_daemons_living_with(sleeper.pid) == [mine]
        assert not pid_is_daemon(mine) and not sim.root.daemon.exists()
        assert pid_is_daemon(not_mine)
    finally:
        stop_sim(other)


def test_the_environment_reaches_the_daemon_and_bad_values_fail_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert options_from_env({IDLE_ENV: "90", "PVEPLAN_SIM_EXIT_WITH_PID": "42"}) == (
        LifetimeOptions(idle_timeout=90.0, exit_with_pid=42)
    )
    assert options_from_env({}) == LifetimeOptions()
    root, options = parse_argv(["/r", *LifetimeOptions(idle_timeout=2.5, exit_with_pid=7).argv()])
    assert (root.path, options) == (Path("/r"), LifetimeOptions(2.5, 7))
    sim = make_sim(tmp_path / "sim", start=False)
    for variable, value in (
        (IDLE_ENV, "soon"),
        (IDLE_ENV, "-1"),
        ("PVEPLAN_SIM_EXIT_WITH_PID", "me"),
    ):
        with monkeypatch.context() as env:
            env.setenv(variable, value)
            with pytest.raises(SimError, match=f"{variable}='{value}'"):
                start_daemon(sim.root)
    assert daemon_info(sim.root) is None and not (sim.root.path / "daemon.log").exists()


def test_the_starters_limit_wins_over_config_json(tmp_path: Path) -> None:
    root = SimRoot(tmp_path)
    now = [0.0]
    configured = Lifetime(root, LifetimeOptions(), clock=lambda: now[0])
    assert configured.idle_timeout == read_config(root)["idle_timeout"] == 3600
    configured.configure({"idle_timeout": 5})
    assert configured.idle_timeout == 5
    configured.configure({"idle_timeout": "later"})  # logged; the default stays in force
    assert configured.idle_timeout == 3600
    configured.configure({"idle_timeout": None})
    assert configured.idle_timeout == 0
    chosen = Lifetime(root, LifetimeOptions(idle_timeout=7), clock=lambda: now[0])
    chosen.configure({"idle_timeout": 1})
    assert chosen.idle_timeout == 7
    now[0] = 6.9
    assert chosen.idle_reason([]) is None
    now[0] = 7.0
    assert chosen.idle_reason([]) == "idle for 7s (no SSH connection, no state change)"


def test_a_working_runcmd_runner_is_activity(tmp_path: Path) -> None:
    root = SimRoot(tmp_path / "sim")
    with locked_state(root) as state:
        state["vms"][vm_key("sim", 700)] = {"vmid": 700, "node": "sim", "status": "running"}
    assert not runners_working(root)  # no runner record
    record = root.vm_dir("sim", 700) / RECORD
    record.parent.mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        record.write_text(f'{{"pid": {sleeper.pid}, "started": 1.0, "finished": null}}')
        assert runners_working(root)
        record.write_text(f'{{"pid": {sleeper.pid}, "started": 1.0, "finished": 2.0}}')
        assert not runners_working(root)
        record.write_text(f'{{"pid": {sleeper.pid}, "started": 1.0, "finished": null}}')
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not runners_working(root)  # its process is gone: nothing is at work


def test_a_new_daemon_waits_for_the_lock_of_one_that_is_stopping(tmp_path: Path) -> None:
    root = SimRoot(tmp_path / "sim")
    held = take_lock(root, wait=0, holder_alive=lambda: False)
    assert held is not None
    began = time.monotonic()
    assert take_lock(root, wait=5, holder_alive=lambda: True) is None  # a live daemon: at once
    assert time.monotonic() - began < 1
    release = threading.Timer(0.3, os.close, [held])
    release.start()
    began = time.monotonic()
    taken = take_lock(root, wait=5, holder_alive=lambda: False)  # it removed daemon.json
    release.join()
    assert taken is not None
    os.close(taken)
    assert 0.2 <= time.monotonic() - began < 5
