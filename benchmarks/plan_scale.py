"""How long compiling a big manifest to a plan file takes, and how much memory.

Cases: 10,000 VMs flat on the target host; 10,000 nodes as a tree of PVE hosts (ten
children each, VMs at the leaves); 1,000 nodes nested 3 levels deep (10 PVE hosts, each
with 9 PVE hosts, each with ~10 VMs). Each runs in a fresh subprocess (for its own max RSS)
against the example site config, and is timed in stages: load (parse, evaluate, check),
resolve (site config), compile (steps and hashes), encode (the plan file's bytes).

    python benchmarks/plan_scale.py [--repeat R]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "examples" / "site-config"


def yaml_manifest(
    name: str, parents: list[int | None], memory: dict[int, int] | None = None
) -> str:
    """A YAML v2 manifest: node i under parents[i], a PVE host if it has children;
    `memory` sets some nodes' memory (MB)."""
    has_children = {p for p in parents if p is not None}
    lines = ["schema_version: 2", f"name: {name}", "pattern: tiered", "nodes:"]
    for i, parent in enumerate(parents):
        pve = i in has_children
        lines += [
            f"  - name: n-{i}",
            f"    type: {'pve' if pve else 'vm'}",
            "    spec: base",
            "    preset: vm-small",
            f"    image: {'pve-9' if pve else 'debian-12'}",
            f"    vmid: {1000 + i}",
        ]
        if memory and i in memory:
            lines.append(f"    memory: {memory[i]}")
        if parent is not None:
            lines.append(f"    parent: n-{parent}")
    return "\n".join(lines) + "\n"


def flat(n: int) -> list[int | None]:
    return [None] * n


def tree(n: int, fanout: int = 10) -> list[int | None]:
    return [None] + [(i - 1) // fanout for i in range(1, n)]


def three_levels(n: int) -> list[int | None]:
    """10 roots, 9 PVE children each, the rest spread as VMs under those 90."""
    parents: list[int | None] = [None] * 10
    for root in range(10):
        parents += [root] * 9
    mids = list(range(10, 100))
    parents += [mids[i % len(mids)] for i in range(n - len(parents))]
    return parents


CASES = {
    "10,000 flat": (10_000, flat),
    "10,000 tree (fanout 10)": (10_000, tree),
    "1,000 nested 3 levels": (1_000, three_levels),
}

CHILD = """
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from pveplan.dsl import load_manifest
from pveplan.planner._planfile import encode_plan_file
from pveplan.planner._planning import build_plan_file
from pveplan.planner.siteconfig import load_site_config, resolve_manifest
path, repeat, site_root = sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
best = None
for _ in range(repeat):
    t0 = time.perf_counter()
    loaded = load_manifest(path)
    t1 = time.perf_counter()
    site = load_site_config(site_root)
    resolved = resolve_manifest(loaded, site, "sim")
    t2 = time.perf_counter()
    plan_file = build_plan_file(loaded, resolved, site, "sim", planned_against=None)
    t3 = time.perf_counter()
    data = encode_plan_file(plan_file)
    t4 = time.perf_counter()
    times = [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0]
    best = times if best is None or times[-1] < best[-1] else best
steps = sum(1 for _ in plan_file.plan.walk())
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"times": best, "steps": steps, "subplans": len(plan_file.plan.walk()) and
                  len({p for p, _ in plan_file.plan.walk()}) - 1, "bytes": len(data), "rss_mb": rss}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"best of {args.repeat}; python {sys.version.split()[0]}; times in ms\n")
    print(
        f"{'case':<25} {'steps':>7} {'subplans':>8} {'file':>8} {'load':>6} {'resolve':>7} "
        f"{'compile':>7} {'encode':>6} {'total':>6} {'max RSS':>8}"
    )
    with tempfile.TemporaryDirectory(prefix="pveplan-bench-") as tmp:
        for label, (count, shape) in CASES.items():
            path = Path(tmp) / "big.yaml"
            path.write_text(yaml_manifest("bench", shape(count)))
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(ROOT), str(path), str(args.repeat), str(SITE)],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                print(f"{label:<25} FAILED: {done.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(done.stdout)
            load, resolve, compile_, encode, total = (t * 1000 for t in r["times"])
            print(
                f"{label:<25} {r['steps']:>7,} {r['subplans']:>8,} {r['bytes'] / 1e6:>6.1f}MB {load:>6.0f} "
                f"{resolve:>7.0f} {compile_:>7.0f} {encode:>6.0f} {total:>6.0f} {r['rss_mb']:>6.0f}MB"
            )


if __name__ == "__main__":
    main()
