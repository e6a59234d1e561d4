"""SSH command channels: `SshPool` (one pinned connection per target), `SshChannel`, `SshStream`.

asyncssh is asyncio-only: every asyncssh coroutine is awaited through `executor._bridge`, so
this is the one module that touches asyncssh for commands and files. Host keys are pinned
(see `channels`); `channels` re-exports every public name here.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec
import trio

from pveplan.executor._bridge import loop_is_open, run_aio

from ._channel import CLOSE_GRACE, ChannelError, CommandResult, checked_argv
from ._lazy import LazyModule

if TYPE_CHECKING:
    import asyncssh
else:
    asyncssh = LazyModule("asyncssh")  # imported when a run first reaches for SSH


class SshTarget(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One SSH login: where, as whom, and the only host key the machine may present.

    `host_key` is an OpenSSH public key line ("ssh-ed25519 AAAA... comment"), pinned when
    the machine was created; `name` is how messages call the machine (the node's name).
    """

    host: str
    port: int
    user: str
    host_key: str
    name: str
    via: SshTarget | None = None
    """A machine to tunnel through (a nested host in front of its VMs), itself pinned."""
    pinned_in: str | None = None
    """The node file whose `ssh_host_key` pins the key (None: pinned at creation)."""

    @property
    def where(self) -> str:
        return f"{self.name} ({self.host}:{self.port})"


_PoolKey = tuple[object, ...]


def _pool_key(target: SshTarget) -> _PoolKey:
    # The pinned key is part of the identity: a connection verified against one key must
    # never serve a target that pins another. So is the route: a tunnel is another path.
    via = _pool_key(target.via) if target.via is not None else None
    return (target.host, target.port, target.user, target.host_key, via)


def _pinned_key(target: SshTarget) -> asyncssh.SSHKey:
    try:
        return asyncssh.import_public_key(target.host_key)
    except (asyncssh.KeyImportError, ValueError) as exc:
        cause = "the pinned host key is not an OpenSSH public key"
        message = f"{cause} ({target.where}): {exc}"
        raise ChannelError(target.name, cause, message=message, kind="host-key") from None


async def _sftp_put(conn: asyncssh.SSHClientConnection, path: str, data: bytes, mode: int) -> None:
    """(asyncio side) write path.tmp, chmod, rename over path."""
    tmp = path + ".tmp"
    async with conn.start_sftp_client() as sftp:
        async with sftp.open(tmp, "wb", asyncssh.SFTPAttrs(permissions=mode)) as handle:
            await handle.write(data)
        await sftp.chmod(tmp, mode)
        try:
            await sftp.posix_rename(tmp, path)
        except asyncssh.SFTPOpUnsupported:  # plain SFTPv3 rename refuses an existing target
            with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                await sftp.remove(path)
            await sftp.rename(tmp, path)


async def _sftp_get(conn: asyncssh.SSHClientConnection, path: str) -> bytes | None:
    """(asyncio side) the file's bytes, or None when it does not exist."""
    async with conn.start_sftp_client() as sftp:
        try:
            async with sftp.open(path, "rb") as handle:
                return await handle.read()
        except asyncssh.SFTPNoSuchFile:
            return None


