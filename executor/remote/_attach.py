"""The way into a nested host's warm executor: `run.py executor --stdio --warm`.

A fresh executor process costs a Python start plus pveplan's imports (trio, asyncssh,
httpx, msgspec, the step kinds): most of a cached nested hop. So the driver starts this
instead, a relay that uses the standard library only (`run.py` loads this file by path,
before anything of pveplan is imported). It connects to the warm executor of its bundle,
a long-lived `run.py executor --warm-daemon` listening on a unix socket inside the
bundle's install directory (under `.pveplan/bundles`, mode 0700: root only), starting
that daemon first when none answers, and then copies bytes both ways: stdin to the
socket, the socket to stdout. The frames are the protocol's, untouched, so hello checks,
plan hashes and heartbeats work as with a cold executor.

Ends: the driver's side closing (stdin EOF, or this process killed with its SSH session)
closes the socket, and the daemon cancels that session's run, as a cold executor does on
EOF. The daemon closing the socket first ends this relay with status 1 and a line on
stderr, which the driver shows if no result came. When no daemon can be started (an
unusual host), the relay becomes a cold executor (`exec`), so a session never fails for
want of a warm one.
"""

from __future__ import annotations

import _socket  # the C module: `socket` would import enum, selectors, array (~40 ms)
import os
import select
import sys
import time

START_TIMEOUT = 60.0
"""Seconds to wait for a daemon to listen (a cold Python start on a slow nested host)."""
SOCKET = "executor.sock"
LOCK = "executor.lock"
LOG = "executor.log"
CHUNK = 65536


def install_dir(launcher: str) -> str:
    """The bundle's install directory (`.pveplan/bundles/HASH`) from its launcher's path
    (`.pveplan/bundles/HASH/bundle/run.py`)."""
    return os.path.dirname(os.path.dirname(launcher))


def socket_path(install: str) -> str:
    """Where the warm executor of the bundle installed at `install` listens. Relative to
    the working directory (root's home) when `install` is: a unix socket's path is
    limited to 107 bytes, and a home in the simulator's tree is deep."""
    return os.path.join(install, SOCKET)


def _connect(path: str) -> _socket.socket | None:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


def _start_daemon(launcher: str, install: str) -> bool:
    """Start the warm executor, detached (a session of its own, so an SSH session's end
    does not take it along), and wait until it says `ready` (it listens) or `busy` (another
    one holds the lock, and listens or is about to); False if it left without a word."""
    import subprocess  # only here: a daemon is started once per bundle

    read_end, write_end = os.pipe()
    log = open(os.path.join(install, LOG), "ab")  # noqa: SIM115 (handed to the child)
    try:
        argv = [sys.executable, "-I", "-S", launcher, "executor", "--warm-daemon"]
        subprocess.Popen(
            [*argv, "--ready-fd", str(write_end)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            pass_fds=(write_end,),
            start_new_session=True,
        )
    finally:
        os.close(write_end)
        log.close()
    try:
        ready, _, _ = select.select([read_end], [], [], START_TIMEOUT)
        return bool(ready) and os.read(read_end, 16) in (b"ready", b"busy")
    finally:
        os.close(read_end)


def _relay(sock: _socket.socket) -> int:
    """Copy stdin to `sock` and `sock` to stdout until the socket ends."""
    stdin_open = True
    while True:
        watched = [sock, 0] if stdin_open else [sock]
        ready, _, _ = select.select(watched, [], [])
        if 0 in ready:
            data = os.read(0, CHUNK)
            if data:
                sock.sendall(data)
            else:
                stdin_open = False
                sock.shutdown(_socket.SHUT_WR)  # the driver is done: the session ends
        if sock in ready:
            data = sock.recv(CHUNK)
            if not data:
                break
            view = memoryview(data)
            while view:
                view = view[os.write(1, view) :]
    if stdin_open:
        sys.stderr.write("pveplan: the warm executor closed the session\n")
        return 1
    return 0


def main(launcher: str) -> int:
    """Attach stdin/stdout to the warm executor of the bundle whose launcher is
    `launcher`, starting it if needed; a cold executor if none can be had."""
    install = install_dir(launcher)
    path = socket_path(install)
    sock = _connect(path)
    if sock is None and _start_daemon(launcher, install):
        deadline = time.monotonic() + START_TIMEOUT
        while (sock := _connect(path)) is None and time.monotonic() < deadline:
            time.sleep(0.02)
    if sock is None:
        argv = [sys.executable, "-I", "-S", launcher, "executor", "--stdio"]
        os.execv(sys.executable, argv)
    try:
        return _relay(sock)
    except (BrokenPipeError, ConnectionResetError) as exc:
        sys.stderr.write(f"pveplan: the warm executor's session broke off ({exc})\n")
        return 1
    finally:
        sock.close()
