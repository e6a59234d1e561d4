"""What drift probing adds to `plan`: 1,000 flat VMs on the simulator, `plan` with the
live-state probe (the default: one `/cluster/resources` listing of the host) against
`plan --refresh=false` (offline, from the store alone).

A first apply builds the VMs for real (timed too, it takes minutes); then each plan runs
`--repeat` times as a user runs it (a fresh process each), and the median wall time of
each is printed, with the number of PVE calls the probed plan made (from the simulator's
call log) and, after 10 VMs' memory is changed by hand with `qm set`, the time of a plan
that finds that drift.

    python benchmarks/drift_probe.py [--nodes N] [--repeat R]

Prints figures; asserts nothing. Uses a temporary store and simulator (benchmarks/_lab.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess

from _lab import lab

BASE = 300000


def manifest(nodes: int) -> str:
    return (
        'manifest "bench-drift" {\n'
        '  pattern = "flat"\n'
        "  settings = { parallelism = 20 }\n"
        f"  for i in range(1, {nodes + 1}) {{\n"
        '    node "n-${i}" { type = "vm" preset = "vm-xsmall" image = "debian-13" '
        f"vmid = {BASE} + i }}\n"
        "  }\n"
        "}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with lab() as bench:
        (bench.site / "manifests" / "bench-drift.pvp").write_text(manifest(args.nodes))
        words = ("-M", "bench-drift", "-H", "sim", "--site-config", str(bench.site))
        cold = bench.pveplan("apply", *words, "--yes")
        print(f"cold apply of {args.nodes} VMs: {cold:.1f} s")
        calls = bench.store / "sim" / "calls.jsonl"

        def timed(*extra: str) -> float:
            return statistics.median(
                bench.pveplan("plan", *words, *extra) for _ in range(args.repeat)
            )

        offline = timed("--refresh=false")
        since = len(calls.read_text().splitlines())
        probed = timed()
        made = calls.read_text().splitlines()[since:]
        per_plan = len(made) / args.repeat
        tools = sorted(
            {" ".join([c["tool"], *c.get("argv", [])[:2]]) for c in map(json.loads, made)}
        )
        print(f"plan --refresh=false ({args.nodes} VMs): {offline:.2f} s (median of {args.repeat})")
        print(
            f"plan with drift probing ({args.nodes} VMs): {probed:.2f} s (median of {args.repeat}), "
            f"+{probed - offline:.2f} s; {per_plan:.0f} PVE call(s) per plan: {', '.join(tools)}"
        )
        qm = str(bench.store / "sim" / "hosts" / "sim" / "bin" / "qm")
        changed = min(10, args.nodes)
        for i in range(1, changed + 1):
            subprocess.run(
                [qm, "set", str(BASE + i), "--memory", "2048"], check=True, capture_output=True
            )
        drifted = timed()
        print(
            f"plan finding {changed} drifted VMs of {args.nodes}: {drifted:.2f} s (median of {args.repeat})"
        )


if __name__ == "__main__":
    main()
