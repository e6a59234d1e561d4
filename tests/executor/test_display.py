"""The progress display, fed events by hand with a fake clock: `[done/total]`, the status
line, the estimate of the time left, and the summary line counting every level."""

from __future__ import annotations

import io
import re

from pveplan.executor import Event, LiveDisplay, Outcome, PlainDisplay, RunReport, summary
from pveplan.executor._display import Progress
from pveplan.planner import Plan, PlanSettings, Step


def step(address: str, kind: str, *deps: str, on: str = "sim", **args: object) -> Step:
    return Step(
        address=address, kind=kind, kind_version=1, host=on, deps=deps, args=args, hash=address
    )


def tiered(*, action: str = "apply", parallelism: int = 10) -> Plan:
    """n2-tiered in miniature: an image, pve node `root-pve` and its delegate on the target
    host; an image and VM `edge` on root-pve. Seven steps in all."""
    inner = Plan(
        manifest="t",
        host="root-pve",
        action=action,  # type: ignore[arg-type]
        steps=(
            step("image.debian-12.ensure", "pve.image.ensure", on="root-pve"),
            step(
                "node.edge.create",
                "pve.vm.create",
                "image.debian-12.ensure",
                on="root-pve",
                vmid=99021,
            ),
            step("node.edge.start", "pve.vm.start", "node.edge.create", on="root-pve"),
        ),
        hash="inner",
    )
    return Plan(
        manifest="t",
        host="sim",
        action=action,  # type: ignore[arg-type]
        settings=PlanSettings(parallelism=parallelism),
        steps=(
            step("image.pve-9.ensure", "pve.image.ensure"),
            step("node.root-pve.create", "pve.vm.create", "image.pve-9.ensure", vmid=99011),
            step("node.root-pve.start", "pve.vm.start", "node.root-pve.create"),
            step(
                "node.root-pve.delegate",
                "subplan.delegate",
                "node.root-pve.start",
                host="root-pve",
                subplan="inner",
            ),
        ),
        subplans={"node.root-pve.delegate": inner},
        hash="outer",
    )


def event(
    address: str,
    kind: str,
    at: float,
    *path: str,
    duration: float | None = None,
    message: str = "",
) -> Event:
    return Event(
        address=address,
        kind=kind,  # type: ignore[arg-type]
        host=path[-1] if path else "sim",
        at=at,
        duration=duration,
        message=message,
        path=path,
    )


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_plain_lines_carry_done_of_total_counting_cached_and_nested_steps() -> None:
    out = io.StringIO()
    display = PlainDisplay(out)
    display.begin(tiered())
    display(event("image.pve-9.ensure", "cached", 1))  # done, not listed
    display(event("node.root-pve.create", "started", 1))
    display(event("node.root-pve.create", "finished", 3, duration=2.0))
    display(event("node.old.create", "finished", 4, duration=1.0))  # a removal: not a plan step
    display(event("node.edge.create", "failed", 5, "root-pve", duration=0.5, message="boom"))
    assert out.getvalue().splitlines() == [
        "  [2/7] ✓ node.root-pve.create (2.0s)",
        "        ✓ node.old.create (1.0s)",
        "  [3/7] ✗ root-pve › edge › create (0.5s): boom",
    ]


def test_plain_lines_pad_the_counter_to_the_width_of_the_total() -> None:
    flat = Plan(
        manifest="f",
        host="sim",
        steps=tuple(step(f"node.w-{i}.create", "pve.vm.create") for i in range(12)),
        hash="f",
    )
    out = io.StringIO()
    display = PlainDisplay(out)
    display.begin(flat)
    display(event("node.w-0.create", "finished", 1, duration=1.0))
    assert out.getvalue() == "  [ 1/12] ✓ node.w-0.create (1.0s)\n"


def test_without_begin_lines_are_as_before_and_nothing_is_estimated() -> None:
    out = io.StringIO()
    display = PlainDisplay(out)
    display(event("node.edge.create", "finished", 1, duration=1.0))
    assert out.getvalue() == "  ✓ node.edge.create (1.0s)\n"
    assert display.progress.left() is None


def test_the_estimate_waits_for_a_step_that_ran() -> None:
    clock = Clock(5)
    progress = Progress(clock)
    progress.begin(tiered())
    progress.see(event("image.pve-9.ensure", "cached", 1))
    progress.see(event("node.root-pve.create", "started", 1))
    assert progress.done == 1 and progress.total == 7
    assert progress.status() == "[1/7] 1 running, estimating…"


def test_the_estimate_follows_the_chain_of_dependencies_through_the_subplan() -> None:
    clock = Clock(14)
    progress = Progress(clock)
    progress.begin(tiered())
    progress.see(event("image.pve-9.ensure", "started", 0))
    progress.see(event("image.pve-9.ensure", "finished", 10, duration=10.0))
    progress.see(event("node.root-pve.create", "started", 10))
    # create (no mean of its kind yet: the overall 10s, 4s of it spent) 6, start 10, then
    # the subplan's chain: image (its kind's 10s) + create 10 + start 10
    assert progress.left() == 6 + 10 + 30
    assert progress.status() == "[1/7] 1 running, ~46s left"

    progress.see(event("node.root-pve.create", "finished", 14, duration=4.0))
    # kind means now: image 10, create 4; the overall mean 7 for start (unknown kind)
    assert progress.left() == 7 + (10 + 4 + 7)


