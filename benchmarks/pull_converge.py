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
import statistics

from _lab import lab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="apply/destroy rounds to time")
    args = parser.parse_args()
    with lab() as here:
        words = ("-M", "n1-pull", "-H", "sim", "--site-config", str(here.site), "--yes")
        converge, walls = [], []
        for round_ in range(args.rounds):
            wall = here.pveplan("apply", *words)
            ends = {
                e.address: e.at for e in here.finished_events("n1-pull@sim") if e.kind == "finished"
            }
            seconds = ends["node.edge.config"] - ends["node.edge.start"]
            converge.append(seconds)
            walls.append(wall)
            print(
                f"round {round_ + 1}: start -> converged report {seconds:.2f} s; apply {wall:.2f} s"
            )
            here.pveplan("destroy", *words)
    print(
        f"VM start -> converged report, zero latency: median {statistics.median(converge):.2f} s "
        f"(min {min(converge):.2f}, max {max(converge):.2f}) over {args.rounds} first boots"
    )
    print(
        f"whole n1-pull apply (bundle built on the first): median {statistics.median(walls):.2f} s"
    )


if __name__ == "__main__":
    main()
