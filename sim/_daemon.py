"""The simulator's SSH daemon: every simulated host and running VM answers SSH on its address.

Run as its own process, `python -m pveplan.sim._daemon ROOT` (`_control.start_daemon` does
that), on plain asyncio + asyncssh: no trio, so nothing of the client side's bridge is needed
here. It binds one port, chosen ephemeral on the first host's address, on every machine's
loopback address; writes ROOT/daemon.json once the hosts listen; then reconciles listeners
with state.json every TICK seconds until SIGTERM/SIGINT (docs/simulator.md, "The daemon"),
or until `_lifetime.Lifetime` finds a reason to stop by itself (its root deleted, idle too long,
the process it was started to live with gone).
A nested PVE host has no listener of its own: it is its VM, served by the VM's listener,
and a VM is served only while every host up its chain runs (`host_chain_running`).

A session is the real thing: `/bin/sh -c COMMAND` in the machine's tree, in a process group
of its own that is killed when the client goes away first. Only what pveplan needs is served:
public-key logins, exec, SFTP (chrooted to the machine's root) and tunnels to the simulator's
own addresses (how the driver reaches a nested host's guests); no shells, no other forwarding.
The daemon never writes state.json: it only follows it. It holds ROOT/daemon.lock (flock)
for its lifetime, so two daemons never serve one root, whatever happened to daemon.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from pveplan.sim._control import pid_is_daemon
from pveplan.sim._lifetime import Lifetime, LifetimeOptions, parse_argv, take_lock
from pveplan.sim._setup import session_env
from pveplan.sim._state import (
    SimRoot,
    address_prefix,
    append_record,
    host_chain_running,
    read_config,
    read_state,
    write_json_atomic,
)

LOG = logging.getLogger("pveplan.sim.daemon")

TICK = 0.05
"""Seconds between looks at state.json/config.json (only their stat unless they changed)."""
RECHECK = 1.0
"""Seconds between full reconciles even when nothing changed (host key files, failed binds)."""
GRACE = 2.0
"""Seconds shutdown waits for sessions and listeners before leaving anyway."""
LOCK_WAIT = 3 * GRACE
"""Seconds a new daemon waits for the lock of one that is stopping (it removed daemon.json)."""
CHUNK = 65536
LOGIN_TIMEOUT = 10.0
BIND_ATTEMPTS = 5
HOST_KEY = Path("etc/ssh/ssh_host_ed25519_key")
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}\Z")


@dataclass(frozen=True)
class Machine:
    """One SSH-able machine of the simulator: a host node or a VM, rooted at `root`."""

    address: str
    root: Path
    sim: SimRoot
    node: str
    vmid: int | None = None

    def home(self, user: str) -> Path | None:
        """The user's HOME in this tree, or None if the user cannot exist here."""
        if user == "root":
            return self.root / "root"
        if self.vmid is None or not _USER.match(user):
            return None  # a host node has root only; a bad name must not walk the tree
        return self.root / "home" / user

    def env(self, user: str, home: Path) -> dict[str, str]:
        return session_env(self.sim, self.root, self.node, self.vmid, user, home)


@dataclass(frozen=True)
class Spec:
    """What one address should serve: the machine and the host key it presents."""

    machine: Machine
    key: asyncssh.SSHKey = field(compare=False)
    key_id: str


@dataclass(eq=False)
class Listener:
    """A bound address with its live connections and sessions (closed together)."""

    spec: Spec
    acceptor: asyncssh.SSHAcceptor | None = None
    connections: set[asyncssh.SSHServerConnection] = field(default_factory=set)
    sessions: set[asyncio.subprocess.Process] = field(default_factory=set)
    last_seen: float = 0.0
    """time.monotonic() of the last connection opened or closed: activity, for `Lifetime`."""

    def kill_sessions(self) -> None:
        for child in list(self.sessions):
            _kill_group(child.pid)

    async def aclose(self) -> None:
        """Stop accepting, drop the connections, kill every session's process group."""
        if self.acceptor is not None:
            self.acceptor.close()
        for conn in list(self.connections):
            conn.close()
        self.kill_sessions()
        if self.acceptor is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.acceptor.wait_closed(), GRACE)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# --- host keys -------------------------------------------------------------------------------


