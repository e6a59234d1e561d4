"""Progress of a run, for people: live lines on a terminal, plain lines otherwise.

On a terminal, finished steps scroll by and the steps still running stay in a block at
the bottom (one line each, with their elapsed time), above a status line
(`[12/31] 2 running, ~40s left`), redrawn at most every 100 ms. Elsewhere (CI logs,
pipes) each step that ran or failed is one line, prefixed `[done/total]`. Cached steps are
counted, not listed: a no-op re-run of 1,000 nodes should print one summary line.

A display is a pure consumer of events: the run calls it with every `Event` (nested
hosts' included) and it keeps no other source of truth, so a test drives it with events
and a fake `clock`. `begin(plan)` before the first event tells it the total; without it,
lines carry no counter and no estimate is made. After the run, `with_nested(report)`
hands the nested hosts' outcomes it saw to the report, for counts and node rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from pveplan.planner import Plan, Step

from ._model import Event, RunReport
from ._results import host_walk, is_delegate, node_of, outcome_of, with_nested

REDRAW_EVERY = 0.1
_MARKS = {"finished": "✓", "failed": "✗", "skipped": "-", "started": "…", "log": " "}
_ENDED = ("finished", "cached", "failed", "skipped")
Key = tuple[tuple[str, ...], str]  # (hosts above, address): one step at one level


def _label(event: Event) -> str:
    """`node.w-1.create`, or for a nested host's step `root-pve › edge › wait_ip`."""
    if not event.path:
        return event.address
    parts = event.address.split(".")
    short = parts[1:] if len(parts) > 2 and parts[0] == "node" else [event.address]
    return " › ".join((*event.path, *short))


def _seconds(left: float) -> str:
    """`~40s`, `~3m10s`, `~1h05m`: whole units, never `~0s` while something remains."""
    whole = max(1, round(left))
    if whole < 60:
        return f"~{whole}s"
    if whole < 3600:
        return f"~{whole // 60}m{whole % 60:02d}s"
    return f"~{whole // 3600}h{whole % 3600 // 60:02d}m"


class Progress:
    """Where a run stands, from its events alone: done of total, what runs, time left.

    Steps are keyed by (host path, address), as events name them, so `node.edge.create`
    on two nested hosts are two steps. Only steps of the plan count towards `done`: the
    removal of a resource the manifest dropped is shown, but was never in the total.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.plan: Plan | None = None
        self.parallelism = 1
        self.steps: dict[Key, Step] = {}
        self.ended: dict[Key, Event] = {}
        self.started: dict[Key, float] = {}
        self.spent: dict[str, list[float]] = {}  # step kind -> durations of steps that ran

    def begin(self, plan: Plan, parallelism: int | None = None) -> None:
        """Expect `plan` (every level): its steps are the total. `parallelism` is the run's
        override (`--parallelism`), else the plan's setting holds."""
        self.plan = plan
        self.parallelism = max(1, parallelism or plan.settings.parallelism)
        self.steps = {(path, step.address): step for path, step in host_walk(plan)}

    @property
    def total(self) -> int | None:
        return len(self.steps) if self.plan is not None else None

    @property
    def done(self) -> int:
        return len(self.ended)

    def see(self, event: Event) -> bool:
        """Take one event; True if it ended a step of the plan (which moved `done`)."""
        key = (event.path, event.address)
        if event.kind == "started":
            self.started[key] = event.at
            return False
        if event.kind not in _ENDED:
            return False
        self.started.pop(key, None)
        step = self.steps.get(key)
        if self.plan is not None and step is None:
            return False  # a removal, or a sweep: not a step of this plan
        self.ended[key] = event
        # A delegate's time is its subtree's, whose steps are counted themselves.
        ran = event.duration is not None and event.kind != "cached"
        if step is not None and ran and not is_delegate(step.address):
            self.spent.setdefault(step.kind, []).append(event.duration or 0.0)
        return True

    def counter(self) -> str:
        """`[ 3/22]`: done of total, padded so lines stay aligned (empty without a plan)."""
        if self.total is None:
            return ""
        width = len(str(self.total))
        return f"[{self.done:>{width}}/{self.total}]"

    def left(self) -> float | None:
        """Seconds the rest should take, or None until a step of the plan has run.

        A step that has not ended is expected to take the mean of the steps of its kind
        that ran in this run, else the mean of all that ran (minus what it has run so far,
        if it is running); a delegate, what its subplan has left. Per level, the time left
        is the longer of the slowest remaining chain of dependencies and the remaining work
        spread over the parallelism: a chain of steps cannot go faster than one at a time.
        """
        if self.plan is None or not self.spent:
            return None
        samples = [d for durations in self.spent.values() for d in durations]
        means = {kind: sum(d) / len(d) for kind, d in self.spent.items()}
        return self._level_left(
            self.plan, (), self.parallelism, means, sum(samples) / len(samples), self.clock()
        )

    def _level_left(
        self,
        plan: Plan,
        path: tuple[str, ...],
        parallelism: int,
        means: dict[str, float],
        overall: float,
        now: float,
    ) -> float:
        by_address = {step.address: step for step in plan.steps}
        finish: dict[str, float] = {}
        owned: dict[str, float] = {}

        def own(step: Step) -> float:
            if step.address not in owned:
                owned[step.address] = left_of(step)
            return owned[step.address]

        def left_of(step: Step) -> float:
            key = (path, step.address)
            if key in self.ended:
                return 0.0
            subplan = plan.subplans.get(step.address)
            if subplan is not None:
                host = str(step.args.get("host") or subplan.host)
                return self._level_left(
                    subplan,
                    (*path, host),
                    max(1, subplan.settings.parallelism),
                    means,
                    overall,
                    now,
                )
            expected = means.get(step.kind, overall)
            since = self.started.get(key)
            return max(expected - (now - since), 0.0) if since is not None else expected

        def finished_at(step: Step) -> float:
            if step.address not in finish:
                finish[step.address] = 0.0  # a cycle (never in a valid plan) ends here
                upstream = (*step.deps, *step.ref_addresses())
                before = [finished_at(by_address[a]) for a in upstream if a in by_address]
                finish[step.address] = max(before, default=0.0) + own(step)
            return finish[step.address]

        chain = max((finished_at(step) for step in plan.steps), default=0.0)
        work = sum(own(step) for step in plan.steps)
        return max(chain, work / parallelism)

    def status(self) -> str:
        """`[12/31] 2 running, ~40s left` (`estimating…` until a step has run)."""
        counter = self.counter() or f"[{self.done}]"
        if self.total is not None and self.done >= self.total:
            return f"{counter} {self.running()} running"  # removals or the sweep, if any
        left = self.left()
        estimate = "estimating…" if left is None else f"{_seconds(left)} left"
        return f"{counter} {self.running()} running, {estimate}"

    def running(self) -> int:
        """Steps running now. A delegate counts only while nothing below it runs (shipping
        the bundle, connecting): otherwise its nested steps are what is running."""
        busy = {path for path, _address in self.started}
        return sum(
            1
            for path, address in self.started
            if not is_delegate(address)
            or not any(p[: len(path) + 1] == (*path, node_of(address)) for p in busy)
        )


