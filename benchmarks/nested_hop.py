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
import statistics

from _lab import Lab, lab


def delegate_durations(here: Lab, workspace: str) -> dict[str, float]:
    """Per level, the duration of its delegate step in the latest run."""
    return {
        f"{e.host} › {e.address}": e.duration or 0.0
        for e in here.finished_events(workspace)
        if e.address.endswith(".delegate")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="cached re-applies to time")
    args = parser.parse_args()
    with lab() as here:
        words = ("-M", "n3-deep", "-H", "sim", "--site-config", str(here.site), "--yes")
        try:
            cold = here.pveplan("apply", *words)
            print(f"(a) n3-deep cold apply, zero latency: {cold:.2f} s")
            for where, seconds in delegate_durations(here, "n3-deep@sim").items():
                print(f"    {where}: {seconds:.2f} s")
            walls, hops = [], []
            for _ in range(args.repeat):
                walls.append(here.pveplan("apply", *words))
                durations = delegate_durations(here, "n3-deep@sim")
                hops.append(min(durations.values()))
            print(
                f"(b) n3-deep cached re-apply (median of {args.repeat}): {statistics.median(walls):.2f} s"
            )
            for where, seconds in durations.items():
                print(f"    {where}: {seconds:.3f} s")
            print(f"    one hop (innermost delegate, median): {statistics.median(hops):.3f} s")
        finally:
            here.pveplan("destroy", *words, check=False)


if __name__ == "__main__":
    main()