def ensure_host_key(path: Path) -> asyncssh.SSHKey:
    """The ed25519 key at `path`, generated (0600, written atomically) if missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = asyncssh.generate_private_key("ssh-ed25519")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.export_private_key("openssh"))
        os.replace(tmp, path)
    return asyncssh.read_private_key(str(path))


def public_line(key: asyncssh.SSHKey) -> str:
    return key.export_public_key("openssh").decode().strip()


def _host_key_fault(config: dict[str, Any], vm: dict[str, Any]) -> bool:
    """Whether config.json asks this VM to present a key other than its own (`host_key`)."""
    for fault in config.get("faults", []):
        if fault.get("op") != "host_key":
            continue
        if fault.get("vmid") is not None and fault["vmid"] != vm.get("vmid"):
            continue
        if fault.get("name") is not None and fault["name"] != vm.get("name"):
            continue
        if fault.get("times") is not None and fault["times"] <= 0:
            continue
        return True
    return False


# --- one connection --------------------------------------------------------------------------


class _Server(asyncssh.SSHServer):
    """Per-connection callbacks: public-key auth from the machine's authorized_keys."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._listener.connections.add(conn)
        self._listener.last_seen = time.monotonic()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._listener.connections.discard(self._conn)
        self._listener.last_seen = time.monotonic()

    def begin_auth(self, username: str) -> bool:
        home = self._listener.spec.machine.home(username)
        path = home / ".ssh" / "authorized_keys" if home is not None else None
        if path is not None and path.is_file() and self._conn is not None:
            try:
                self._conn.set_authorized_keys(str(path))
            except (OSError, ValueError) as exc:
                LOG.warning("unreadable %s: %s", path, exc)
        return True  # always demand auth; with no keys set, every key is refused

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        """A tunnel (`ssh -J`, asyncssh's `tunnel=`) through this machine: allowed only to
        this simulator's own addresses, as a nested host reaches only its own guests."""
        prefix = address_prefix(self._listener.spec.machine.sim) + "."
        return dest_host.startswith(prefix)


async def _feed(source: asyncssh.SSHReader[bytes], sink: asyncio.StreamWriter) -> None:
    """Client stdin -> child stdin, then EOF. Ends at EOF, on a closed pipe or a lost channel."""
    try:
        while chunk := await source.read(CHUNK):
            sink.write(chunk)
            await sink.drain()
    except (OSError, asyncssh.Error, asyncssh.SignalReceived, asyncssh.BreakReceived):
        pass
    finally:
        sink.close()


async def _pump(source: asyncio.StreamReader, sink: asyncssh.SSHWriter[bytes]) -> None:
    """Child output -> channel, with back-pressure (not `redirect`, which lost data)."""
    while chunk := await source.read(CHUNK):
        try:
            sink.write(chunk)
            await sink.drain()
        except (OSError, asyncssh.Error):
            return  # the channel is gone: the session's close handling kills the child


async def _finish(child: asyncio.subprocess.Process, process: asyncssh.SSHServerProcess) -> int:
    assert child.stdout is not None and child.stderr is not None
    await asyncio.gather(_pump(child.stdout, process.stdout), _pump(child.stderr, process.stderr))
    return await child.wait()


async def _run_session(listener: Listener, process: asyncssh.SSHServerProcess[bytes]) -> None:
    """One exec: spawn, copy streams both ways, report the exit; kill the group if cut short."""
    machine = listener.spec.machine
    user = process.get_extra_info("username")
    command = process.command
    home = machine.home(user)
    if command is None or home is None:
        process.stderr.write(b"pveplan sim: only commands are served (no shells)\n")
        process.exit(1)
        return
    try:
        child = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=home,
            env=machine.env(user, home),
            start_new_session=True,  # pitfall 5: kill the group, not just `sh`
        )
    except OSError as exc:
        process.stderr.write(f"pveplan sim: cannot start /bin/sh in {home}: {exc}\n".encode())
        process.exit(126)
        return
    listener.sessions.add(child)
    with contextlib.suppress(OSError):
        record = {"address": machine.address, "user": user, "command": command, "pid": child.pid}
        append_record(machine.sim.processes, record)
    assert child.stdin is not None
    feeder = asyncio.ensure_future(_feed(process.stdin, child.stdin))
    finished = asyncio.ensure_future(_finish(child, process))
    closed = asyncio.ensure_future(process.channel.wait_closed())
    try:
        await asyncio.wait({finished, closed}, return_when=asyncio.FIRST_COMPLETED)
        if finished.done() and not process.channel.is_closing():
            status = finished.result()
            if status >= 0:
                process.exit(status)
            else:
                process.exit_with_signal(signal.Signals(-status).name.removeprefix("SIG"))
        else:
            _kill_group(child.pid)  # the client left first (cancel, timeout, lost connection)
    finally:
        for task in (feeder, finished, closed):
            task.cancel()
        if child.returncode is None:
            _kill_group(child.pid)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.wait(), GRACE)
        listener.sessions.discard(child)


def _sftp_server(root: Path, chan: asyncssh.SSHServerChannel[bytes]) -> asyncssh.SFTPServer:
    return asyncssh.SFTPServer(chan, chroot=os.fsencode(root))


