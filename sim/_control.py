"""Start, stop and look at a simulator's SSH daemon (`pveplan sim up/down/status`).

The daemon is a process of its own (`python -m pveplan.sim._daemon ROOT`), detached into its
own session so it outlives the command that started it (`apply` starts it on demand and
leaves it running, until it stops by itself: `_lifetime`). ROOT/daemon.json is the only
handle on it: written by the daemon once it listens, removed by it when it stops; a file
whose pid is no longer a live daemon is stale and treated as absent. This module is
synchronous on purpose: it runs from the CLI and from sync test fixtures, outside any event
loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pveplan.sim._errors import SimError
from pveplan.sim._lifetime import LifetimeOptions, daemons_living_with, options_from_env
from pveplan.sim._state import SimRoot

POLL = 0.02
LOG_TAIL = 2000

# Daemons this process started, kept so they can be reaped (no zombie left behind, no
# "still running" warning when the Popen object would otherwise be collected).
_children: dict[int, subprocess.Popen[bytes]] = {}


def pid_is_daemon(pid: int) -> bool:
    """Whether `pid` is a live (not zombie) simulator daemon; guards against reused pids."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's: /proc below still tells what it is
    proc = Path("/proc") / str(pid)
    if not Path("/proc/self").exists():
        return True  # no procfs: a live pid is the best we can tell
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes()
    except (FileNotFoundError, IndexError, PermissionError):
        return False
    return state not in {"Z", "X"} and b"pveplan.sim._daemon" in cmdline


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def daemon_info(root: SimRoot) -> dict[str, Any] | None:
    """The running daemon's daemon.json (pid, port, started, hosts), or None."""
    try:
        info = json.loads(root.daemon.read_text())
    except (FileNotFoundError, ValueError):
        return None
    pid = info.get("pid") if isinstance(info, dict) else None
    if not isinstance(pid, int) or not pid_is_daemon(pid):
        return None
    return info


def _log_tail(root: SimRoot) -> str:
    try:
        data = (root.path / "daemon.log").read_bytes()[-LOG_TAIL:]
    except FileNotFoundError:
        return "(no daemon.log)"
    return data.decode(errors="replace").strip() or "(daemon.log is empty)"


def start_daemon(
    root: SimRoot, *, timeout: float = 10.0, lifetime: LifetimeOptions | None = None
) -> dict[str, Any]:
    """Make sure a daemon serves `root` and return its daemon.json; idempotent.

    Spawns one when none is running and waits (at most `timeout` s) until it has bound its
    addresses and written daemon.json. If it dies or stays silent, raises SimError with the
    tail of ROOT/daemon.log; a daemon that did not answer in time is killed first.
    `lifetime` (default: what PVEPLAN_SIM_IDLE_TIMEOUT and PVEPLAN_SIM_EXIT_WITH_PID in this
    process's environment ask for) applies to a daemon started here, not to one running.
    """
    info = daemon_info(root)
    if info is not None:
        return info
    if lifetime is None:
        try:
            lifetime = options_from_env(os.environ)
        except ValueError as exc:
            raise SimError(f"cannot start the simulator daemon for {root.path}: {exc}") from None
    root.path.mkdir(parents=True, exist_ok=True)
    with open(root.path / "daemon.log", "ab") as log:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pveplan.sim._daemon",
                str(root.path),
                *lifetime.argv(),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not ours to signal with the terminal's Ctrl-C
            cwd=root.path,
        )
    _children[child.pid] = child
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = daemon_info(root)
        if info is not None:
            return info  # ours, or one that won a race with us (ours then exits with 1)
        status = child.poll()
        if status is not None:
            _children.pop(child.pid, None)
            raise SimError(
                f"the simulator daemon for {root.path} exited with status {status}:\n"
                f"{_log_tail(root)}"
            )
        time.sleep(POLL)
    _terminate(child.pid, grace=1.0)
    raise SimError(
        f"the simulator daemon for {root.path} did not start within {timeout:g}s:\n"
        f"{_log_tail(root)}"
    )


def _terminate(pid: int, *, grace: float) -> None:
    """SIGTERM, wait up to `grace` s, then SIGKILL; reaps it if it is our child."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pid_is_daemon(pid):
        time.sleep(POLL)
    if pid_is_daemon(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    child = _children.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=grace)


def stop_daemon(root: SimRoot, *, timeout: float = 10.0) -> bool:
    """Stop the daemon serving `root`: True if one was running, False if there was none.

    The daemon kills its sessions and removes daemon.json itself; if it ignores SIGTERM for
    `timeout` s it is killed, and a daemon.json left behind (stale) is removed here.
    """
    info = daemon_info(root)
    if info is not None:
        _terminate(info["pid"], grace=timeout)
    if daemon_info(root) is None:
        with contextlib.suppress(FileNotFoundError):
            root.daemon.unlink()
    return info is not None


def stop_daemons_living_with(pid: int, *, timeout: float = 10.0) -> list[int]:
    """Stop every daemon started to live with process `pid` (`--exit-with-pid`), wherever its
    root is; the pids stopped. For a test session's end: its daemons would stop when it
    exits anyway, but this way none outlives the session's last line of output."""
    pids = daemons_living_with(pid)
    for daemon in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon, signal.SIGTERM)
    for daemon in pids:
        _terminate(daemon, grace=timeout)
    return pids
