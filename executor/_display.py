"""Progress of a run, for people: live lines on a terminal, plain lines otherwise.

On a terminal, finished steps scroll by and the steps still running stay in a block at
the bottom (one line each, with their elapsed time), redrawn at most every 100 ms.
Elsewhere (CI logs, pipes) each step that ran or failed is one line. Cached steps are
counted, not listed: a no-op re-run of 1,000 nodes should print one summary line.
"""

from __future__ import annotations

import time
from typing import TextIO

from ._model import Event, RunReport

REDRAW_EVERY = 0.1
_MARKS = {"finished": "✓", "failed": "✗", "skipped": "-", "started": "…", "log": " "}


def _label(event: Event) -> str:
    """`node.w-1.create`, or for a nested host's step `root-pve › edge › wait_ip`."""
    if not event.path:
        return event.address
    parts = event.address.split(".")
    short = parts[1:] if len(parts) > 2 and parts[0] == "node" else [event.address]
    return " › ".join((*event.path, *short))


class PlainDisplay:
    """One line per step that ran, failed or was skipped; logs with `verbose`."""

    def __init__(self, out: TextIO, *, verbose: bool = False) -> None:
        self.out = out
        self.verbose = verbose

    def __call__(self, event: Event) -> None:
        line = self.line(event)
        if line:
            self.out.write(line + "\n")
            self.out.flush()

    def close(self) -> None:
        """Nothing is left on screen to clear (see LiveDisplay)."""

    def line(self, event: Event) -> str | None:
        if event.kind == "cached" or (event.kind == "started" and not self.verbose):
            return None
        if event.kind == "log":
            return f"    {_label(event)}: {event.message}" if self.verbose else None
        mark = _MARKS.get(event.kind, " ")
        text = f"  {mark} {_label(event)}"
        if event.duration is not None:
            text += f" ({event.duration:.1f}s)"
        if event.message and event.kind in ("failed", "skipped"):
            text += f": {event.message}"
        return text


class LiveDisplay(PlainDisplay):
    """PlainDisplay plus a redrawn block of the steps still running."""

    def __init__(self, out: TextIO, *, verbose: bool = False) -> None:
        super().__init__(out, verbose=verbose)
        self.running: dict[str, tuple[Event, float]] = {}
        self.drawn = 0
        self.last_draw = 0.0

    def __call__(self, event: Event) -> None:
        key = _label(event)
        if event.kind == "started":
            self.running[key] = (event, event.at)
        elif event.kind in ("finished", "failed", "skipped", "cached"):
            self.running.pop(key, None)
        line = self.line(event) if event.kind != "started" else None
        if line is None and time.monotonic() - self.last_draw < REDRAW_EVERY:
            return
        self._clear()
        if line:
            self.out.write(line + "\n")
        self._draw()

    def _clear(self) -> None:
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}A\x1b[J")
            self.drawn = 0

    def _draw(self) -> None:
        now = time.time()
        for label, (_event, since) in sorted(self.running.items())[:20]:
            self.out.write(f"  … {label} ({now - since:.0f}s)\n")
            self.drawn += 1
        self.out.flush()
        self.last_draw = time.monotonic()

    def close(self) -> None:
        self._clear()
        self.out.flush()


def summary(report: RunReport, seconds: float, verb: str = "apply") -> str:
    """The last line of a run: what ran, what was cached, what failed, how long it took."""
    parts = [
        f"{report.count('ok')} ran",
        f"{report.count('cached')} cached",
        f"{report.count('failed')} failed",
    ]
    if report.count("skipped"):
        parts.append(f"{report.count('skipped')} skipped")
    if report.removed:
        parts.append(f"{len(report.removed)} removed")
    if report.rolled_back:
        parts.append(f"{len(report.rolled_back)} rolled back")
    state = {"ok": "complete", "failed": "failed", "interrupted": "interrupted"}[report.status]
    return f"{verb.capitalize()} {state}: {', '.join(parts)} in {seconds:.1f}s."
