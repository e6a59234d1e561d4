"""What reviewing a big plan costs: the markdown diff, signing, and apply's checks.

For 2,000 and 10,000 nodes (PVE hosts three levels deep, VMs at the leaves), builds the
plan before and after an edit resizing every eighth VM, then times: the diff, rendering
it to markdown parts (65,000 characters each), signing the plan file, verifying the
signature, and the moved-inputs check `apply FILE` makes (re-reading the manifest and
the site config). In-process, against the example site config.

    python benchmarks/plan_review.py [--repeat R]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.plan_scale import SITE, three_levels, yaml_manifest  # noqa: E402


def manifest(count: int, resized: set[int]) -> str:
    return yaml_manifest("review", three_levels(count), {i: 4096 for i in resized})


def best(repeat: int, work: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return min(times) * 1000, result


def measure(count: int, repeat: int, key: Any, folder: Path) -> str:
    """One row of figures for a `count`-node manifest."""
    from pveplan.dsl import load_manifest
    from pveplan.planner._diff import diff_plans, summarize
    from pveplan.planner._markdown import render_markdown
    from pveplan.planner._planning import build_plan_file
    from pveplan.planner._provenance import moved_inputs
    from pveplan.planner._signing import require_signature, sign
    from pveplan.planner.siteconfig import load_site_config, resolve_manifest

    path = folder / "review.yaml"
    plans = []
    for resized in (set(), set(range(100, count, 8))):
        path.write_text(manifest(count, resized))
        loaded = load_manifest(str(path))
        site = load_site_config(SITE)
        resolved = resolve_manifest(loaded, site, "sim")
        plans.append(build_plan_file(loaded, resolved, site, "sim", planned_against=None))
    before, after = plans
    diff_ms, changes = best(
        repeat, lambda: diff_plans(after.plan, before.plan, after.header.sources)
    )
    summary = summarize(changes)
    md_ms, parts = best(repeat, lambda: render_markdown(after, changes, summary))
    sign_ms, signed = best(repeat, lambda: sign(after, key))
    verify_ms, _ = best(repeat, lambda: require_signature(signed, [key.public_key()], "f"))
    moved_ms, moved = best(
        repeat, lambda: moved_inputs(signed, load_manifest(str(path)), load_site_config(SITE))
    )
    assert not moved, moved
    changed = sum(c.action != "unchanged" for c in changes)
    return (
        f"{count:>6,} {changed:>8,} {len(parts):>5} {diff_ms:>6.0f} {md_ms:>8.0f} "
        f"{sign_ms:>6.0f} {verify_ms:>6.0f} {moved_ms:>7.0f}"
    )


def main() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"best of {args.repeat}; python {sys.version.split()[0]}; times in ms\n")
    print(
        f"{'nodes':>6} {'changed':>8} {'parts':>5} {'diff':>6} {'markdown':>8} {'sign':>6} "
        f"{'verify':>6} {'moved?':>7}"
    )
    key = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory(prefix="pveplan-bench-") as tmp:
        for count in (2_000, 10_000):
            print(measure(count, args.repeat, key, Path(tmp)))


if __name__ == "__main__":
    main()
