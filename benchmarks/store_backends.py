"""No-op apply of N flat VMs (default 1,000), local store against PostgreSQL, in one run.

A first apply builds the lab on the simulator with a local store (timed too); a no-op
re-apply on it is timed; then `pveplan store copy` moves that store into a throw-away
PostgreSQL database on loopback (tests/_postgres.py starts the server; or --dsn names
one), and the same no-op re-apply is timed against it, the simulator shared. Each no-op
is run `--repeat` times and the best is printed, since the first pays for cold caches.

    python benchmarks/store_backends.py [--nodes N] [--repeat R] [--dsn URL] [--workdir DIR]

Prints figures; asserts nothing (the issue's bar, PostgreSQL at most 2x local, is for a
reader to compare).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.apply_scale import SITE, manifest, pveplan  # noqa: E402


def best(env: dict[str, str], words: tuple[str, ...], repeat: int) -> tuple[float, str]:
    runs = [pveplan(env, *words) for _ in range(repeat)]
    return min(runs, key=lambda run: run[0])


def compare(
    nodes: int, repeat: int, dsn: str | None, password: str | None, workdir: str | None
) -> None:
    with contextlib.ExitStack() as stack:
        tmp = workdir or stack.enter_context(tempfile.TemporaryDirectory())
        site = Path(tmp) / "site"
        built = (Path(tmp) / "store" / "store.sqlite").exists()
        if not built:
            subprocess.run(["cp", "-r", str(SITE), str(site)], check=True)
            (site / "manifests" / "bench-flat.pvp").write_text(manifest(nodes))
        base = {
            **os.environ,
            "XDG_CONFIG_HOME": f"{tmp}/config",
            "PVEPLAN_SIM_DIR": f"{tmp}/sim",
            "PVEPLAN_CACHE_DIR": f"{tmp}/cache",
        }
        local = {**base, "PVEPLAN_STORE": f"{tmp}/store"}
        shared = {**base, "PVEPLAN_STORE": dsn or ""}
        if password:
            shared["PVEPLAN_STORE_PASSWORD"] = password
        words = ("apply", "-M", "bench-flat", "-H", "sim", "--site-config", str(site), "--yes")
        try:
            if built:
                print(f"reusing the lab applied in {tmp} (--workdir)")
            else:
                cold, line = pveplan(local, *words)
                print(f"cold apply of {nodes} VMs, local store: {cold:.1f} s  [{line}]")
            took, line = pveplan(shared, "store", "copy", f"{tmp}/store", dsn or "")
            print(f"store copy local -> PostgreSQL: {took:.2f} s  [{line}]")
            steps = nodes * 4 + 1
            fast, line = best(local, words, repeat)
            print(f"no-op apply ({steps} steps cached), local store:  {fast:.2f} s  [{line}]")
            slow, line = best(shared, words, repeat)
            print(f"no-op apply ({steps} steps cached), PostgreSQL:   {slow:.2f} s  [{line}]")
            print(f"PostgreSQL / local: {slow / fast:.2f}x")
        finally:
            if workdir is None:
                subprocess.run(
                    [sys.executable, "-m", "pveplan.cli", "sim", "down"],
                    env=local,
                    capture_output=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dsn", help="an empty PostgreSQL database (default: a throw-away one)")
    parser.add_argument(
        "--workdir",
        help="keep the lab (site, local store, simulator) in DIR, and reuse it when it is "
        "there: the no-op figures again without the cold apply (`pveplan sim down` after)",
    )
    args = parser.parse_args()
    if args.dsn:
        compare(args.nodes, args.repeat, args.dsn, None, args.workdir)
        return
    from tests._postgres import PostgresServer

    with PostgresServer() as server:
        database = server.create_database()
        print(f"PostgreSQL on 127.0.0.1:{database.port} (throw-away, fsync off)")
        compare(args.nodes, args.repeat, database.dsn, database.password, args.workdir)


if __name__ == "__main__":
    main()