class SshPool:
    """SSH connections, one per (host, port, user, pinned key), shared by concurrent callers.

    A connection is made the first time a target is asked for (under a per-target lock, so
    twenty concurrent first calls make one connection) and made again when it was lost.
    Keepalives notice a frozen peer after about `keepalive_interval * keepalive_count_max`
    seconds. Must be used inside `executor._bridge.open_loop()`; `aclose` (or leaving the
    `async with`) closes every connection, shielded and bounded, and must happen before the
    loop closes.
    """

    def __init__(
        self,
        client_key: bytes,
        *,
        keepalive_interval: float = 5.0,
        keepalive_count_max: int = 3,
        connect_timeout: float = 10.0,
    ) -> None:
        self._client_key_bytes = client_key
        self._client_key: asyncssh.SSHKey | None = None  # parsed at the first connection
        self._keepalive_interval = keepalive_interval
        self._keepalive_count_max = keepalive_count_max
        self._connect_timeout = connect_timeout
        self._connections: dict[_PoolKey, asyncssh.SSHClientConnection] = {}
        self._locks: dict[_PoolKey, trio.Lock] = {}
        self._closed = False

    async def __aenter__(self) -> SshPool:
        if not loop_is_open():
            raise RuntimeError(
                "SshPool must be used inside `async with executor._bridge.open_loop()`"
            )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def open_connections(self) -> int:
        """How many connections are open now (diagnostics and tests)."""
        return sum(not conn.is_closed() for conn in self._connections.values())

    async def channel(self, target: SshTarget) -> SshChannel:
        """A channel to `target`, connecting now if no live connection exists (ChannelError)."""
        await self._connection(target)
        return SshChannel(self, target)

    async def _connection(self, target: SshTarget) -> asyncssh.SSHClientConnection:
        if self._closed:
            raise RuntimeError("SshPool is closed")
        key = _pool_key(target)
        lock = self._locks.setdefault(key, trio.Lock())
        async with lock:
            conn = self._connections.get(key)
            if conn is not None and not conn.is_closed():
                return conn
            self._connections.pop(key, None)
            conn = await self._connect(target)
            self._connections[key] = conn
            return conn

    def _parsed_key(self) -> asyncssh.SSHKey:
        """The client key, parsed when a run first connects (a run that reaches no host
        never imports asyncssh)."""
        if self._client_key is None:
            self._client_key = asyncssh.import_private_key(self._client_key_bytes)
        return self._client_key

    async def _connect(self, target: SshTarget) -> asyncssh.SSHClientConnection:
        pinned = _pinned_key(target)
        where = target.where
        # Through the jump host's pooled connection (asyncssh opens a direct-tcpip
        # channel on it); its own failures are its own ChannelError, naming it.
        route = {"tunnel": await self._connection(target.via)} if target.via is not None else {}
        try:
            # asyncssh's own connect_timeout covers TCP + key exchange + auth; ours is the
            # backstop should it not fire.
            with trio.fail_after(self._connect_timeout + CLOSE_GRACE):
                return await run_aio(
                    asyncssh.connect,
                    target.host,
                    target.port,
                    username=target.user,
                    client_keys=[self._parsed_key()],
                    known_hosts=([pinned], [], []),
                    preferred_auth="publickey",
                    config=None,
                    agent_path=None,
                    agent_forwarding=False,
                    gss_host=None,
                    connect_timeout=self._connect_timeout,
                    keepalive_interval=self._keepalive_interval,
                    keepalive_count_max=self._keepalive_count_max,
                    **route,
                )
        except asyncssh.HostKeyNotVerifiable:
            message = f"host key of {where} does not match the key pinned at creation"
            if target.pinned_in is not None:  # a real host: its node file holds the key
                message = (
                    f"host key of {where} does not match ssh_host_key in {target.pinned_in}; "
                    "if the host's key really changed, check it on its console and update that"
                )
            message += ": refusing to connect"
            cause = "host key does not match the pinned key"
            raise ChannelError(target.name, cause, message=message, kind="host-key") from None
        except asyncssh.PermissionDenied:
            message = f"cannot log in to {where} as {target.user}: our key was not accepted"
            cause = "our key was not accepted"
            raise ChannelError(target.name, cause, message=message, kind="auth") from None
        except ConnectionRefusedError:
            message = f"cannot connect to {where}: connection refused"
            raise ChannelError(
                target.name, "connection refused", message=message, kind="refused"
            ) from None
        except (TimeoutError, trio.TooSlowError):
            cause = f"no answer within {self._connect_timeout:g}s"
            message = f"cannot connect to {where}: {cause}"
            raise ChannelError(target.name, cause, message=message, kind="unreachable") from None
        except OSError as exc:
            cause = exc.strerror or str(exc)
            message = f"cannot connect to {where}: {cause}"
            raise ChannelError(target.name, cause, message=message, kind="unreachable") from None
        except asyncssh.Error as exc:
            message = f"connection to {where} failed during login: {exc.reason}"
            raise ChannelError(target.name, exc.reason, message=message, kind="lost") from None

    async def aclose(self) -> None:
        """Close every connection (shielded, at most CLOSE_GRACE seconds); idempotent."""
        self._closed = True
        connections = list(self._connections.values())
        self._connections.clear()
        with trio.move_on_after(CLOSE_GRACE, shield=True):
            for conn in connections:
                conn.close()
            for conn in connections:
                await run_aio(conn.wait_closed)