class PlainDisplay:
    """One line per step that ran, failed or was skipped; logs with `verbose`."""

    def __init__(
        self, out: TextIO, *, verbose: bool = False, clock: Callable[[], float] = time.time
    ) -> None:
        self.out = out
        self.verbose = verbose
        self.clock = clock
        self.progress = Progress(clock)

    def begin(self, plan: Plan, parallelism: int | None = None) -> None:
        """Call before the run's first event: the plan's steps (all levels) are the total
        `[done/total]` counts to, and what the estimate of the time left is made from."""
        self.progress.begin(plan, parallelism)

    def with_nested(self, report: RunReport) -> RunReport:
        """`report` with the outcomes of the nested hosts' steps this display saw, so that
        its counts and node rows include every level."""
        outcomes = (outcome_of(event) for event in self.progress.ended.values())
        return with_nested(report, (o for o in outcomes if o is not None))

    def __call__(self, event: Event) -> None:
        counted = self.progress.see(event)
        line = self.line(event, counted)
        if line:
            self.out.write(line + "\n")
            self.out.flush()

    def close(self) -> None:
        """Nothing is left on screen to clear (see LiveDisplay)."""

    def line(self, event: Event, counted: bool = False) -> str | None:
        """The line for `event`, if it gets one. A step of the plan that ended carries the
        counter it moved; a removal (not in the plan) gets blanks as wide, to stay aligned."""
        if event.kind == "cached" or (event.kind == "started" and not self.verbose):
            return None
        if event.kind == "log":
            return f"    {_label(event)}: {event.message}" if self.verbose else None
        mark = _MARKS.get(event.kind, " ")
        counter = self.progress.counter()
        if counter and not counted:
            counter = " " * len(counter)
        text = f"  {counter} {mark} {_label(event)}" if counter else f"  {mark} {_label(event)}"
        if event.duration is not None:
            text += f" ({event.duration:.1f}s)"
        if event.message and event.kind in ("failed", "skipped"):
            text += f": {event.message}"
        return text


class LiveDisplay(PlainDisplay):
    """PlainDisplay plus a redrawn block of the steps still running and a status line."""

    def __init__(
        self, out: TextIO, *, verbose: bool = False, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(out, verbose=verbose, clock=clock)
        self.running: dict[str, tuple[Event, float]] = {}
        self.drawn = 0
        self.last_draw: float | None = None

    def __call__(self, event: Event) -> None:
        counted = self.progress.see(event)
        key = _label(event)
        if event.kind == "started":
            self.running[key] = (event, event.at)
        elif event.kind in _ENDED:
            self.running.pop(key, None)
        line = self.line(event, counted) if event.kind != "started" else None
        recent = self.last_draw is not None and self.clock() - self.last_draw < REDRAW_EVERY
        if line is None and recent:
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
        now = self.clock()
        for label, (_event, since) in sorted(self.running.items())[:20]:
            self.out.write(f"  … {label} ({now - since:.0f}s)\n")
            self.drawn += 1
        if self.running or self.progress.total is not None:
            self.out.write(f"  {self.progress.status()}\n")
            self.drawn += 1
        self.out.flush()
        self.last_draw = now

    def close(self) -> None:
        self._clear()
        self.out.flush()


def summary(report: RunReport, seconds: float, verb: str = "apply") -> str:
    """The last line of a run: what ran, what was cached, what failed, how long it took.

    Steps are counted at every level (`RunReport.nested`), in the unit of the plan's
    `Plan: N to add`: a delegate is one step, and each step its nested host ran is one more.
    """
    parts = [
        f"{report.count_all('ok')} ran",
        f"{report.count_all('cached')} cached",
        f"{report.count_all('failed')} failed",
    ]
    if report.count_all("skipped"):
        parts.append(f"{report.count_all('skipped')} skipped")
    if report.removed:
        parts.append(f"{len(report.removed)} removed")
    if report.rolled_back:
        parts.append(f"{len(report.rolled_back)} rolled back")
    state = {"ok": "complete", "failed": "failed", "interrupted": "interrupted"}[report.status]
    return f"{verb.capitalize()} {state}: {', '.join(parts)} in {seconds:.1f}s."
