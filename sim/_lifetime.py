"""When the simulator daemon stops by itself (docs/simulator.md, "How long the daemon lives").

`apply` starts the daemon on demand and leaves it running so the next apply reuses it; on
its own it would then live until `pveplan sim down` or a reboot, holding ports, its flock and
its sessions. It stops by itself when:

- its root is gone: ROOT deleted or replaced by another directory, or its state.json
  deleted (a test's tmp dir cleaned, `rm -rf` of a store). Nothing can reach it any more.
- it has been idle for `idle_timeout` seconds: no SSH connection open, none opened or
  closed, no change to state.json/config.json, no runcmd runner working (it would be cut
  short: runners stop with their daemon). 0 means never.
- the process it was told to live with (`--exit-with-pid`, which `start_daemon` passes from
  PVEPLAN_SIM_EXIT_WITH_PID: the test suite sets it) has exited. Opt-in, so a user's
  daemon never dies with the shell that started it.

The daemon reads nothing from its environment for this: the starting side (`start_daemon`,
on behalf of the CLI) turns the environment into `LifetimeOptions`, and those into argv.
Nothing here touches sockets or sessions: `Lifetime` only says why to stop, and the daemon
leaves by the same path as on SIGTERM.
"""

from __future__ import annotations

import argparse
import fcntl
import itertools
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pveplan.sim._state import DEFAULT_CONFIG, SimRoot

LOG = logging.getLogger("pveplan.sim.daemon")

IDLE_ENV = "PVEPLAN_SIM_IDLE_TIMEOUT"
EXIT_WITH_ENV = "PVEPLAN_SIM_EXIT_WITH_PID"
EXIT_WITH_FLAG = "--exit-with-pid"
IDLE_FLAG = "--idle-timeout"


@dataclass(frozen=True)
class LifetimeOptions:
    """What the starting side decided about one daemon's life (None: not decided there)."""

    idle_timeout: float | None = None
    """Seconds idle before stopping, 0 = never; None: config.json's `idle_timeout` decides."""
    exit_with_pid: int | None = None
    """Stop when this process exits (checked with its start time: a reused pid is not it)."""

    def argv(self) -> list[str]:
        """The daemon's command-line options carrying these choices."""
        args: list[str] = []
        if self.idle_timeout is not None:
            args += [IDLE_FLAG, repr(self.idle_timeout)]
        if self.exit_with_pid is not None:
            args += [EXIT_WITH_FLAG, str(self.exit_with_pid)]
        return args


def options_from_env(env: Mapping[str, str]) -> LifetimeOptions:
    """The options the environment of the starting command asks for; ValueError (naming the
    variable) when one is not usable, so a typo fails the start instead of being ignored."""
    idle = env.get(IDLE_ENV, "").strip()
    pid = env.get(EXIT_WITH_ENV, "").strip()
    try:
        timeout = _seconds(idle) if idle else None
    except ValueError:
        raise ValueError(f"{IDLE_ENV}={idle!r}: want a number of seconds (0: never)") from None
    if pid and not (pid.isdigit() and int(pid) > 0):
        raise ValueError(f"{EXIT_WITH_ENV}={pid!r}: want a process id")
    return LifetimeOptions(idle_timeout=timeout, exit_with_pid=int(pid) if pid else None)


def _seconds(text: Any) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(text)
    return value


def parse_argv(argv: list[str]) -> tuple[SimRoot, LifetimeOptions]:
    """`ROOT [--idle-timeout S] [--exit-with-pid PID]`; exits 2 with usage when malformed."""
    parser = argparse.ArgumentParser(prog="python -m pveplan.sim._daemon")
    parser.add_argument("root")
    parser.add_argument(IDLE_FLAG, type=_seconds, default=None, dest="idle_timeout")
    parser.add_argument(EXIT_WITH_FLAG, type=int, default=None, dest="exit_with_pid")
    args = parser.parse_args(argv)
    return SimRoot(args.root), LifetimeOptions(args.idle_timeout, args.exit_with_pid)


class Connections(Protocol):
    """What `Lifetime.idle_reason` needs of a listener (`_daemon.Listener`)."""

    @property
    def connections(self) -> Sized: ...
    @property
    def sessions(self) -> Sized: ...
    @property
    def last_seen(self) -> float: ...


