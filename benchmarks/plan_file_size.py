"""Plan file size and encoding cost: format /2 (templates) against the /1 layout.

Compiles a flat YAML manifest of N VMs (the shape of `plan_scale.py`) once, in-process,
against the example site config, then encodes its plan file in the /1 layout (every step
in full, one key per line) and as /2, and reads each back (`decode_plan_file`: parse,
join, every hash recomputed and checked). Prints bytes per node and the CPU time of each
(best of --repeat; CPU time, as 7 helpers share this machine's 2 cores).

    python benchmarks/plan_file_size.py [--nodes 1000] [--repeat 3] [--out DIR]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "examples" / "site-config"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgspec  # noqa: E402
from plan_scale import flat, yaml_manifest  # noqa: E402

from pveplan.dsl import load_manifest  # noqa: E402
from pveplan.planner._planfile import FORMAT_1, decode_plan_file, encode_plan_file  # noqa: E402
from pveplan.planner._planning import build_plan_file  # noqa: E402
from pveplan.planner.siteconfig import load_site_config, resolve_manifest  # noqa: E402


def best(repeat: int, work: Callable[[], object]) -> tuple[float, object]:
    """The least CPU time of `repeat` runs of `work`, and its result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.process_time()
        result = work()
        times.append(time.process_time() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write both files here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pveplan-bench-") as tmp:
        path = Path(tmp) / "flat.yaml"
        path.write_text(yaml_manifest("bench", flat(args.nodes)))
        loaded = load_manifest(str(path))
        site = load_site_config(SITE)
        resolved = resolve_manifest(loaded, site, "sim")
        plan_file = build_plan_file(loaded, resolved, site, "sim", planned_against=None)
    old = msgspec.structs.replace(plan_file, format=FORMAT_1)
    encoder = msgspec.json.Encoder(order="sorted")

    def encode_v1() -> bytes:
        return msgspec.json.format(encoder.encode(old), indent=2) + b"\n"

    steps = len(plan_file.plan.walk())
    print(
        f"{args.nodes:,} flat VMs, {steps:,} steps; python {sys.version.split()[0]}; "
        f"CPU seconds, best of {args.repeat}\n"
    )
    print(f"{'format':<8} {'bytes':>12} {'B/node':>7} {'lines':>9} {'encode':>7} {'decode':>7}")
    for name, encode in (("/1", encode_v1), ("/2", lambda: encode_plan_file(plan_file))):
        encode_time, data = best(args.repeat, encode)
        assert isinstance(data, bytes)
        decode_time, back = best(args.repeat, lambda d=data: decode_plan_file(d, "bench.json"))
        assert back.plan == plan_file.plan  # type: ignore[attr-defined]
        print(
            f"{name:<8} {len(data):>12,} {len(data) / args.nodes:>7,.0f} {data.count(10):>9,} "
            f"{encode_time:>7.3f} {decode_time:>7.3f}"
        )
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"flat-{args.nodes}-v{name[1:]}.json").write_bytes(data)


if __name__ == "__main__":
    main()
