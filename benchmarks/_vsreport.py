"""vs_nix.py's figures: kept as measured, printed as Markdown tables, judged against issue 24's goals.

Every cell is either a Figure (best wall of the repeats, the process's own CPU, max RSS)
or the reason there is none (a failure, a timeout, a skip); a goal not measured at its
size is shown with a linear projection from the largest size measured, marked as such,
never as met.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

from _measure import Figure

Cell = Figure | str


class Report:
    def __init__(
        self, sizes: list[int], shapes: list[str], args: argparse.Namespace, nix: str
    ) -> None:
        self.sizes, self.shapes, self.args, self.nix = sizes, shapes, args, nix
        self.figs: dict[tuple[str, str, str, int], Cell] = {}
        self.bytes: dict[tuple[str, str, int], int] = {}
        self.extra: dict[str, object] = {}
        self.load_start = os.getloadavg()[0]
        self.date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    def put(self, tool: str, what: str, shape: str, n: int, cell: Cell) -> None:
        self.figs[tool, what, shape, n] = cell

    def put_bytes(self, tool: str, shape: str, n: int, size: int) -> None:
        self.bytes[tool, shape, n] = size

    def fig(self, tool: str, what: str, shape: str, n: int) -> Figure | None:
        cell = self.figs.get((tool, what, shape, n))
        return cell if isinstance(cell, Figure) else None

    def projected_skip(self, tool: str, what: str, shape: str, n: int, limit: float) -> str:
        """Why not to run this size ('' to run it): a smaller size did not finish, or its
        wall scaled linearly to n already exceeds `limit`."""
        smaller = [m for m in self.sizes if m < n and (tool, what, shape, m) in self.figs]
        if not smaller:
            return ""
        m = max(smaller)
        cell = self.figs[tool, what, shape, m]
        if not isinstance(cell, Figure):
            return f"skipped: the {m:,}-node run gave no figure"
        projected = cell.wall * n / m
        if projected > limit:
            return (
                f"skipped: {projected:.0f} s projected (linear from {m:,} nodes) is over"
                f" the {limit:.0f} s bound"
            )
        return ""

    # -- printing ---------------------------------------------------------------------------

    def print(self) -> None:
        print(self.header())
        print(self.compile_table())
        if not self.args.no_noop and "flat" in self.shapes:
            print(self.noop_table())
        if self.extra:
            print(self.extras_table())
        print(self.goals_table())

    def header(self) -> str:
        head = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent), "log", "-1", "--format=%h %cs"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        return (
            f"# vs_nix: {self.date}, pveplan {head or '?'}, {self.nix}\n\n"
            f"Machine: {platform.node()} ({os.cpu_count()} cores, {platform.python_implementation()}"
            f" {platform.python_version()}); load average {self.load_start:.1f} at start,"
            f" {os.getloadavg()[0]:.1f} at end. Walls are the best of {self.args.repeat} (median"
            " in parentheses); cpu is the process's own user+system time; MB is its max RSS."
            " pveplan plans with --refresh=false (offline, like nix-instantiate); Nix runs"
            " single-user on a temporary local store, no substituters, builders /bin/sh,"
            " max-jobs 10 (pveplan's default parallelism).\n"
        )

    def compile_table(self) -> str:
        rows = [
            "## compile: `nix-instantiate` vs `pveplan plan FILE -o PLAN`\n",
            "| shape | nodes | nix cold | nix warm | pveplan plan | pveplan / nix warm (wall · cpu) |"
            " per node: nix warm · pveplan | bytes per node: .drv · plan file |",
            "|---|---:|---|---|---|---:|---|---|",
        ]
        for shape in self.shapes:
            for n in self.sizes:
                cold = self.figs.get(("nix", "instantiate cold", shape, n), "")
                warm = self.fig("nix", "instantiate warm", shape, n)
                plan = self.fig("pveplan", "plan", shape, n)
                rows.append(
                    f"| {shape} | {n:,} | {cell(cold, brief=True)} "
                    f"| {cell(self.figs.get(('nix', 'instantiate warm', shape, n), ''))} "
                    f"| {cell(self.figs.get(('pveplan', 'plan', shape, n), ''))} "
                    f"| {ratio(plan, warm)} | {per_node(warm, n)} · {per_node(plan, n)} "
                    f"| {per_node_bytes(self.bytes.get(('nix', shape, n)), n)} · "
                    f"{per_node_bytes(self.bytes.get(('pveplan', shape, n)), n)} |"
                )
        return "\n".join(rows) + "\n"

    def noop_table(self) -> str:
        rows = [
            "## no-op: `nix-build` after a first build vs `pveplan apply` after a cold apply"
            " (flat)\n",
            "| nodes | nix-build first | pveplan cold apply (simulator) | nix-build no-op"
            " | pveplan no-op --refresh=false | pveplan no-op probed | pveplan offline / nix (wall · cpu)"
            " | per node: nix · pveplan offline |",
            "|---:|---|---|---|---|---|---:|---|",
        ]
        for n in self.sizes:
            get = self.figs.get
            nix = self.fig("nix", "build no-op", "flat", n)
            offline = self.fig("pveplan", "apply no-op --refresh=false", "flat", n)
            rows.append(
                f"| {n:,} | {cell(get(('nix', 'build first', 'flat', n), ''), brief=True)} "
                f"| {cell(get(('pveplan', 'apply cold (sim)', 'flat', n), ''), brief=True)} "
                f"| {cell(get(('nix', 'build no-op', 'flat', n), ''))} "
                f"| {cell(get(('pveplan', 'apply no-op --refresh=false', 'flat', n), ''))} "
                f"| {cell(get(('pveplan', 'apply no-op probed', 'flat', n), ''))} "
                f"| {ratio(offline, nix)} | {per_node(nix, n)} · {per_node(offline, n)} |"
            )
        return "\n".join(rows) + "\n"

    def extras_table(self) -> str:
        rows = ["## pveplan-only rows\n", "| figure | value |", "|---|---|"]
        for name, value in self.extra.items():
            rows.append(
                f"| {name} | {cell(value) if not isinstance(value, float) else f'{value:.2f} s'} |"
            )
        return "\n".join(rows) + "\n"

    def goals_table(self) -> str:
        rows = [
            "## issue 24's goals\n",
            "| goal | target | measured | verdict |",
            "|---|---|---|---|",
        ]
        for goal, target, measured, verdict in self.goals():
            rows.append(f"| {goal} | {target} | {measured} | {verdict} |")
        return "\n".join(rows) + "\n"

    def at_or_projected(
        self, tool: str, what: str, shape: str, n: int, proportional: bool = False
    ) -> Measured | None:
        """The figure at n, or a projection from the smaller sizes measured: a fixed cost
        plus a per-node cost fitted through the two largest. From one size alone, either
        proportional (when the per-node cost dwarfs start-up, as in a cold apply) or, by
        default, that size's own figure as a lower bound (start-up dominates it)."""
        if fig := self.fig(tool, what, shape, n):
            return Measured(fig.wall, fig.cpu, "")
        have = [(m, f) for m in self.sizes if m < n and (f := self.fig(tool, what, shape, m))]
        if not have:
            return None
        if len(have) >= 2:
            (k, g), (m, f) = have[-2], have[-1]
            wall = f.wall + (f.wall - g.wall) / (m - k) * (n - m)
            cpu = f.cpu + (f.cpu - g.cpu) / (m - k) * (n - m)
            return Measured(wall, cpu, f"projected from {k:,} and {m:,}", projected=True)
        m, f = have[0]
        if proportional:
            return Measured(
                f.wall * n / m, f.cpu * n / m, f"projected proportionally from {m:,}", True
            )
        return Measured(f.wall, f.cpu, f"at {m:,}: a lower bound for {n:,}", lower_bound=True)

    def goals(self) -> list[tuple[str, str, str, str]]:
        out = []

        def judge(goal: str, target: float, found: Measured | None, unit: str = "s") -> None:
            if found is None:
                out.append((goal, f"≤ {target:g} {unit}", "not measured", "—"))
                return
            text = f"{found.wall:.2f} {unit}"
            if found.cpu is not None:
                text += f" wall, {found.cpu:.2f} {unit} cpu"
            if found.note:
                text += f" ({found.note})"
            verdicts = (
                [("wall ", found.wall), ("cpu ", found.cpu)] if found.cpu else [("", found.wall)]
            )
            parts = [
                f"{name}met" if value <= target else f"{name}{value / target:.1f}× the goal"
                for name, value in verdicts
            ]
            verdict = ", ".join(parts) + (" (projected, not measured)" if found.projected else "")
            if found.lower_bound:
                verdict = "not measured; " + ", ".join(
                    f"{name}≥ {value / target:.1f}× the goal" for name, value in verdicts
                )
            out.append((goal, f"≤ {target:g} {unit}", text, verdict))

        judge(
            "plan 10,000 flat to a file",
            0.6,
            self.at_or_projected("pveplan", "plan", "flat", 10_000),
        )
        if fig := self.fig("pveplan", "plan", "flat", 10_000):
            judge("its max RSS", 87, Measured(fig.rss_mb, None, ""), "MB")
        largest = max((n for n in self.sizes if ("pveplan", "flat", n) in self.bytes), default=None)
        if largest:
            per = self.bytes["pveplan", "flat", largest] / largest / 1024
            judge("plan file per node", 1.0, Measured(per, None, f"at {largest:,} nodes"), "KB")
        for n, target in ((1_000, 0.4), (10_000, 3.0)):
            found = self.at_or_projected("pveplan", "apply no-op --refresh=false", "flat", n)
            judge(f"no-op apply {n:,} (--refresh=false)", target, found)
        overlap = self.extra.get("overlap pveplan")
        judge(
            "50 independent 0.2 s steps (1.1× ideal)",
            0.22,
            Measured(overlap, None, "") if isinstance(overlap, float) else None,
        )
        hop = self.extra.get("nested hop")
        judge(
            "one cached nested hop",
            0.3,
            Measured(hop, None, "") if isinstance(hop, float) else None,
        )
        small = self.extra.get("small plan")
        judge(
            "small plan (n1-push)",
            0.2,
            Measured(small.wall, small.cpu, "") if isinstance(small, Figure) else None,
        )
        cold = self.at_or_projected("pveplan", "apply cold (sim)", "flat", 1_000, True)
        # The work is the simulator's (another process): the driver's own cpu says nothing.
        judge("cold apply 1,000 on the simulator", 60, cold and replace(cold, cpu=None))
        for shape in self.shapes:
            out.append(self.linearity("plan", shape, cpu=True))
        out.append(self.linearity("apply no-op --refresh=false", "flat", cpu=False))
        out.append(self.linearity("apply cold (sim)", "flat", cpu=False))
        return out

    def linearity(self, what: str, shape: str, cpu: bool) -> tuple[str, str, str, str]:
        """Per-node cost at each size, and whether the cost grows faster than linearly: the
        marginal cost of a node between two sizes above the smaller size's average cost
        per node (which, for a fixed cost plus a per-node cost, it can never be)."""
        kind = "cpu" if cpu else "wall"
        costs = [
            (n, f.cpu if cpu else f.wall)
            for n in self.sizes
            if (f := self.fig("pveplan", what, shape, n))
        ]
        goal, target = f"linear in nodes: {what} ({shape})", f"per node ({kind}), at each size"
        text = ", ".join(f"{n:,}: {t / n * 1000:.2f} ms" for n, t in costs) or "not measured"
        if len(costs) < 2:
            return (goal, target, text, "—")
        worst = max(
            ((t2 - t1) / (n2 - n1)) / (t1 / n1) for (n1, t1), (n2, t2) in itertools.pairwise(costs)
        )
        verdict = "met" if worst <= 1.25 else f"superlinear: a node costs {worst:.1f}× the average"
        return (goal, target, text, verdict)


@dataclass(frozen=True)
class Measured:
    """A goal's figure: wall (or a size), cpu when there is one, and a note when projected."""

    wall: float
    cpu: float | None
    note: str
    projected: bool = False
    lower_bound: bool = False


def cell(value: object, brief: bool = False) -> str:
    if isinstance(value, Figure):
        if brief:
            return f"{value.wall:.2f} s, {value.rss_mb:.0f} MB"
        return value.brief()
    return str(value).replace("|", "/").replace("\n", " / ")


def ratio(a: Figure | None, b: Figure | None) -> str:
    """wall ratio · cpu ratio (the cpu one is the steadier on a loaded machine)."""
    return f"{a.wall / b.wall:.1f}× · {a.cpu / b.cpu:.1f}×" if a and b and b.cpu else "—"


def per_node(fig: Figure | None, n: int) -> str:
    return f"{fig.wall / n * 1000:.2f} ms" if fig else "—"


def per_node_bytes(size: int | None, n: int) -> str:
    return f"{size / n:,.0f} B" if size else "—"
