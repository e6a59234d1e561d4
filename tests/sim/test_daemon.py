"""The simulator's SSH daemon, as a real subprocess, driven through real SSH on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
import trio

from pveplan.executor.channels import ChannelError, CommandResult, SshTarget, wait_for_ssh
from pveplan.sim import SimError, daemon_info, start_daemon, stop_daemon
from pveplan.sim._setup import add_host_node
from pveplan.sim._state import allocate_address, locked_state, vm_key, write_json_atomic
from tests.executor import (
    NODE,
    VM_USER,
    Sim,
    group_alive,
    make_sim,
    run_trio,
    stop_sim,
    wait_until,
)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    sim = make_sim(tmp_path_factory.mktemp("sim"))
    yield sim
    stop_sim(sim)


def listening(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((address, port)) == 0


async def run_on(sim: Sim, target: SshTarget, argv: list[str]) -> CommandResult:
    async with sim.pool() as pool:
        await wait_for_ssh(pool, target, timeout=3, first_delay=0.02)
        channel = await pool.channel(target)
        return await channel.run(argv)


def test_daemon_json_names_hosts_and_their_keys(sim: Sim) -> None:
    info = daemon_info(sim.root)
    assert info == sim.info
    assert set(info) == {"pid", "port", "started", "hosts", "api_port", "api"}
    key_path = sim.root.host_dir(NODE) / "etc/ssh/ssh_host_ed25519_key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    public = asyncssh.read_private_key(str(key_path)).export_public_key("openssh")
    assert info["hosts"][NODE]["host_key"] == public.decode().strip()
    assert listening(info["hosts"][NODE]["address"], info["port"])


def test_vm_listener_follows_the_vm_status(sim: Sim) -> None:
    target = sim.add_vm(401)
    assert not listening(target.host, target.port)
    sim.set_status(401, "running")
    wait_until(lambda: listening(target.host, target.port), what="the VM's listener")

    async def body() -> ChannelError:
        async with sim.pool() as pool:
            channel = await pool.channel(target)
            async with trio.open_nursery() as nursery:

                async def stop_vm() -> None:
                    await trio.to_thread.run_sync(sim.pid_of, "vm-stop-marker")
                    await trio.to_thread.run_sync(sim.set_status, 401, "stopped")

                nursery.start_soon(stop_vm)
                try:
                    await channel.run(["sh", "-c", "sleep 30", "vm-stop-marker"])
                except ChannelError as exc:
                    return exc
        raise AssertionError("the session outlived its VM")

    error = run_trio(body)
    assert error.kind == "lost"
    pid = sim.pid_of("vm-stop-marker")
    wait_until(lambda: not group_alive(pid), what="the stopped VM's session to die")
    wait_until(lambda: not listening(target.host, target.port), what="the listener to close")


def test_exec_environment_and_record(sim: Sim) -> None:
    target = sim.add_vm(402, status="running")
    tree = sim.root.vm_dir(NODE, 402)
    script = 'pwd; echo "$HOME|$USER|$LOGNAME|$PATH|$LANG"; echo "$PVEPLAN_SIM_ROOT|$PVEPLAN_SIM_NODE|$PVEPLAN_SIM_VMID|$PVEPLAN_SYSROOT"'
    as_user = run_trio(lambda: run_on(sim, target, ["sh", "-c", script]))
    home = tree / "home" / VM_USER
    assert as_user.stdout.decode().splitlines() == [
        str(home),
        f"{home}|{VM_USER}|{VM_USER}|{tree}/bin:/usr/local/bin:/usr/bin:/bin|C.UTF-8",
        f"{sim.root.path}|{NODE}|402|{tree}",  # the VM's tree stands for its /
    ]
    root_target = SshTarget(
        host=target.host, port=target.port, user="root", host_key=target.host_key, name="vm402"
    )
    as_root = run_trio(lambda: run_on(sim, root_target, ["sh", "-c", 'echo "$HOME"; pwd']))
    assert as_root.stdout == f"{tree / 'root'}\n{tree / 'root'}\n".encode()
    records = [p for p in sim.processes() if p["address"] == target.host]
    assert [(p["user"], p["command"]) for p in records] == [
        (VM_USER, "true"),
        (VM_USER, f"sh -c '{script}'"),
        ("root", "true"),
        ("root", "sh -c 'echo \"$HOME\"; pwd'"),
    ]
    on_host = run_trio(
        lambda: run_on(
            sim, sim.host_target(), ["sh", "-c", "echo $PVEPLAN_SIM_VMID-$PVEPLAN_SYSROOT"]
        )
    )
    assert on_host.stdout == f"-{sim.root.host_dir(NODE)}\n".encode()  # the host's tree too


def test_exit_signal_and_unknown_user(sim: Sim) -> None:
    # `kill 0` signals the session's whole group, `/bin/sh -c` included: an exit signal
    killed = run_trio(lambda: run_on(sim, sim.host_target(), ["kill", "-TERM", "0"]))
    assert killed.exit_status == -signal.SIGTERM
    target = sim.add_vm(403, status="running")
    wait_until(lambda: listening(target.host, target.port), what="the VM's listener")
    stranger = SshTarget(
        host=target.host, port=target.port, user="nobody", host_key=target.host_key, name="vm403"
    )

    async def login() -> None:
        async with sim.pool() as pool:
            await pool.channel(stranger)

    with pytest.raises(ChannelError, match="as nobody: our key was not accepted"):
        run_trio(login)


def test_host_key_fault_presents_another_key(sim: Sim) -> None:
    target = sim.add_vm(404, status="running")
    assert run_trio(lambda: run_on(sim, target, ["true"])).exit_status == 0
    sim.set_faults([{"op": "host_key", "vmid": 404}])
    try:
        error = run_trio(lambda: rekeyed(sim, target, want_error=True))
        assert error is not None and error.kind == "host-key"
        assert "does not match the key pinned at creation: refusing to connect" in str(error)
    finally:
        sim.set_faults([])
    assert run_trio(lambda: rekeyed(sim, target, want_error=False)) is None


async def rekeyed(sim: Sim, target: SshTarget, *, want_error: bool) -> ChannelError | None:
    """Connect afresh until connecting fails (or succeeds): the daemon re-keys within ticks."""
    with trio.fail_after(3):
        while True:  # bounded by fail_after
            async with sim.pool() as pool:  # a fresh pool: a new connection, a new handshake
                try:
                    await pool.channel(target)
                except ChannelError as exc:
                    if want_error and exc.kind == "host-key":  # not a login cut by the re-key
                        return exc
                else:
                    if not want_error:
                        return None
            await trio.sleep(0.05)


def test_shells_are_refused(sim: Sim) -> None:
    host = sim.host_target()

    async def shell() -> asyncssh.SSHCompletedProcess:
        async with asyncssh.connect(
            host.host,
            host.port,
            username="root",
            client_keys=[sim.client_key],
            known_hosts=([asyncssh.import_public_key(host.host_key)], [], []),
            config=None,
            agent_path=None,
        ) as conn:
            return await asyncio.wait_for(conn.run(input=""), 5)

    done = asyncio.run(shell())
    assert done.exit_status == 1
    assert "only commands are served" in done.stderr


def test_second_daemon_refuses(sim: Sim) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "pveplan.sim._daemon", str(sim.root.path)],
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert second.returncode == 1
    assert b"already running" in second.stderr
    assert daemon_info(sim.root) == sim.info


def test_sigterm_stops_sessions_and_removes_daemon_json(tmp_path: Path) -> None:
    sim = make_sim(tmp_path / "sim", start=False)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "pveplan.sim._daemon", str(sim.root.path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: daemon_info(sim.root) is not None, timeout=10, what="daemon.json")
        sim.info = daemon_info(sim.root) or {}
        assert sim.info["pid"] == daemon.pid

        async def body() -> ChannelError:
            async with sim.pool() as pool:
                channel = await pool.channel(sim.host_target())
                async with trio.open_nursery() as nursery:

                    async def terminate() -> None:
                        await trio.to_thread.run_sync(sim.pid_of, "term-marker")
                        daemon.send_signal(signal.SIGTERM)

                    nursery.start_soon(terminate)
                    try:
                        await channel.run(["sh", "-c", "sleep 30", "term-marker"])
                    except ChannelError as exc:
                        return exc
            raise AssertionError("the session outlived the daemon")

        assert run_trio(body).kind == "lost"
        assert daemon.wait(timeout=5) == 0
        assert not sim.root.daemon.exists()
        assert not group_alive(sim.pid_of("term-marker"))
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        stop_sim(sim)


def test_control_is_idempotent_and_ignores_stale_info(tmp_path: Path) -> None:
    sim = make_sim(tmp_path / "sim", start=False)
    assert daemon_info(sim.root) is None
    assert stop_daemon(sim.root) is False
    gone = subprocess.Popen(["true"])
    gone.wait()
    for stale in (gone.pid, os.getpid()):  # a dead pid; a live one that is no daemon
        write_json_atomic(sim.root.daemon, {"pid": stale, "port": 1, "hosts": {}})
        assert daemon_info(sim.root) is None
    try:
        first = start_daemon(sim.root)
        assert start_daemon(sim.root)["pid"] == first["pid"]
        assert json.loads(sim.root.daemon.read_text()) == first
    finally:
        assert stop_daemon(sim.root) is True
    assert not sim.root.daemon.exists()
    assert stop_daemon(sim.root) is False


def test_start_failure_names_the_cause(tmp_path: Path) -> None:
    sim = make_sim(tmp_path / "sim", start=False)
    sim.root.state.write_text("{not json")
    with pytest.raises(SimError, match="exited with status 1") as caught:
        start_daemon(sim.root, timeout=10)
    cause = f"cannot start the daemon for {sim.root.path}: {sim.root.state} is not valid JSON"
    assert cause in str(caught.value)


def add_guest(sim: Sim, node: str, vmid: int) -> SshTarget:
    """A running VM on (nested) host `node` whose root takes the client key; its target."""
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    tree = sim.root.vm_dir(node, vmid)
    key_path = tree / "etc/ssh/ssh_host_ed25519_key"
    key_path.parent.mkdir(parents=True)
    key_path.write_bytes(host_key.export_private_key("openssh"))
    authorized = tree / "root/.ssh/authorized_keys"
    authorized.parent.mkdir(parents=True)
    authorized.write_bytes(sim.client_key.export_public_key("openssh"))
    with locked_state(sim.root) as state:
        address = allocate_address(state)
        state["vms"][vm_key(node, vmid)] = {
            "vmid": vmid,
            "node": node,
            "name": f"guest{vmid}",
            "status": "running",
            "config": {},
            "lock": None,
            "started_at": None,
            "address": address,
        }
    public = host_key.export_public_key("openssh").decode().strip()
    return SshTarget(host=address, port=sim.port, user="root", host_key=public, name="guest")


def test_a_nested_host_is_served_by_its_vm_listener(sim: Sim) -> None:
    vm = sim.add_vm(405, status="running")
    with locked_state(sim.root) as state:
        add_host_node(sim.root, state, "inner", 405, parent=NODE)
    guest = add_guest(sim, "inner", 100)
    wait_until(lambda: listening(guest.host, guest.port), what="the nested guest's listener")
    assert "inner" not in daemon_info(sim.root)["hosts"]  # type: ignore[index]
    host = SshTarget(host=vm.host, port=vm.port, user="root", host_key=vm.host_key, name="inner")
    script = 'echo "$HOME"; pvesh get /nodes/inner/version --output-format json'
    done = run_trio(lambda: run_on(sim, host, ["sh", "-c", script]))
    home, version = done.stdout.decode().splitlines()
    assert home == str(sim.root.vm_dir(NODE, 405) / "root")
    assert json.loads(version)["release"] == "9.1"
    on_guest = run_trio(lambda: run_on(sim, guest, ["sh", "-c", "echo $PVEPLAN_SIM_NODE"]))
    assert on_guest.stdout == b"inner\n"


def test_stopping_a_host_vm_takes_its_guests_off_the_network(sim: Sim) -> None:
    vm = sim.add_vm(406, status="running")
    with locked_state(sim.root) as state:
        add_host_node(sim.root, state, "inner2", 406, parent=NODE)
    guest = add_guest(sim, "inner2", 100)
    wait_until(lambda: listening(guest.host, guest.port), what="the nested guest's listener")
    sim.set_status(406, "stopped")
    wait_until(lambda: not listening(guest.host, guest.port), what="the guest to go away")
    assert not listening(vm.host, vm.port)
    sim.set_status(406, "running")
    wait_until(lambda: listening(guest.host, guest.port), what="the guest to come back")
