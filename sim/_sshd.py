"""One SSH connection to a simulated machine: its login, its sessions, its SFTP.

A session is the real thing: `/bin/sh -c COMMAND` in the machine's tree, in a process group
of its own that is killed when the client goes away first. Only what pveplan needs is served:
public-key logins, exec, SFTP (chrooted to the machine's root) and tunnels to the simulator's
own addresses (how the driver reaches a nested host's guests); no shells, no other forwarding.
`_daemon` decides which machines listen where; a `Listener` here owns what one address has
open and closes it all together.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from pveplan.sim._inproc import HostCall, encode, host_call, in_context, pool
from pveplan.sim._setup import session_env
from pveplan.sim._state import SimRoot, address_prefix, append_record

LOG = logging.getLogger("pveplan.sim.daemon")

GRACE = 2.0
"""Seconds shutdown waits for sessions and listeners before leaving anyway."""
CHUNK = 65536
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


# --- one connection --------------------------------------------------------------------------


class SimServer(asyncssh.SSHServer):
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


async def run_session(listener: Listener, process: asyncssh.SSHServerProcess[bytes]) -> None:
    """One exec: spawn, copy streams both ways, report the exit; kill the group if cut short."""
    machine = listener.spec.machine
    user = process.get_extra_info("username")
    command = process.command
    home = machine.home(user)
    if command is None or home is None:
        process.stderr.write(b"pveplan sim: only commands are served (no shells)\n")
        process.exit(1)
        return
    call = host_call(machine.root, user, home, command)
    if call is not None:
        await _run_in_process(machine, user, command, call, process)
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


async def _run_in_process(
    machine: Machine, user: str, command: str, call: HostCall, process: asyncssh.SSHServerProcess
) -> None:
    """A host tool's command answered by the daemon itself (`_inproc`): its output streamed
    to the channel as the tool writes it, then its exit status."""
    with contextlib.suppress(OSError):
        record = {"address": machine.address, "user": user, "command": command}
        append_record(machine.sim.processes, record)
    loop = asyncio.get_running_loop()

    def writer(stream: asyncssh.SSHWriter[bytes]) -> Callable[[str], None]:
        def send(data: bytes) -> None:
            with contextlib.suppress(OSError, asyncssh.Error):
                stream.write(data)

        return lambda text: loop.call_soon_threadsafe(send, encode(text))

    run = functools.partial(call.run, writer(process.stdout), writer(process.stderr))
    status = await loop.run_in_executor(pool(), in_context(run))
    if not process.channel.is_closing():
        process.exit(status)


def sftp_server(root: Path, chan: asyncssh.SSHServerChannel[bytes]) -> asyncssh.SFTPServer:
    return asyncssh.SFTPServer(chan, chroot=os.fsencode(root))
