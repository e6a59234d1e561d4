"""pveplan side by side with Nix, at Nix's own game: compile a DAG, skip what is built.

Issue 24's benchmark. For each shape (flat: N independent nodes; chain: node i inside
node i-1; tree: fanout 10) and size, in one run on one machine:

  compile   `nix-instantiate` cold (empty store) and warm (the .drv files exist) against
            `pveplan plan FILE -o PLAN --refresh=false` (offline, empty pveplan store) of
            plan_scale.py's YAML manifests (a node with children is a nested PVE host):
            wall, the process's own CPU, max RSS, bytes written per node (.drv / plan file).
  no-op     flat only: `nix-build` after a first build, against `pveplan apply` after a
            real cold apply on the simulator (N plain VMs, 4 steps each, as apply_scale.py
            applies them), with `--refresh=false` (trusts the store, as Nix does) and with
            the default live-state probe (one listing per host) as a second figure. No
            store is faked: a size whose cold apply is projected over --sim-budget is
            skipped, and the output says so.

and the pveplan-only rows of the issue's table: 50 independent 0.2 s steps (with Nix's
`-j50` beside it), one cached nested hop, a small `plan` (n1-push), cold apply on the
simulator per node. It ends with the issue's goals, each met or its distance.

    python benchmarks/vs_nix.py [--shapes flat,chain,tree] [--sizes 100,1000]
                                [--repeat 3] [--sim-budget 900] [--timeout 600] [--quick]

`--quick`: 100 nodes, one repeat, nothing on the simulator (a smoke run, ~1 min).
Progress goes to stderr, figures to stdout. Nix is Debian's nix-bin (installed with
apt-get when absent), single-user on a throw-away store; pveplan runs as installed in the
Python that runs this script, against throw-away stores and simulators. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import Figure, Run, note, repeat, run
from _nix import NixStore, ensure_nix, expression, parents, sleepers
from _vsreport import Report
from plan_scale import yaml_manifest

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "examples" / "site-config"
PVEPLAN = (sys.executable, "-m", "pveplan.cli")
UNPROJECTED = 1_000  # the largest cold apply tried without a smaller one to project from
PARALLELISM = 10  # pveplan's default; Nix's max-jobs is set to the same


def pveplan_env(base: Path) -> dict[str, str]:
    """A pveplan of its own: store and config (hence simulator) under `base`."""
    return {
        **os.environ,
        "PVEPLAN_STORE": str(base / "store"),
        "XDG_CONFIG_HOME": str(base / "config"),
    }


def flat_vms(name: str, n: int, *, parallelism: int | None = None) -> str:
    """N plain VMs (no spec to push: create, start, wait for an address and SSH, 4 steps
    a VM), as apply_scale.py and drift_probe.py apply them, at pveplan's default
    parallelism unless given; the compile figures use plan_scale.py's manifests, as the
    issue did."""
    lines = ["schema_version: 2", f"name: {name}", "pattern: flat"]
    if parallelism is not None:
        lines += ["settings:", f"  parallelism: {parallelism}"]
    lines.append("nodes:")
    for i in range(1, n + 1):
        lines += [
            f"  - name: n-{i}",
            "    type: vm",
            "    preset: vm-xsmall",
            "    image: debian-13",
            f"    vmid: {200000 + i}",
        ]
    return "\n".join(lines) + "\n"


def compile_nix(shape: str, n: int, tmp: Path, args: argparse.Namespace, out: Report) -> None:
    nix = NixStore(tmp / f"nix-{shape}-{n}", max_jobs=PARALLELISM)
    try:
        path = nix.base / "nodes.nix"
        path.write_text(expression(shape, n))
        argv = ("nix-instantiate", str(path))
        cold = repeat(f"{shape} {n}: nix-instantiate cold", argv, nix.env, 1, args.timeout)
        out.put("nix", "instantiate cold", shape, n, cold)
        out.put_bytes("nix", shape, n, nix.drv_bytes())
        if isinstance(cold, Figure):
            warm = repeat(
                f"{shape} {n}: nix-instantiate warm", argv, nix.env, args.repeat, args.timeout
            )
            out.put("nix", "instantiate warm", shape, n, warm)
        if shape == "flat" and not args.no_noop:
            build = ("nix-build", "--no-out-link", str(path))
            first = repeat(f"{shape} {n}: nix-build first", build, nix.env, 1, args.timeout)
            out.put("nix", "build first", shape, n, first)
            if isinstance(first, Figure):
                noop = repeat(
                    f"{shape} {n}: nix-build no-op", build, nix.env, args.repeat, args.timeout
                )
                out.put("nix", "build no-op", shape, n, noop)
    finally:
        nix.remove()


def compile_pveplan(shape: str, n: int, tmp: Path, args: argparse.Namespace, out: Report) -> None:
    base = tmp / f"pveplan-{shape}-{n}"
    base.mkdir()
    manifest = base / f"vs-{shape}.yaml"
    manifest.write_text(yaml_manifest(f"vs-{shape}", parents(shape, n)))
    plan = base / "plan.json"
    argv = (
        *PVEPLAN, "plan", str(manifest), "-H", "sim", "--site-config", str(SITE),
        "--refresh=false", "-o", str(plan),
    )  # fmt: skip
    skip = out.projected_skip("pveplan", "plan", shape, n, args.timeout)
    if skip:
        out.put("pveplan", "plan", shape, n, skip)
        return
    figure = repeat(
        f"{shape} {n}: pveplan plan", argv, pveplan_env(base), args.repeat, args.timeout
    )
    out.put("pveplan", "plan", shape, n, figure)
    if plan.exists():
        out.put_bytes("pveplan", shape, n, plan.stat().st_size)
    shutil.rmtree(base, ignore_errors=True)


def noop_pveplan(n: int, tmp: Path, args: argparse.Namespace, out: Report) -> None:
    """Cold apply of n flat VMs on a simulator, then the no-op re-applies (skipped, with the
    reason, when the previous size says the cold apply would not fit the budget)."""
    skip = out.projected_skip("pveplan", "apply cold (sim)", "flat", n, args.sim_budget)
    if n > UNPROJECTED and not any(m < n for m in out.sizes):
        skip = f"skipped: over {UNPROJECTED:,} nodes without a smaller size to project from"
    if skip:
        out.put("pveplan", "apply cold (sim)", "flat", n, skip)
        return
    base = tmp / f"apply-{n}"
    site = base / "site"
    shutil.copytree(SITE, site)
    (site / "manifests" / "vs-flat.yaml").write_text(flat_vms("vs-flat", n))
    env = pveplan_env(base)
    words = (*PVEPLAN, "apply", "-M", "vs-flat", "-H", "sim", "--site-config", str(site), "--yes")
    try:
        cold = repeat(f"flat {n}: pveplan cold apply (simulator)", words, env, 1, args.sim_budget)
        out.put("pveplan", "apply cold (sim)", "flat", n, cold)
        if not isinstance(cold, Figure):
            return
        offline = repeat(
            f"flat {n}: pveplan no-op apply --refresh=false",
            (*words, "--refresh=false"), env, args.repeat, args.timeout,
        )  # fmt: skip
        out.put("pveplan", "apply no-op --refresh=false", "flat", n, offline)
        probed = repeat(
            f"flat {n}: pveplan no-op apply (probed)", words, env, args.repeat, args.timeout
        )
        out.put("pveplan", "apply no-op probed", "flat", n, probed)
    finally:
        run((*PVEPLAN, "sim", "down"), env, 120)
        shutil.rmtree(base, ignore_errors=True)


def overlap(tmp: Path, args: argparse.Namespace, out: Report) -> None:
    """50 independent 0.2 s steps: pveplan's scheduler (apply_scale.py (b)) and Nix -j50."""
    note("50 x 0.2 s: pveplan scheduler (apply_scale.py --skip-noop)")
    done = run(
        (sys.executable, str(ROOT / "benchmarks" / "apply_scale.py"), "--skip-noop"),
        pveplan_env(tmp / "overlap"), args.timeout,
    )  # fmt: skip
    found = re.search(r"\(b\).*: ([0-9.]+) s wall", done.output)
    out.extra["overlap pveplan"] = float(found.group(1)) if found else _why(done)
    nix = NixStore(tmp / "nix-sleep", max_jobs=50)
    try:
        path = nix.base / "sleep.nix"
        path.write_text(sleepers(50, 0.2))
        inst = run(("nix-instantiate", str(path)), nix.env, args.timeout)
        if not inst.ok:
            out.extra["overlap nix"] = _why(inst)
            return
        note("50 x 0.2 s: nix-build -j50")
        built = run(("nix-build", "--no-out-link", "-j50", str(path)), nix.env, args.timeout)
        out.extra["overlap nix"] = built.wall if built.ok else _why(built)
    finally:
        nix.remove()


