"""How long pveplan takes to read a big manifest, and how much memory.

Generates 10,000-node manifests in two shapes (flat: every node a root; tree: PVE hosts
nested four levels deep, ten children each, VMs at the leaves) and three forms (YAML v2,
the DSL written out node by node, and the DSL using `for` and functions), then times
parse + evaluate + validate (`dsl.load_manifest`) and, separately, resolving every
reference against the example site config. Each case runs in a fresh subprocess so
peak memory (max RSS) is its own.

    python benchmarks/manifest_scale.py [--nodes N] [--repeat R]

Prints figures; asserts nothing (speed is measured here, not in tests).
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


def tree_parents(count: int, fanout: int = 10) -> list[int | None]:
    """Parent index of each node: node 0 is the root, node i's parent is (i - 1) // fanout."""
    return [None] + [(i - 1) // fanout for i in range(1, count)]


def node_kinds(count: int) -> tuple[list[int | None], list[str]]:
    parents = tree_parents(count)
    has_children = {p for p in parents if p is not None}
    return parents, ["pve" if i in has_children else "vm" for i in range(count)]


def yaml_flat(n: int) -> str:
    lines = ["schema_version: 2", "name: flat", "pattern: flat", "nodes:"]
    for i in range(n):
        lines += [
            f"  - name: w-{i}",
            "    type: vm",
            "    preset: vm-small",
            "    image: debian-12",
            f"    vmid: {1000 + i}",
        ]
    return "\n".join(lines) + "\n"


def yaml_tree(n: int) -> str:
    parents, kinds = node_kinds(n)
    lines = ["schema_version: 2", "name: tree", "pattern: tiered", "nodes:"]
    for i in range(n):
        image = "pve-9" if kinds[i] == "pve" else "debian-12"
        lines += [
            f"  - name: n-{i}",
            f"    type: {kinds[i]}",
            "    preset: vm-small",
            f"    image: {image}",
            f"    vmid: {1000 + i}",
        ]
        if parents[i] is not None:
            lines.append(f"    parent: n-{parents[i]}")
    return "\n".join(lines) + "\n"


def dsl_flat_literal(n: int) -> str:
    body = "\n".join(
        f'  node "w-{i}" {{\n    type = "vm"\n    preset = "vm-small"\n    image = "debian-12"\n    vmid = {1000 + i}\n  }}'
        for i in range(n)
    )
    return f'manifest "flat" {{\n  pattern = "flat"\n{body}\n}}\n'


def dsl_tree_literal(n: int) -> str:
    """Nested node blocks, written out (parents in pre-order, children inside them)."""
    parents, kinds = node_kinds(n)
    children: dict[int, list[int]] = {}
    for i, p in enumerate(parents):
        if p is not None:
            children.setdefault(p, []).append(i)
    out: list[str] = []
    stack: list[tuple[int, int, bool]] = [(0, 1, False)]
    while stack:
        i, depth, closing = stack.pop()
        pad = "  " * depth
        if closing:
            out.append(f"{pad}}}")
            continue
        image = "pve-9" if kinds[i] == "pve" else "debian-12"
        out.append(f'{pad}node "n-{i}" {{')
        out.append(
            f'{pad}  type = "{kinds[i]}"  preset = "vm-small"  image = "{image}"  vmid = {1000 + i}'
        )
        stack.append((i, depth, True))
        for child in reversed(children.get(i, [])):
            stack.append((child, depth + 1, False))
    return 'manifest "tree" {\n  pattern = "tiered"\n' + "\n".join(out) + "\n}\n"


def dsl_flat_generated(n: int) -> str:
    return (
        'let vm = fn(i) => { type = "vm", preset = "vm-small", image = "debian-12", vmid = 1000 + i }\n'
        f'manifest "flat" {{\n  for i in range({n}) {{\n    node "w-${{i}}" {{ ...vm(i) }}\n  }}\n}}\n'
    )


def dsl_tree_generated(n: int) -> str:
    """Four levels of ten: 1 + 10 + 100 + 1000 PVE hosts, then VMs under the last level."""
    return f"""\
let host = fn(i) => {{ type = "pve", preset = "vm-small", image = "pve-9", vmid = 1000 + i }}
let vm = fn(i) => {{ type = "vm", preset = "vm-small", image = "debian-12", vmid = 1000 + i }}
manifest "tree" {{
  pattern = "tiered"
  node "n-0" {{
    ...host(0)
    for a in range(1, 11) {{
      node "n-${{a}}" {{
        ...host(a)
        for b in range(a * 10 + 1, a * 10 + 11) {{
          node "n-${{b}}" {{
            ...host(b)
            for c in range(b * 10 + 1, b * 10 + 11) {{
              node "n-${{c}}" {{
                ...(if c * 10 + 1 < {n} then host(c) else vm(c))
                for d in range(c * 10 + 1, min(c * 10 + 11, {n})) {{
                  node "n-${{d}}" {{ ...vm(d) }}
                }}
              }}
            }}
          }}
        }}
      }}
    }}
  }}
}}
"""


CASES = {
    "yaml flat": ("flat.yaml", yaml_flat),
    "yaml tree": ("tree.yaml", yaml_tree),
    "dsl flat, written out": ("flat-literal.pvp", dsl_flat_literal),
    "dsl tree, written out": ("tree-literal.pvp", dsl_tree_literal),
    "dsl flat, for + fn": ("flat-generated.pvp", dsl_flat_generated),
    "dsl tree, for + fn": ("tree-generated.pvp", dsl_tree_generated),
}

CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from pveplan.dsl import load_manifest
from pveplan.dsl._parser import parse
from pveplan.planner.siteconfig import load_site_config, resolve_manifest
path, repeat, site = sys.argv[2], int(sys.argv[3]), sys.argv[4]
parse('manifest "warm" {}', "warm.pvp")   # build the parser once, as a CLI run would
best = resolve_best = float("inf")
for _ in range(repeat):
    start = time.perf_counter()
    loaded = load_manifest(path)
    best = min(best, time.perf_counter() - start)
    start = time.perf_counter()
    resolved = resolve_manifest(loaded, load_site_config(__import__("pathlib").Path(site)))
    resolve_best = min(resolve_best, time.perf_counter() - start)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"nodes": len(loaded.manifest.nodes), "load": best, "resolve": resolve_best, "rss_mb": rss}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pveplan-bench-") as tmp:
        baseline = json.loads(
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import json, resource, dsl, planner.siteconfig, lark, yaml, msgspec;"
                    "print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))",
                ],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            ).stdout
        )
        print(
            f"{args.nodes:,} nodes, best of {args.repeat}; python {sys.version.split()[0]}; "
            f"interpreter + imports alone: {baseline:.0f} MB max RSS\n"
        )
        print(
            f"{'case':<24} {'file':>9} {'nodes':>7} {'parse+eval+validate':>20} {'resolve refs':>13} {'max RSS':>9}"
        )
        for label, (name, make) in CASES.items():
            path = Path(tmp) / name
            path.write_text(make(args.nodes))
            result = subprocess.run(
                [sys.executable, "-c", CHILD, str(ROOT), str(path), str(args.repeat), str(SITE)],
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                print(f"{label:<24} FAILED: {result.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(result.stdout)
            size = path.stat().st_size / 1024
            print(
                f"{label:<24} {size:>7.0f}KB {r['nodes']:>7,} {r['load'] * 1000:>18.0f}ms "
                f"{r['resolve'] * 1000:>11.0f}ms {r['rss_mb']:>7.0f}MB"
            )


if __name__ == "__main__":
    main()
