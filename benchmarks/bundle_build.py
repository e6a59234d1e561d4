"""How long building the remote-executor bundle takes, cold and cached, and how big it is.

(a) cold build: a fresh cache dir, so everything is read, tarred and gzip'd;
(b) cached lookup in the same process: the fingerprint (stat of every input) finds the archive;
(c) cached lookup from a new process (the usual case: one `pveplan apply` per run), timed
    inside that process around `build_bundle` only, not its interpreter start-up.

    python benchmarks/bundle_build.py [--repeat N]

Prints figures; asserts nothing. Uses a temporary cache dir.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pveplan.executor.remote._bundle import _fingerprint, _inputs, _interpreter, build_bundle

CHILD = """
import sys, time
from pathlib import Path
from pveplan.executor.remote._bundle import build_bundle
start = time.perf_counter()
build_bundle(Path(sys.argv[1]))
print(time.perf_counter() - start)
"""


def timed(function: object, *args: object) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args)  # type: ignore[operator]
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="cached lookups to time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        cold, bundle = timed(build_bundle, cache)
        warm = [timed(build_bundle, cache)[0] for _ in range(args.repeat)]
        child = [
            float(subprocess.check_output([sys.executable, "-c", CHILD, str(cache)], text=True))
            for _ in range(args.repeat)
        ]
        collect, inputs = timed(_inputs)
        stat, _ = timed(_fingerprint, inputs, *_interpreter())
    print(f"archive          {bundle.size / 1e6:.2f} MB, {len(inputs)} files in lib/")  # type: ignore[attr-defined]
    print(f"cold build       {cold:.3f} s")
    print(f"cached, same process  median {statistics.median(warm) * 1000:.1f} ms")
    print(f"cached, new process   median {statistics.median(child) * 1000:.1f} ms")
    print(
        f"  of which: listing inputs {collect * 1000:.1f} ms, stat fingerprint {stat * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