def small_plan(tmp: Path, args: argparse.Namespace, out: Report) -> None:
    env = pveplan_env(tmp / "small")
    argv = (*PVEPLAN, "plan", "-M", "n1-push", "-H", "sim", "--site-config", str(SITE))
    out.extra["small plan"] = repeat(
        "small plan n1-push --refresh=false", (*argv, "--refresh=false"), env, args.repeat,
        args.timeout,
    )  # fmt: skip
    out.extra["python -c pass"] = repeat(
        "python -c pass", (sys.executable, "-c", "pass"), env, args.repeat, args.timeout
    )


def nested_hop(args: argparse.Namespace, out: Report) -> None:
    note("one cached nested hop (nested_hop.py --repeat 3: a cold n3-deep apply first)")
    done = run(
        (sys.executable, str(ROOT / "benchmarks" / "nested_hop.py"), "--repeat", "3"),
        dict(os.environ), args.sim_budget,
    )  # fmt: skip
    found = re.search(r"one hop \(innermost delegate, median\): ([0-9.]+) s", done.output)
    out.extra["nested hop"] = float(found.group(1)) if found else _why(done)


def _why(done: Run) -> str:
    if done.timed_out:
        return "did not finish in time"
    return f"failed (exit {done.returncode}): " + " / ".join(done.output.strip().splitlines()[-3:])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shapes", default="flat,chain,tree", help="comma-separated")
    parser.add_argument("--sizes", default="100,1000", help="comma-separated node counts")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each warm figure")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per command")
    parser.add_argument(
        "--sim-budget", type=float, default=900,
        help="seconds a cold apply on the simulator may take (skipped when projected over)",
    )  # fmt: skip
    parser.add_argument("--no-noop", action="store_true", help="no builds or applies")
    parser.add_argument("--no-extras", action="store_true", help="no pveplan-only rows")
    parser.add_argument("--quick", action="store_true", help="100 nodes, 1 repeat, no simulator")
    args = parser.parse_args()
    shapes = [s for s in args.shapes.split(",") if s]
    sizes = sorted(int(s) for s in args.sizes.split(",") if s)
    if args.quick:
        sizes, args.repeat, args.no_noop = [100], 1, True
    unknown = set(shapes) - {"flat", "chain", "tree"}
    if unknown or not sizes or min(sizes) < 2:
        parser.error(f"shapes are flat, chain, tree (not {sorted(unknown)}); sizes ≥ 2")
    version = ensure_nix()
    out = Report(sizes, shapes, args, version)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pveplan-vs-nix-") as name:
        tmp = Path(name)
        for n in sizes:
            for shape in shapes:
                compile_nix(shape, n, tmp, args, out)
                compile_pveplan(shape, n, tmp, args, out)
            if "flat" in shapes and not args.no_noop:
                noop_pveplan(n, tmp, args, out)
        if not args.no_extras:
            overlap(tmp, args, out)
            small_plan(tmp, args, out)
            if not args.no_noop:
                nested_hop(args, out)
    out.extra["benchmark wall"] = time.perf_counter() - started
    out.print()


if __name__ == "__main__":
    main()
