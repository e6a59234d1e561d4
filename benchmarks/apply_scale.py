"""How fast `apply` is when there is nothing to do, and how well independent steps overlap.

(a) no-op re-apply of N flat VMs (default 1,000) on the simulator: a first apply builds
    them for real (timed too), then `pveplan apply` runs again with everything cached;
    wall time and the peak RSS of that process are printed.
(b) 50 independent steps that each take 0.2 s (a step kind that sleeps, run by the real
    scheduler against a real store, parallelism 50): wall time against the 0.2 s ideal.

    python benchmarks/apply_scale.py [--nodes N] [--skip-noop]

Prints figures; asserts nothing. Uses a temporary store and simulator.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "examples" / "site-config"


def manifest(nodes: int) -> str:
    return (
        'manifest "bench-flat" {\n'
        '  pattern = "flat"\n'
        "  settings = { parallelism = 20 }\n"
        f"  for i in range(1, {nodes + 1}) {{\n"
        '    node "n-${i}" { type = "vm" preset = "vm-xsmall" image = "debian-13" vmid = 200000 + i }\n'
        "  }\n"
        "}\n"
    )


def pveplan(env: dict[str, str], *words: str) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pveplan.cli", *words],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"pveplan {' '.join(words)} failed:\n{result.stdout}\n{result.stderr}")
    return took, result.stdout.strip().splitlines()[-1]


def noop_reapply(nodes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        subprocess.run(["cp", "-r", str(SITE), str(site)], check=True)
        (site / "manifests" / "bench-flat.pvp").write_text(manifest(nodes))
        env = {**os.environ, "PVEPLAN_STORE": f"{tmp}/store", "XDG_CONFIG_HOME": f"{tmp}/config"}
        words = ("apply", "-M", "bench-flat", "-H", "sim", "--site-config", str(site), "--yes")
        try:
            cold, line = pveplan(env, *words)
            print(f"(a) cold apply of {nodes} VMs: {cold:.1f} s  [{line}]")
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            warm, line = pveplan(env, *words)
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            print(
                f"(a) no-op re-apply of {nodes} VMs ({nodes * 4 + 1} steps cached): {warm:.2f} s, "
                f"peak RSS {max(peak, before) / 1024:.0f} MB  [{line}]"
            )
        finally:
            subprocess.run(
                [sys.executable, "-m", "pveplan.cli", "sim", "down"],
                env=env,
                capture_output=True,
            )


def overlap(count: int = 50, seconds: float = 0.2) -> None:
    import trio

    from pveplan.executor import StepKind, execute, register
    from pveplan.executor._context import Services
    from pveplan.planner import Plan, PlanSettings, Step, StepArgs
    from pveplan.store import open_store

    class SleepArgs(StepArgs, frozen=True, kw_only=True):
        i: int

    @register
    class Sleep(StepKind):
        name = "bench.sleep"
        args_type = SleepArgs

        async def apply(self, ctx, step, refs):  # type: ignore[no-untyped-def]
            await trio.sleep(seconds)
            return {"slept": True}

    steps = tuple(
        Step(
            address=f"s.{i}",
            kind="bench.sleep",
            kind_version=1,
            host="h",
            args={"i": i},
            hash=f"{i:032x}",
        )
        for i in range(count)
    )
    plan = Plan(
        manifest="bench",
        host="h",
        settings=PlanSettings(parallelism=count),
        steps=steps,
        hash="0" * 32,
    )
    with tempfile.TemporaryDirectory() as tmp, open_store(Path(tmp)) as store:
        services = Services(
            store=store,
            workspace="bench@h",
            hosts=None,  # type: ignore[arg-type]  (the step kind touches no host)
            pool=None,  # type: ignore[arg-type]
            driver_key=(b"", ""),
            reveal=lambda name: "",
        )
        started = time.perf_counter()
        report = trio.run(execute, plan, services, lambda event: None)
        took = time.perf_counter() - started
    assert report.count("ok") == count
    print(
        f"(b) {count} independent {seconds} s steps: {took:.3f} s wall (ideal {seconds} s, overhead {took - seconds:.3f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--skip-noop", action="store_true")
    args = parser.parse_args()
    overlap()
    if not args.skip_noop:
        noop_reapply(args.nodes)


if __name__ == "__main__":
    main()
