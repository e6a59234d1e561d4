"""Command channels against real processes: local subprocesses and the simulator's SSH daemon.

Everything runs for real on loopback: the daemon is a subprocess (started from a sync fixture),
sessions are real `/bin/sh` processes, and cleanup is checked by looking for their process
groups in /proc.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import msgspec
import pytest
import trio

from pveplan.executor.channels import (
    ChannelError,
    CommandResult,
    LocalChannel,
    SshTarget,
    wait_for_ssh,
)
from tests.executor import NODE, Sim, group_alive, make_sim, run_trio, stop_sim, wait_until


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    sim = make_sim(tmp_path_factory.mktemp("sim"))
    yield sim
    stop_sim(sim)


# --- local ---------------------------------------------------------------------------------


def test_local_run_output_and_status(tmp_path: Path) -> None:
    channel = LocalChannel(
        "here", env={"GREETING": "hi there", "PATH": os.environ["PATH"]}, cwd=tmp_path
    )

    async def body() -> tuple[CommandResult, CommandResult]:
        ok = await channel.run(["sh", "-c", 'echo "$GREETING"; pwd; echo oops >&2; exit 3'])
        fed = await channel.run(["cat"], input=b"fed\n")
        return ok, fed

    ok, fed = run_trio(body)
    assert ok == CommandResult(
        argv=("sh", "-c", 'echo "$GREETING"; pwd; echo oops >&2; exit 3'),
        exit_status=3,
        stdout=f"hi there\n{tmp_path}\n".encode(),
        stderr=b"oops\n",
    )
    assert fed.stdout == b"fed\n" and fed.exit_status == 0


def test_local_timeout_kills_the_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    channel = LocalChannel("here")

    async def body() -> None:
        await channel.run(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"], timeout=0.5)

    started = time.monotonic()
    with pytest.raises(ChannelError) as caught:
        run_trio(body)
    assert time.monotonic() - started < 3
    assert caught.value.kind == "timeout" and caught.value.host == "here"
    assert str(caught.value) == "sh on here timed out after 0.5s"
    sleeper = int(pidfile.read_text())
    wait_until(lambda: not group_alive(os.getpgid(sleeper)) if _exists(sleeper) else True)


def _exists(pid: int) -> bool:
    try:
        os.getpgid(pid)
    except ProcessLookupError:
        return False
    return True


def test_local_missing_program_and_files(tmp_path: Path) -> None:
    channel = LocalChannel("here", cwd=tmp_path)

    async def body() -> tuple[bytes | None, bytes | None]:
        await channel.put_file("f", b"one")
        await channel.put_file("f", b"two", mode=0o640)
        return await channel.get_file("f"), await channel.get_file("absent")

    assert run_trio(body) == (b"two", None)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o640
    assert not (tmp_path / "f.tmp").exists()
    with pytest.raises(ChannelError, match="cannot run no-such-program on here") as caught:
        run_trio(lambda: channel.run(["no-such-program"]))
    assert caught.value.kind == "start"


# --- ssh: commands -------------------------------------------------------------------------


def test_ssh_run_output_status_and_quoting(sim: Sim) -> None:
    tricky = 'it\'s "$HOME" & `x`; *'

    async def body() -> tuple[CommandResult, CommandResult]:
        async with sim.pool() as pool:
            channel = await pool.channel(sim.host_target())
            failing = await channel.run(["sh", "-c", "echo out; echo err >&2; exit 7"])
            echoed = await channel.run(["printf", "%s|", tricky, ""])
            return failing, echoed

    failing, echoed = run_trio(body)
    assert (failing.exit_status, failing.stdout, failing.stderr) == (7, b"out\n", b"err\n")
    assert echoed.stdout == f"{tricky}||".encode()  # each element arrives as one argument


def test_ssh_stdin_reaches_eof(sim: Sim) -> None:
    big = os.urandom(2_000_000)  # more than the SSH window: exercises back-pressure both ways

    async def body() -> tuple[CommandResult, CommandResult, CommandResult]:
        async with sim.pool() as pool:
            channel = await pool.channel(sim.host_target())
            small = await channel.run(["cat"], input=b"hello\n")
            empty = await channel.run(["cat"], input=b"")
            large = await channel.run(["cat"], input=big)
            return small, empty, large

    small, empty, large = run_trio(body)
    assert small.stdout == b"hello\n"
    assert empty.stdout == b"" and empty.exit_status == 0
    assert large.stdout == big


def test_ssh_timeout_closes_and_kills_the_remote_group(sim: Sim) -> None:
    async def body() -> None:
        async with sim.pool() as pool:
            channel = await pool.channel(sim.host_target())
            await channel.run(["sh", "-c", "sleep 30", "timeout-marker"], timeout=0.5)

    started = time.monotonic()
    with pytest.raises(ChannelError) as caught:
        run_trio(body)
    assert time.monotonic() - started < 3
    target = sim.host_target()
    assert caught.value.kind == "timeout"
    assert str(caught.value) == (f"sh on {NODE} ({target.host}:{target.port}) timed out after 0.5s")
    pid = sim.pid_of("timeout-marker")
    wait_until(lambda: not group_alive(pid), what="the timed-out session's group to die")


def test_ssh_cancel_closes_the_channel(sim: Sim) -> None:
    async def body() -> None:
        async with sim.pool() as pool:
            channel = await pool.channel(sim.host_target())
            with trio.move_on_after(0.3):
                await channel.run(["sh", "-c", "sleep 30", "cancel-marker"])
            assert pool.open_connections == 1  # the connection survives a cancelled command
            assert (await channel.run(["true"])).exit_status == 0

    run_trio(body)
    pid = sim.pid_of("cancel-marker")
    wait_until(lambda: not group_alive(pid), what="the cancelled session's group to die")


def test_ssh_concurrent_commands_share_one_connection(sim: Sim) -> None:
    async def body() -> tuple[list[bytes], int, float]:
        out: list[bytes] = []
        async with sim.pool() as pool:
            started = trio.current_time()

            async def one(i: int) -> None:
                channel = await pool.channel(sim.host_target())
                result = await channel.run(["sh", "-c", f"sleep 0.3; echo {i}"])
                out.append(result.stdout)

            async with trio.open_nursery() as nursery:
                for i in range(10):
                    nursery.start_soon(one, i)
            return out, pool.open_connections, trio.current_time() - started

    out, connections, elapsed = run_trio(body)
    assert sorted(out) == sorted(f"{i}\n".encode() for i in range(10))
    assert connections == 1
    assert elapsed < 1.5  # ran side by side, not one after another (10 x 0.3 s)


# --- ssh: files ----------------------------------------------------------------------------


def test_ssh_files_land_inside_the_machine_root(sim: Sim) -> None:
    async def body() -> tuple[bytes | None, bytes | None, bytes | None]:
        async with sim.pool() as pool:
            channel = await pool.channel(sim.host_target())
            await channel.put_file("/root/note.txt", b"first")
            await channel.put_file("/root/note.txt", b"second")  # replaces atomically
            await channel.put_file("/var/lib/vz/snippets/x.yaml", b"#cloud-config\n", mode=0o640)
            return (
                await channel.get_file("/root/note.txt"),
                await channel.get_file("/root/absent"),
                await channel.get_file("/../../root/note.txt"),  # cannot climb out of the chroot
            )

    root = sim.root.host_dir(NODE)
    (root / "var/lib/vz/snippets").mkdir(parents=True, exist_ok=True)
    got, absent, climbed = run_trio(body)
    assert (got, absent, climbed) == (b"second", None, b"second")
    note = root / "root/note.txt"
    assert note.read_bytes() == b"second"
    assert stat.S_IMODE(note.stat().st_mode) == 0o600
    assert not (root / "root/note.txt.tmp").exists()
    assert stat.S_IMODE((root / "var/lib/vz/snippets/x.yaml").stat().st_mode) == 0o640


def test_ssh_file_errors(sim: Sim) -> None:
    async def body() -> None:
        async with sim.pool() as pool:
            channel = await pool.channel(sim.host_target())
            await channel.put_file("/no/such/dir/f", b"x")

    with pytest.raises(ChannelError, match=r"cannot write /no/such/dir/f on sim") as caught:
        run_trio(body)
    assert caught.value.kind == "file"


# --- ssh: connection failures --------------------------------------------------------------


def test_wrong_pinned_host_key_is_refused_at_once(sim: Sim) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode()
    target = sim.host_target(host_key=other)

    async def body() -> None:
        async with sim.pool() as pool:
            await wait_for_ssh(pool, target, timeout=5)

    started = time.monotonic()
    with pytest.raises(ChannelError) as caught:
        run_trio(body)
    assert time.monotonic() - started < 2  # not retried until the timeout
    assert caught.value.kind == "host-key"
    assert str(caught.value) == (
        f"host key of {NODE} ({target.host}:{target.port}) does not match the key pinned "
        "at creation: refusing to connect"
    )


def test_connection_refused_and_auth_failure(sim: Sim) -> None:
    with socket.socket() as probe:
        probe.bind((sim.host_target().host, 0))
        closed_port = probe.getsockname()[1]
    refused = msgspec.structs.replace(sim.host_target(), port=closed_port)
    stranger = sim.host_target(user="nobody")

    async def connect(target: SshTarget) -> None:
        async with sim.pool() as pool:
            await pool.channel(target)

    with pytest.raises(ChannelError, match="connection refused") as caught:
        run_trio(lambda: connect(refused))
    assert caught.value.kind == "refused"
    assert (
        str(caught.value)
        == f"cannot connect to sim ({refused.host}:{closed_port}): connection refused"
    )
    with pytest.raises(ChannelError, match="as nobody: our key was not accepted") as caught:
        run_trio(lambda: connect(stranger))
    assert caught.value.kind == "auth"


def test_wait_for_ssh_follows_a_booting_vm(sim: Sim) -> None:
    target = sim.add_vm(301)

    async def body() -> float:
        async with sim.pool() as pool:
            with pytest.raises(ChannelError, match=r"did not answer SSH within 0\.3s") as caught:
                await wait_for_ssh(pool, target, timeout=0.3)
            assert "connection refused" in str(caught.value)
            await trio.to_thread.run_sync(sim.set_status, 301, "running")
            started = trio.current_time()
            await wait_for_ssh(pool, target, timeout=5, first_delay=0.02)
            waited = trio.current_time() - started
            channel = await pool.channel(target)
            result = await channel.run(["sh", "-c", 'echo "$USER $PVEPLAN_SIM_VMID"'])
            assert result.stdout == b"pveplan 301\n"
            # the VM stops: its connection drops; it comes back: the same channel reconnects
            await trio.to_thread.run_sync(sim.set_status, 301, "stopped")
            with pytest.raises(ChannelError):
                with trio.fail_after(3):
                    while True:  # bounded by fail_after; until the listener is gone
                        await channel.run(["true"])
                        await trio.sleep(0.05)
            await trio.to_thread.run_sync(sim.set_status, 301, "running")
            await wait_for_ssh(pool, target, timeout=5, first_delay=0.02)
            assert (await channel.run(["echo", "back"])).stdout == b"back\n"
            return waited

    waited = run_trio(body)
    assert waited < 1.0


def test_killed_daemon_mid_command_is_an_error_not_a_hang(tmp_path: Path) -> None:
    sim = make_sim(tmp_path / "sim")

    async def kill_soon() -> None:
        await trio.to_thread.run_sync(sim.pid_of, "lost-marker")
        os.kill(sim.info["pid"], signal.SIGKILL)

    async def body() -> ChannelError:
        async with sim.pool() as pool:
            channel = await pool.channel(sim.host_target())
            async with trio.open_nursery() as nursery:
                nursery.start_soon(kill_soon)
                try:
                    await channel.run(["sh", "-c", "sleep 30", "lost-marker"])
                except ChannelError as exc:
                    return exc
        raise AssertionError("the command survived its daemon")

    try:
        started = time.monotonic()
        error = run_trio(body)
        assert time.monotonic() - started < 5
        target = sim.host_target()
        assert error.kind == "lost"
        assert str(error).startswith(
            f"connection to {NODE} ({target.host}:{target.port}) lost while running sh"
        )
    finally:
        stop_sim(sim)


def test_channel_error_defaults() -> None:
    error = ChannelError("pve1", "no access to this host is configured")
    assert str(error) == "pve1: no access to this host is configured"
    assert (error.host, error.cause, error.kind) == ("pve1", error.cause, "other")


def test_keepalives_notice_a_frozen_daemon(tmp_path: Path) -> None:
    sim = make_sim(tmp_path / "sim")

    async def body() -> ChannelError:
        async with sim.pool(keepalive_interval=0.2, keepalive_count_max=2) as pool:
            channel = await pool.channel(sim.host_target())
            await trio.to_thread.run_sync(os.kill, sim.info["pid"], signal.SIGSTOP)
            try:
                await channel.run(["sh", "-c", "sleep 30", "frozen-marker"])
            except ChannelError as exc:
                return exc
            raise AssertionError("a frozen peer went unnoticed")

    try:
        started = time.monotonic()
        error = run_trio(body)
        assert time.monotonic() - started < 3  # 0.2 s x 2 keepalives, not the 30 s command
        assert error.kind == "lost"
    finally:
        os.kill(sim.info["pid"], signal.SIGCONT)
        stop_sim(sim)