def test_the_estimate_spreads_independent_work_over_the_parallelism() -> None:
    flat = Plan(
        manifest="f",
        host="sim",
        settings=PlanSettings(parallelism=4),
        steps=tuple(step(f"node.w-{i}.create", "pve.vm.create") for i in range(4)),
        hash="f",
    )
    clock = Clock(14)
    progress = Progress(clock)
    progress.begin(flat, parallelism=2)  # --parallelism wins over the plan's 4
    progress.see(event("node.w-0.create", "finished", 10, duration=10.0))
    progress.see(event("node.w-1.create", "started", 10))
    # 6 + 10 + 10 seconds of work on two slots; no chain is longer than 10
    assert progress.left() == 13
    assert progress.status() == "[1/4] 1 running, ~13s left"
    for i in (1, 2, 3):
        progress.see(event(f"node.w-{i}.create", "finished", 20, duration=10.0))
    assert progress.status() == "[4/4] 0 running"  # nothing left to estimate


def test_a_delegate_counts_as_running_only_while_nothing_below_it_runs() -> None:
    progress = Progress(Clock(20))
    progress.begin(tiered())
    progress.see(event("node.root-pve.delegate", "started", 10))
    assert progress.running() == 1  # shipping the bundle
    progress.see(event("node.edge.create", "started", 12, "root-pve"))
    assert progress.running() == 1
    progress.see(event("image.debian-12.ensure", "started", 12, "root-pve"))
    assert progress.running() == 2


def test_live_display_draws_the_running_steps_above_a_status_line() -> None:
    out = io.StringIO()
    clock = Clock(0)
    display = LiveDisplay(out, clock=clock)
    display.begin(tiered())
    display(event("image.pve-9.ensure", "started", 0))
    clock.now = 10
    display(event("image.pve-9.ensure", "finished", 10, duration=10.0))
    display(event("node.root-pve.create", "started", 10))
    clock.now = 14
    display(event("node.root-pve.create", "log", 14, message="waiting"))
    screen = out.getvalue().split("\x1b[J")[-1]  # what is on screen after the last clear
    assert screen.splitlines() == ["  … node.root-pve.create (4s)", "  [1/7] 1 running, ~46s left"]
    assert "  [1/7] ✓ image.pve-9.ensure (10.0s)\n" in out.getvalue()
    display.close()
    assert out.getvalue().endswith("\x1b[2A\x1b[J")  # both lines wiped


def test_live_display_redraws_at_most_every_tenth_of_a_second() -> None:
    out = io.StringIO()
    clock = Clock(0)
    display = LiveDisplay(out, clock=clock)
    display.begin(tiered())
    display(event("node.root-pve.create", "started", 0))
    drawn = out.getvalue()
    clock.now = 0.05
    display(event("node.root-pve.create", "log", 0.05, message="still"))
    assert out.getvalue() == drawn
    clock.now = 0.2
    display(event("node.root-pve.create", "log", 0.2, message="still"))
    assert out.getvalue() != drawn


def test_with_nested_hands_the_nested_outcomes_to_the_report_and_summary_counts_them() -> None:
    display = PlainDisplay(io.StringIO())
    display.begin(tiered())
    display(event("image.debian-12.ensure", "cached", 1, "root-pve"))
    display(event("node.edge.create", "finished", 2, "root-pve", duration=1.0))
    display(event("node.edge.start", "finished", 3, "root-pve", duration=1.0))
    display(event("node.root-pve.delegate", "finished", 4, duration=3.0))
    report = RunReport(
        plan_hash="outer",
        status="ok",
        outcomes=(
            Outcome(address="image.pve-9.ensure", status="cached"),
            Outcome(address="node.root-pve.create", status="cached"),
            Outcome(address="node.root-pve.start", status="cached"),
            Outcome(address="node.root-pve.delegate", status="ok", duration=3.0),
        ),
    )
    assert summary(report, 4.0) == "Apply complete: 1 ran, 3 cached, 0 failed in 4.0s."
    report = display.with_nested(report)
    assert sorted((o.path, o.address, o.status) for o in report.nested) == [
        (("root-pve",), "image.debian-12.ensure", "cached"),
        (("root-pve",), "node.edge.create", "ok"),
        (("root-pve",), "node.edge.start", "ok"),
    ]
    line = summary(report, 4.0)
    assert line == "Apply complete: 3 ran, 4 cached, 0 failed in 4.0s."
    numbers = [int(n) for n in re.findall(r"(\d+) (?:ran|cached|failed)", line)]
    assert sum(numbers) == 7  # the plan's steps, every level: the unit of `Plan: N to add`