class Lifetime:
    """One daemon's reasons to stop, asked once a tick by `Daemon.serve`.

    Built at start-up, before the first reconcile: the identity of ROOT it records is the
    directory the daemon was started on, so a directory of the same name made later (a new
    test's tmp dir, a store set up again) is not it.
    """

    def __init__(
        self,
        root: SimRoot,
        options: LifetimeOptions,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root
        self.options = options
        self._clock = clock
        self._identity = _identity(root.path)
        self._had_state = root.state.exists()
        self._watched = _start_time(options.exit_with_pid) if options.exit_with_pid else None
        self._configured = float(DEFAULT_CONFIG["idle_timeout"])
        self.last_active = clock()

    @property
    def idle_timeout(self) -> float:
        """The limit in force: the starting side's, else config.json's (0 = never)."""
        if self.options.idle_timeout is not None:
            return self.options.idle_timeout
        return self._configured

    def configure(self, config: Mapping[str, Any]) -> None:
        """Take config.json's `idle_timeout` (read at every reconcile); a bad one is logged
        and the default kept, as a bad latency would not stop the simulator either."""
        value = config.get("idle_timeout", DEFAULT_CONFIG["idle_timeout"])
        try:
            seconds = _seconds(0 if value is None else value)
        except (TypeError, ValueError):
            seconds = float(DEFAULT_CONFIG["idle_timeout"])
            LOG.warning(
                "config.json: idle_timeout %r is no number of seconds; using %g", value, seconds
            )
        self._configured = seconds

    def touch(self) -> None:
        """Something happened (state or config changed): the idle time starts again."""
        self.last_active = self._clock()

    def gone_reason(self) -> str | None:
        """Why the daemon has nothing left to serve or no one left to serve it to, or None."""
        try:
            identity = _identity(self.root.path)
        except FileNotFoundError:
            return f"its directory {self.root.path} was deleted"
        if identity != self._identity:
            return f"its directory {self.root.path} was replaced"
        if self.root.state.exists():
            self._had_state = True
        elif self._had_state:
            return f"{self.root.state} was deleted"
        pid = self.options.exit_with_pid
        if pid is not None and (self._watched is None or _start_time(pid) != self._watched):
            return f"process {pid}, which it was started to live with, has exited"
        return None

    def idle_reason(self, listeners: Iterable[Connections]) -> str | None:
        """Why the daemon is no longer needed (idle past the limit), or None."""
        for listener in listeners:
            if listener.connections or listener.sessions:
                self.touch()
            self.last_active = max(self.last_active, listener.last_seen)
        limit = self.idle_timeout
        if not limit or self._clock() - self.last_active < limit:
            return None
        if runners_working(self.root):
            self.touch()  # look again in `limit` seconds, not every tick
            return None
        return f"idle for {limit:g}s (no SSH connection, no state change)"


def _identity(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return (info.st_dev, info.st_ino)


def _start_time(pid: int) -> str | None:
    """Process `pid`'s start time (from /proc), None if it is not alive; without procfs,
    whether it is alive at all."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "alive"
    except (OSError, IndexError):
        return None
    return None if fields[0] in {"Z", "X"} else fields[19]


def runners_working(root: SimRoot) -> bool:
    """Whether a runcmd runner of a running VM is still at work (started, not finished, its
    process alive): idling out would cut it short, as runners stop with their daemon."""
    from pveplan.sim._runcmd import read_record
    from pveplan.sim._state import read_state

    try:
        vms = read_state(root).get("vms", {}).values()
    except (OSError, ValueError):
        return False
    for vm in vms:
        if vm.get("status") != "running":
            continue
        record = read_record(root.vm_dir(vm["node"], vm["vmid"]))
        pid = record.get("pid")
        if record.get("started") is None or record.get("finished") or not isinstance(pid, int):
            continue
        if pid > 1 and _start_time(pid) is not None:
            return True
    return False


def take_lock(root: SimRoot, *, wait: float, holder_alive: Callable[[], bool]) -> int | None:
    """Hold ROOT/daemon.lock for the daemon's lifetime (the OS drops it however it dies); the
    fd, or None when another daemon holds it. A holder that is on its way out (it has removed
    daemon.json: `holder_alive` is false) is waited for up to `wait` s: that is a daemon
    stopping by itself just as `apply` starts the next one."""
    root.path.mkdir(parents=True, exist_ok=True)
    fd = os.open(root.path / "daemon.lock", os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if holder_alive() or time.monotonic() >= deadline:
                os.close(fd)
                return None
        time.sleep(0.02)


def daemons_living_with(pid: int) -> list[int]:
    """The simulator daemons started with `--exit-with-pid PID` (the test suite's, at its
    end): found in /proc, as they are detached and nobody else holds their handles."""
    found: list[int] = []
    proc = Path("/proc")
    if not (proc / "self").exists():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"pveplan.sim._daemon" not in args:
            continue
        if (EXIT_WITH_FLAG.encode(), str(pid).encode()) in itertools.pairwise(args):
            found.append(int(entry.name))
    return found
