"""Run one command as a user would, and measure that process alone: wall, CPU, max RSS.

The machine these figures come from is shared and loaded, so wall time alone is noisy:
each run also reports the child's own user+system CPU and its peak RSS, read from the
kernel's rusage of that one process (`os.wait4`), not from RUSAGE_CHILDREN (which keeps
the maximum over every child so far). A run is bounded: past its timeout the whole
process group is killed (a pveplan apply may have started SSH children) and the run is
reported as timed out instead of hanging the benchmark.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

LONG = 60.0  # seconds past which a figure is not repeated


@dataclass(frozen=True)
class Run:
    """One finished (or killed) process: what it cost and what it said."""

    wall: float
    cpu: float
    rss_mb: float
    returncode: int
    timed_out: bool
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def run(argv: Sequence[str], env: dict[str, str], timeout: float, cwd: str | None = None) -> Run:
    """Run argv to completion (or kill it at `timeout` seconds); its own rusage."""
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        child = subprocess.Popen(
            list(argv),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    return Run(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        rss_mb=usage.ru_maxrss / 1024,
        returncode=child.returncode,
        timed_out=killed.is_set(),
        output=text,
    )


@dataclass(frozen=True)
class Figure:
    """Repeated runs of one command: the best and median wall, CPU and RSS."""

    runs: tuple[Run, ...]

    @property
    def wall(self) -> float:
        return min(r.wall for r in self.runs)

    @property
    def wall_median(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    @property
    def cpu(self) -> float:
        return min(r.cpu for r in self.runs)

    @property
    def rss_mb(self) -> float:
        return max(r.rss_mb for r in self.runs)

    def brief(self) -> str:
        spread = f" (median {self.wall_median:.2f})" if len(self.runs) > 1 else " (1 run)"
        return f"{self.wall:.2f} s{spread}, cpu {self.cpu:.2f} s, {self.rss_mb:.0f} MB"


def repeat(
    label: str, argv: Sequence[str], env: dict[str, str], times: int, timeout: float
) -> Figure | str:
    """`times` runs of argv; the figure, or why there is none (a failure or a timeout)."""
    runs = []
    for i in range(times):
        note(f"{label} ({i + 1}/{times})")
        done = run(argv, env, timeout)
        if done.timed_out:
            return f"did not finish in {timeout:.0f} s"
        if done.returncode != 0:
            last = (done.output.strip().splitlines() or ["no output"])[-1]
            return f"failed (exit {done.returncode}): {last.strip()}"
        runs.append(done)
        if done.wall > LONG:
            break  # one run of a minute says enough; repeating it would only cost time
    return Figure(tuple(runs))


def note(text: str) -> None:
    """Progress, on stderr (stdout holds only the figures)."""
    print(f"[vs_nix {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)