# --- the daemon ------------------------------------------------------------------------------


class Daemon:
    """The listeners of one simulator root and the loop that keeps them in step with it."""

    def __init__(self, root: SimRoot, options: LifetimeOptions | None = None) -> None:
        self.root = root
        self.lifetime = Lifetime(root, options or LifetimeOptions())
        self.port = 0
        self.listeners: dict[str, Listener] = {}
        self.hosts: dict[str, dict[str, str]] = {}
        self.stop = asyncio.Event()
        self.started = time.time()
        self._fault_keys: dict[str, asyncssh.SSHKey] = {}
        self._pending = False

    async def _listen(self, spec: Spec, port: int) -> Listener:
        listener = Listener(spec)
        listener.acceptor = await asyncssh.listen(
            spec.machine.address,
            port,
            reuse_address=True,
            config=None,
            server_factory=functools.partial(_Server, listener),
            server_host_keys=[spec.key],
            process_factory=functools.partial(_run_session, listener),
            sftp_factory=functools.partial(_sftp_server, spec.machine.root),
            allow_scp=False,
            encoding=None,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_pty=False,
            login_timeout=LOGIN_TIMEOUT,
        )
        return listener

    def _host_specs(self, state: dict[str, Any]) -> dict[str, Spec]:
        """Top-level hosts only: a nested one is its VM, which `_vm_specs` serves."""
        specs: dict[str, Spec] = {}
        for node, info in sorted(state.get("nodes", {}).items()):
            address = info.get("address")
            if not address or info.get("vmid") is not None:
                continue
            root = self.root.host_dir(node)
            key = ensure_host_key(root / HOST_KEY)
            machine = Machine(address=address, root=root, sim=self.root, node=node)
            specs[address] = Spec(machine, key, public_line(key))
        return specs

    def _vm_specs(self, state: dict[str, Any], config: dict[str, Any]) -> dict[str, Spec]:
        specs: dict[str, Spec] = {}
        for vm in state.get("vms", {}).values():
            address = vm.get("address")
            if vm.get("status") != "running" or not address:
                continue
            if not host_chain_running(state, vm["node"]):
                continue  # its host (or one above) is stopped: the guest is unreachable
            root = self.root.vm_dir(vm["node"], vm["vmid"])
            machine = Machine(address, root, self.root, vm["node"], vm["vmid"])
            if _host_key_fault(config, vm):
                key = self._fault_keys.get(address)
                if key is None:
                    key = self._fault_keys[address] = asyncssh.generate_private_key("ssh-ed25519")
                specs[address] = Spec(machine, key, "fault:" + public_line(key))
                continue
            self._fault_keys.pop(address, None)
            try:
                data = (root / HOST_KEY).read_bytes()
                key = asyncssh.import_private_key(data)
            except FileNotFoundError:
                self._pending = True  # cloud-init has not installed it yet: look every tick
                continue
            except (OSError, ValueError) as exc:
                LOG.warning("VM %s: unusable host key: %s", address, exc)
                continue
            specs[address] = Spec(machine, key, hashlib.sha256(data).hexdigest())
        return specs

    def desired(self) -> dict[str, Spec]:
        state, config = read_state(self.root), read_config(self.root)
        self.lifetime.configure(config)
        self._pending = False
        return {**self._host_specs(state), **self._vm_specs(state, config)}

    async def bind_hosts(self) -> None:
        """Bind every host node (port 0 on the first, that port on the rest), retrying on a
        port clash a few times."""
        hosts = self._host_specs(read_state(self.root))
        previous = _last_port(self.root)
        for attempt in range(BIND_ATTEMPTS):
            # The port of the previous daemon first: nested hosts wrote it into their node
            # files (a real host's SSH port does not change when sshd restarts either).
            self.port = previous if attempt == 0 else 0
            try:
                for address, spec in hosts.items():
                    self.listeners[address] = await self._listen(spec, self.port)
                    if not self.port:
                        self.port = self.listeners[address].acceptor.get_port()  # type: ignore[union-attr]
                break
            except OSError as exc:
                LOG.warning("bind attempt %d failed: %s", attempt + 1, exc)
                await self.close_all()
        else:
            raise SystemExit(f"pveplan sim: cannot bind the host addresses of {self.root.path}")
        if not self.port:  # no host node yet: still fix a port for the VMs to come
            self.port = _free_port(read_state(self.root)["prefix"] + ".255.254")
        with contextlib.suppress(OSError):
            (self.root.path / PORT_FILE).write_text(f"{self.port}\n")
        self._update_hosts()

    def _update_hosts(self) -> None:
        hosts = {
            listener.spec.machine.node: {
                "address": address,
                "host_key": public_line(listener.spec.key),
            }
            for address, listener in self.listeners.items()
            if listener.spec.machine.vmid is None
        }
        if hosts != self.hosts or not self.root.daemon.exists():
            self.hosts = hosts
            info = {"pid": os.getpid(), "port": self.port, "started": self.started, "hosts": hosts}
            write_json_atomic(self.root.daemon, info)

    async def reconcile(self) -> None:
        """Close what should not listen (or listens with the wrong key), open what should."""
        try:
            desired = self.desired()
        except (OSError, ValueError) as exc:
            LOG.warning("cannot read the simulator state: %s", exc)
            return
        for address in list(self.listeners):
            spec = desired.get(address)
            if spec is None or spec != self.listeners[address].spec:
                LOG.info("closing %s", address)
                await self.listeners.pop(address).aclose()
        for address, spec in desired.items():
            if address in self.listeners:
                continue
            try:
                self.listeners[address] = await self._listen(spec, self.port)
                LOG.info("listening on %s:%d", address, self.port)
            except OSError as exc:
                LOG.warning("cannot listen on %s:%d: %s", address, self.port, exc)
        try:
            self._update_hosts()
        except OSError as exc:  # ROOT deleted under us: `Lifetime` stops the daemon next tick
            LOG.warning("cannot write %s: %s", self.root.daemon, exc)

    async def serve(self) -> None:
        """Reconcile whenever state.json/config.json change, every RECHECK s, or every tick
        while a running VM still lacks its host key; until `stop` is set or the lifetime
        says to stop (looked at first: a deleted root must not be recreated by a read)."""
        seen: tuple[Any, ...] = ()
        last = time.monotonic()
        while not self.stop.is_set():
            if reason := self.lifetime.gone_reason():
                LOG.info("stopping by itself: %s", reason)
                return
            stamp = (_stamp(self.root.state), _stamp(self.root.config))
            now = time.monotonic()
            if stamp != seen:
                self.lifetime.touch()
            if stamp != seen or now - last >= RECHECK or self._pending:
                seen, last = stamp, now
                await self.reconcile()
            if reason := self.lifetime.idle_reason(self.listeners.values()):
                LOG.info("stopping by itself: %s", reason)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), TICK)

    async def close_all(self) -> None:
        listeners = list(self.listeners.values())
        self.listeners.clear()
        await asyncio.gather(*(listener.aclose() for listener in listeners))

    async def shutdown(self) -> None:
        """Stop listening, kill every session, wait (bounded) for them to be reaped."""
        listeners = list(self.listeners.values())
        await self.close_all()
        deadline = time.monotonic() + GRACE
        while any(listener.sessions for listener in listeners) and time.monotonic() < deadline:
            for listener in listeners:
                listener.kill_sessions()
            await asyncio.sleep(TICK)