class SshChannel:
    """Commands and files on one SSH target, over the pool's shared connection.

    The remote side runs `shlex.join(argv)` through the login user's shell: the one place
    where an argument vector becomes a command line, quoted so that each element arrives as
    one argument. Obtain it from `SshPool.channel`; it reconnects through the pool when the
    connection was lost between commands (a connection lost *during* a command is an error:
    the command may or may not have run).
    """

    def __init__(self, pool: SshPool, target: SshTarget) -> None:
        self._pool = pool
        self.target = target
        self.name = target.name

    def _lost(self, what: str, exc: BaseException | None = None) -> ChannelError:
        detail = f": {exc}" if exc is not None and str(exc) else ""
        message = f"connection to {self.target.where} lost while running {what}{detail}"
        return ChannelError(self.name, "connection lost", message=message, kind="lost")

    async def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60.0
    ) -> CommandResult:
        """Run argv remotely; `timeout` bounds it all, a reconnect included. Cancel or timeout
        closes the SSH channel (the server then kills the command's process group) before this
        returns or raises."""
        args = checked_argv(argv)
        conn: asyncssh.SSHClientConnection | None = None
        process: asyncssh.SSHClientProcess[bytes] | None = None
        try:
            with trio.fail_after(timeout):
                conn = await self._pool._connection(self.target)
                process = await run_aio(conn.create_process, shlex.join(args), encoding=None)
                if input:
                    process.stdin.write(input)
                process.stdin.write_eof()  # run(input=...) alone never sends EOF (pitfall 3)
                stdout, stderr = await run_aio(process.communicate)
        except trio.TooSlowError:
            message = f"{args[0]} on {self.target.where} timed out after {timeout:g}s"
            raise ChannelError(
                self.name, f"timed out after {timeout:g}s", message=message, kind="timeout"
            ) from None
        except asyncssh.ChannelOpenError as exc:
            if conn is not None and conn.is_closed():  # pending opens fail when the link dies
                raise self._lost(args[0], exc) from None
            message = f"cannot start {args[0]} on {self.target.where}: {exc.reason}"
            raise ChannelError(self.name, exc.reason, message=message, kind="start") from None
        except (OSError, asyncssh.Error) as exc:  # a reset arrives as plain OSError (pitfall 2)
            raise self._lost(args[0], exc) from None
        finally:
            if process is not None:
                await _close_process(process)
        status = process.returncode
        if status is None:  # peer gone while we waited: no exit status came (pitfall 2)
            raise self._lost(args[0])
        return CommandResult(argv=args, exit_status=status, stdout=stdout, stderr=stderr)

    async def connection_token(self) -> object:
        """The live connection this channel uses now (connecting if needed), as an opaque
        token: what a caller learnt about the host over it holds while the token lives
        (`remote.ensure_bundle` remembers an installed bundle per connection)."""
        return await self._pool._connection(self.target)

    async def start(self, argv: Sequence[str]) -> SshStream:
        """Start argv remotely and return its stdio as streams; the caller must `aclose` it."""
        args = checked_argv(argv)
        conn = await self._pool._connection(self.target)
        try:
            process = await run_aio(conn.create_process, shlex.join(args), encoding=None)
        except asyncssh.ChannelOpenError as exc:
            if conn.is_closed():
                raise self._lost(args[0], exc) from None
            message = f"cannot start {args[0]} on {self.target.where}: {exc.reason}"
            raise ChannelError(self.name, exc.reason, message=message, kind="start") from None
        except (OSError, asyncssh.Error) as exc:
            raise self._lost(args[0], exc) from None
        return SshStream(self, process, args[0])

    async def put_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        conn = await self._pool._connection(self.target)
        try:
            await run_aio(_sftp_put, conn, path, data, mode)
        except asyncssh.SFTPError as exc:
            message = f"cannot write {path} on {self.target.where}: {exc.reason}"
            raise ChannelError(self.name, exc.reason, message=message, kind="file") from None
        except (OSError, asyncssh.Error) as exc:
            raise self._lost(f"sftp put {path}", exc) from None

    async def get_file(self, path: str) -> bytes | None:
        conn = await self._pool._connection(self.target)
        try:
            return await run_aio(_sftp_get, conn, path)
        except asyncssh.SFTPError as exc:
            message = f"cannot read {path} on {self.target.where}: {exc.reason}"
            raise ChannelError(self.name, exc.reason, message=message, kind="file") from None
        except (OSError, asyncssh.Error) as exc:
            raise self._lost(f"sftp get {path}", exc) from None


