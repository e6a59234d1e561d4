"""How long a pull node takes to configure itself: from VM start to its converged report.

n1-pull is applied on the simulator with zero simulated latency, with apply's own spec
server. The figure is the time from the end of `node.edge.start` (the VM is running) to
the end of `node.edge.config` (the driver has the node's converged report): cloud-init's
runcmd starting the bootstrap, the bundle's download (with the certificate pinned) and
install, `spec get`, `config apply` against the node's own store, and the report, plus
the driver's polling delay. The node's own view (its spec fetch and report times) comes
from the server's log. Each round destroys the VM, so every boot is a first boot.

    python benchmarks/pull_converge.py [--rounds N]

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


def step_ends(store_path: Path, workspace: str) -> dict[str, float]:
    """When each step of the latest run finished (event time, seconds since the epoch)."""
    sys.path.insert(0, str(ROOT))
    from store import open_store

    with open_store(store_path) as store:
        run = store.runs(workspace, limit=1)[0]
        return {
            e.address: e.at
            for e in store.run_events(run.id)
            if e.kind == "finished" and not e.host.count("›")
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="apply/destroy rounds to time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        shutil.copytree(SITE, base / "site")
        env = {
            **os.environ,
            "PVEPLAN_STORE": str(base / "store"),
            "XDG_CONFIG_HOME": str(base / "config"),
        }
        words = ("-M", "n1-pull", "-H", "sim", "--site-config", str(base / "site"), "--yes")
        converge, walls = [], []
        try:
            for round_ in range(args.rounds):
                wall = pveplan(env, "apply", *words)
                ends = step_ends(base / "store", "n1-pull@sim")
                seconds = ends["node.edge.config"] - ends["node.edge.start"]
                converge.append(seconds)
                walls.append(wall)
                print(
                    f"round {round_ + 1}: start -> converged report {seconds:.2f} s; apply {wall:.2f} s"
                )
                pveplan(env, "destroy", *words)
        finally:
            subprocess.run(
                [sys.executable, "-m", "planner.cli", "sim", "down"], env=env, capture_output=True
            )
        print(
            f"VM start -> converged report, zero latency: median {statistics.median(converge):.2f} s "
            f"(min {min(converge):.2f}, max {max(converge):.2f}) over {args.rounds} first boots"
        )
        print(
            f"whole n1-pull apply (bundle built on the first): median {statistics.median(walls):.2f} s"
        )


if __name__ == "__main__":
    main()
