"""The warm executor: one long-lived process per installed bundle on a nested host.

`pveplan executor --warm-daemon` (started by `_attach`, never by hand) pays pveplan's
imports once, then serves every session that arrives on its unix socket (each relayed by
an `executor --stdio --warm` that the driver started over SSH) exactly as a cold
`executor --stdio` serves its one session: its own store connection, its own site config
and services read afresh (the driver may have changed them since), the same `serve`.
Sessions run side by side like separate processes did; the store's workspace lock
orders runs of one workspace.

It leaves by itself: after IDLE_EXIT seconds without a session, or as soon as its socket
or its bundle's READY marker is gone (the bundle removed, the host's tree deleted). Only
one daemon listens per bundle: it holds `executor.lock` for its whole life, and one that
finds the lock taken says `busy` and leaves.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._home import HostAccessFor

IDLE_EXIT = 300.0
"""Seconds without a session after which the warm executor leaves (the next session,
then, starts a new one: a cold start, once)."""
CHECK_EVERY = 1.0
"""Seconds between checks that the socket and the bundle are still there."""
LOG_LIMIT = 1 << 20
"""The daemon's log (its stderr) is emptied at start once it is larger than this."""


def _say(fd: int | None, word: bytes) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.write(fd, word)
        with contextlib.suppress(OSError):
            os.close(fd)


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def serve_warm(home: Path, ready_fd: int | None, host_access: HostAccessFor) -> int:
    """Listen on the running bundle's socket and serve sessions until idle; the exit status.
    Writes `ready` (listening) or `busy` (another daemon has the lock) to `ready_fd`."""
    from ._attach import LOCK, LOG, socket_path
    from ._bundle import running_bundle

    running = running_bundle()
    if running is None:
        _say(ready_fd, b"")
        sys.stderr.write("pveplan: a warm executor runs only from an installed bundle\n")
        return 2
    install = os.path.relpath(running.path.parent)  # the socket path must stay short
    with contextlib.suppress(OSError):
        if os.path.getsize(os.path.join(install, LOG)) > LOG_LIMIT:
            os.truncate(os.path.join(install, LOG), 0)
    lock = open(os.path.join(install, LOCK), "a")  # noqa: SIM115 (held for the whole life)
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            _say(ready_fd, b"busy")
            return 0
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")  # who listens, for people and tests
        lock.flush()
        path = socket_path(install)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a daemon that died left it: the lock says none listens
        listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_mask = os.umask(0o177)
        try:
            listening.bind(path)
        finally:
            os.umask(old_mask)
        listening.listen(16)
        ours = _inode(path)
        _say(ready_fd, b"ready")
        try:
            return _serve_sessions(home, listening, path, ours, install, running.hash, host_access)
        finally:
            listening.close()
            if _inode(path) == ours:
                with contextlib.suppress(OSError):
                    os.unlink(path)


def _serve_sessions(
    home: Path,
    listening: socket.socket,
    path: str,
    ours: int | None,
    install: str,
    bundle: str,
    host_access: HostAccessFor,
) -> int:
    import trio

    from pveplan.planner import __version__
    from pveplan.store import open_store

    from .._bridge import open_loop, run
    from ._home import _services
    from ._layout import STORE
    from ._protocol import FrameStream
    from ._serve import serve

    active = 0
    last_seen = 0.0
    pools: dict[bytes, Any] = {}  # the next hops' SSH connections, kept between sessions

    async def session(stream: trio.SocketStream) -> None:
        nonlocal active, last_seen
        active += 1
        try:
            async with stream:
                with open_store(home / STORE) as store:
                    await serve(
                        FrameStream(stream, stream),
                        store,
                        lambda plan, options: _services(
                            home, store, plan, options, host_access, pools
                        ),
                        version=__version__,
                        bundle=bundle,
                    )
        except Exception:  # one session's trouble (its driver left mid-frame): log, go on
            traceback.print_exc()
        finally:
            active -= 1
            last_seen = trio.current_time()

    async def watch(cancel: trio.CancelScope) -> None:
        """Leave when idle too long, or when the socket or the bundle is gone."""
        while True:
            await trio.sleep(CHECK_EVERY)
            gone = _inode(path) != ours or not os.path.isfile(os.path.join(install, "READY"))
            idle = active == 0 and trio.current_time() - last_seen >= IDLE_EXIT
            if gone or idle:
                cancel.cancel()
                return

    async def main() -> int:
        nonlocal last_seen
        last_seen = trio.current_time()
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(listening))
        async with open_loop():
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(watch, nursery.cancel_scope)
                    while True:
                        stream = await listener.accept()
                        last_seen = trio.current_time()
                        nursery.start_soon(session, stream)
            finally:
                for pool in pools.values():
                    await pool.aclose()  # shielded and bounded, before the loop closes
        return 0

    return run(main)
