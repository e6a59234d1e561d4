"""What a nested level costs: n3-deep end to end, and the overhead of one hop.

(a) n3-deep (root-pve > leaf-pve > edge) applied cold on the simulator with zero simulated
    latency: wall time, and how long each level's delegate took.
(b) the same manifest applied again, everything cached: each hop still connects, says
    hello, ships its subplan and gets an all-cached result back. The innermost delegate's
    duration is one hop's overhead (bootstrap already done); the outer ones include the
    hops below them.

    python benchmarks/nested_hop.py [--repeat N]

Prints figures; asserts nothing. Uses a temporary store, config and simulator.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "examples" / "site-config"


def pveplan(env: dict[str, str], *words: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "planner.cli", *words], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"pveplan {' '.join(words)} failed:\n{done.stdout}{done.stderr}")
    return time.perf_counter() - started


def delegate_durations(store_path: Path, workspace: str) -> dict[str, float]:
    """Per level, the duration of its delegate step in the latest run."""
    sys.path.insert(0, str(ROOT))
    from store import open_store

    with open_store(store_path) as store:
        run = store.runs(workspace, limit=1)[0]
        return {
            f"{e.host} › {e.address}": e.duration or 0.0
            for e in store.run_events(run.id)
            if e.address.endswith(".delegate") and e.kind in ("finished", "cached")
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="cached re-applies to time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        shutil.copytree(SITE, base / "site")
        env = {
            **os.environ,
            "PVEPLAN_STORE": str(base / "store"),
            "XDG_CONFIG_HOME": str(base / "config"),
        }
        words = ("-M", "n3-deep", "-H", "sim", "--site-config", str(base / "site"), "--yes")
        try:
            cold = pveplan(env, "apply", *words)
            print(f"(a) n3-deep cold apply, zero latency: {cold:.2f} s")
            for where, seconds in delegate_durations(base / "store", "n3-deep@sim").items():
                print(f"    {where}: {seconds:.2f} s")
            walls, hops = [], []
            for _ in range(args.repeat):
                walls.append(pveplan(env, "apply", *words))
                durations = delegate_durations(base / "store", "n3-deep@sim")
                hops.append(min(durations.values()))
            print(
                f"(b) n3-deep cached re-apply (median of {args.repeat}): {statistics.median(walls):.2f} s"
            )
            for where, seconds in durations.items():
                print(f"    {where}: {seconds:.3f} s")
            print(f"    one hop (innermost delegate, median): {statistics.median(hops):.3f} s")
        finally:
            subprocess.run(
                [sys.executable, "-m", "planner.cli", "destroy", *words],
                env=env,
                capture_output=True,
            )
            subprocess.run(
                [sys.executable, "-m", "planner.cli", "sim", "down"], env=env, capture_output=True
            )


if __name__ == "__main__":
    main()
