"""How long `pveplan apply` takes when every step is cached, at sizes the simulator cannot fill.

A no-op apply needs a store that records every step of the plan. Building 1,000 or
10,000 VMs on the simulator for that takes far too long, so this script FILLS A
THROW-AWAY STORE instead: it plans a flat manifest of N VMs (`pveplan plan -o`), then
runs that plan through the executor's own `run_workspace` (the path a real apply takes:
the scheduler, its group commit, the run record, the applied state) with every step
kind's `apply` replaced by one that returns made-up outputs carrying whatever the
plan's refs read. Then it times the real command, in a fresh process, as a user runs it:

    pveplan apply -M bench-noop -H sim --yes --refresh=false

wall time, CPU time (user + sys, less noisy than wall on a shared machine) and peak RSS,
the best of `--repeat` runs. That the no-op path gives the same result on a store
filled by a really applied run is shown by tests/integration/test_apply.py.

    python benchmarks/noop_apply.py [--nodes N] [--repeat R] [--profile FILE]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from vs_nix import flat_vms

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "examples" / "site-config"
MANIFEST = "bench-noop"


def manifest(nodes: int) -> str:
    return flat_vms(MANIFEST, nodes, parallelism=20)


def fill(store_dir: Path, plan_path: Path) -> int:
    """Record every step of the plan as applied, through the executor's own run path."""
    import trio

    from pveplan.executor import Services, kind_for, run_workspace
    from pveplan.planner import canonical, read_plan_file
    from pveplan.store import open_store

    plan_file = read_plan_file(plan_path)
    plan = plan_file.plan
    wanted: dict[str, set[str]] = defaultdict(set)  # address -> outputs some ref reads
    for step in plan.steps:
        for ref in step.refs.values():
            address, _, output = ref.partition("#")
            wanted[address].add(output)

    for step in plan.steps:  # made-up outputs, one kind at a time
        kind = kind_for(step.kind)
        assert kind is not None, step.kind
        if getattr(type(kind), "_bench_fake", False):
            continue

        async def fake(self: Any, ctx: Any, step: Any, refs: Any) -> dict[str, Any]:
            out: dict[str, Any] = {name: f"{step.address}:{name}" for name in wanted[step.address]}
            if self.resource:
                out.update(name=step.address, vm_id=abs(hash(step.address)) % 900000 + 100000)
            return out

        type(kind).apply = fake  # type: ignore[method-assign]
        type(kind)._bench_fake = True  # type: ignore[attr-defined]

    with open_store(store_dir) as store:
        services = Services(
            store=store,
            workspace=plan_file.header.workspace,
            hosts=None,  # type: ignore[arg-type]  (no step reaches a host)
            pool=None,  # type: ignore[arg-type]
            driver_key=(b"", ""),
            reveal=lambda name: "",
        )
        obj = store.put_object(canonical(plan))
        report = trio.run(run_workspace, plan, obj, services, lambda event: None)
        assert report.status == "ok", report
    return len(plan.steps)


def timed(env: dict[str, str], argv: list[str]) -> tuple[float, float, float, str]:
    """(wall s, user+sys CPU s, peak RSS MB, last line of output) of one command."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = child.stdout.read() if child.stdout else b""
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    text = out.decode(errors="replace").strip()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{text}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text.splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", help="also write a cProfile of one no-op apply here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        site = base / "site"
        shutil.copytree(SITE, site)
        (site / "manifests" / f"{MANIFEST}.yaml").write_text(manifest(args.nodes))
        env = {
            **os.environ,
            "PVEPLAN_STORE": str(base / "store"),
            "XDG_CONFIG_HOME": str(base / "config"),
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # as users run it: imports from .pyc files
        cli = [sys.executable, "-m", "pveplan.cli"]
        where = ["-M", MANIFEST, "-H", "sim", "--site-config", str(site)]
        try:
            print(f"planning {args.nodes} VMs ...", file=sys.stderr)
            plan_path = base / "plan.json"
            timed(env, [*cli, "plan", *where, "--refresh=false", "-o", str(plan_path)])
            print("filling a throw-away store through run_workspace ...", file=sys.stderr)
            steps = fill(base / "store", plan_path)
            apply = [*cli, "apply", *where, "--yes", "--refresh=false"]
            timed(env, apply)  # warm-up: starts the simulator, compiles nothing new
            runs = [timed(env, apply) for _ in range(args.repeat)]
            wall = min(r[0] for r in runs)
            cpu = min(r[1] for r in runs)
            rss = max(r[2] for r in runs)
            print(
                f"no-op apply of {args.nodes} VMs ({steps} steps, store filled by this script, "
                f"not by the simulator): best of {args.repeat}: {wall:.3f} s wall, "
                f"{cpu:.3f} s CPU, peak RSS {rss:.0f} MB, "
                f"{cpu / steps * 1e6:.0f} µs CPU per step  [{runs[-1][3]}]"
            )
            if args.profile:
                subprocess.run(
                    [sys.executable, "-m", "cProfile", "-o", args.profile, *apply[1:]],
                    env=env,
                    capture_output=True,
                    check=True,
                )
                print(f"profile written to {args.profile}", file=sys.stderr)
        finally:
            subprocess.run([*cli, "sim", "down"], env=env, capture_output=True, check=False)


if __name__ == "__main__":
    main()