class SshStream:
    """A long-running remote command as a pair of byte streams (a remote executor's stdio).

    `receive_some` returns b"" at the end of its output; `send_all` writes to its stdin.
    A connection lost while streaming is a ChannelError of kind "lost". `aclose` closes the
    SSH channel (the far side then loses its stdin and its session) and is always safe.
    """

    def __init__(
        self, channel: SshChannel, process: asyncssh.SSHClientProcess[bytes], what: str
    ) -> None:
        self._channel = channel
        self._process = process
        self._what = what

    @property
    def exit_status(self) -> int | None:
        """The command's exit status once it ended (None while it runs, or if the link died)."""
        return self._process.returncode

    @property
    def exit_signal(self) -> str | None:
        signal_info = self._process.exit_signal
        return signal_info[0] if signal_info else None

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        try:
            return await run_aio(self._process.stdout.read, max_bytes)
        except (OSError, asyncssh.Error) as exc:
            raise self._channel._lost(self._what, exc) from None

    async def send_all(self, data: bytes) -> None:
        try:
            self._process.stdin.write(data)
            await run_aio(self._process.stdin.drain)
        except (OSError, asyncssh.Error) as exc:
            raise self._channel._lost(self._what, exc) from None

    async def stderr_tail(self, limit: int = 4000) -> str:
        """What the command wrote to stderr, if it has ended (bounded; for error messages)."""
        with trio.move_on_after(CLOSE_GRACE):
            try:
                data = await run_aio(self._process.stderr.read, limit)
            except (OSError, asyncssh.Error):
                return ""
            return data.decode(errors="replace").strip()
        return ""

    async def aclose(self) -> None:
        await _close_process(self._process)


async def _close_process(process: asyncssh.SSHClientProcess[bytes]) -> None:
    """Close the SSH channel and wait (shielded, bounded) until it is closed.

    Cancelling the trio scope cancelled only our wait, not the channel: without this the
    remote command would live on (pitfall 1). After a normal exit this returns at once.
    """
    with trio.move_on_after(CLOSE_GRACE, shield=True):
        process.close()
        await run_aio(process.wait_closed)


async def wait_for_ssh(
    pool: SshPool,
    target: SshTarget,
    *,
    timeout: float,
    first_delay: float = 0.05,
    max_delay: float = 2.0,
) -> None:
    """Return once `target` runs `true` over SSH; poll with exponential backoff until then.

    Meant for a machine that is booting: refused, unreachable, not-yet-authorized and dropped
    connections are retried. A host key mismatch is not (waiting cannot fix it; retrying would
    only hide a machine that is not the one we created): it raises at once. On timeout the
    ChannelError names the last failure seen.
    """
    delay = first_delay
    last: str = "no attempt finished"
    try:
        with trio.fail_after(timeout):
            while True:  # bounded by the fail_after above
                try:
                    channel = await pool.channel(target)
                    result = await channel.run(["true"], timeout=timeout)
                except ChannelError as exc:
                    if exc.kind == "host-key":
                        raise
                    last = str(exc)
                else:
                    if result.exit_status == 0:
                        return
                    last = f"`true` exited with status {result.exit_status}"
                await trio.sleep(delay)
                delay = min(delay * 2, max_delay)
    except trio.TooSlowError:
        cause = f"no SSH answer within {timeout:g}s"
        message = f"{target.where} did not answer SSH within {timeout:g}s (last: {last})"
        raise ChannelError(target.name, cause, message=message, kind="unreachable") from None