PORT_FILE = "daemon.port"
"""The port the last daemon of this root served; the next one tries it first."""


def _last_port(root: SimRoot) -> int:
    try:
        return int((root.path / PORT_FILE).read_text())
    except (OSError, ValueError):
        return 0


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return (info.st_mtime_ns, info.st_ino)


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


async def _main(root: SimRoot, options: LifetimeOptions) -> None:
    daemon = Daemon(root, options)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, daemon.stop.set)
    try:
        await daemon.bind_hosts()
        LOG.info("pid %d serving %s on port %d", os.getpid(), root.path, daemon.port)
        await daemon.serve()
    finally:
        # daemon.json first: from now on `start_daemon` starts a new daemon, which waits
        # (LOCK_WAIT) for our lock instead of handing out addresses that are closing.
        if _recorded_pid(root) == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                root.daemon.unlink()
        await daemon.shutdown()
        LOG.info("stopped")


def _holder_alive(root: SimRoot) -> bool:
    other = _recorded_pid(root)
    return other is not None and pid_is_daemon(other)


def main(argv: list[str]) -> int:
    root, options = parse_argv(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    lock = take_lock(root, wait=LOCK_WAIT, holder_alive=functools.partial(_holder_alive, root))
    other = _recorded_pid(root)
    if lock is None or (other is not None and other != os.getpid() and pid_is_daemon(other)):
        print(
            f"pveplan sim: a daemon is already running for {root.path} (pid {other})",
            file=sys.stderr,
        )
        return 1
    try:
        asyncio.run(_main(root, options))
    except (OSError, ValueError) as exc:  # at start-up only: later, reconcile logs and goes on
        print(f"pveplan sim: cannot start the daemon for {root.path}: {exc}", file=sys.stderr)
        return 1
    finally:
        os.close(lock)  # the lock goes before the interpreter's own (slow) exit
    return 0


def _recorded_pid(root: SimRoot) -> int | None:
    try:
        return int(json.loads(root.daemon.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
