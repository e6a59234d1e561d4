"""`pveplan store verify|gc`: check the local store's integrity, and reclaim space."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._state import store_location

if TYPE_CHECKING:
    from . import Console


def run_store(args: argparse.Namespace, console: Console) -> int:
    from store import open_store

    path = store_location(console)
    if not (path / "store.sqlite").exists():
        console.print(f"no store at {path} yet (nothing has been applied)")
        return 0
    with open_store(path) as store:
        if args.store_command == "verify":
            report = store.verify()
            for problem in report.damage:
                console.error(f"pveplan: {console.err_style.red('error')}: {problem}")
            console.print(
                f"{path}: {report.objects_checked} object(s) checked, "
                f"{len(report.damage)} damaged, {len(report.collectable)} collectable by gc"
            )
            return 1 if report.damage else 0
        report = store.gc(keep_runs=args.keep_runs)
        console.print(
            f"{path}: removed {report.objects_removed} object(s) ({report.bytes_freed:,} bytes), "
            f"{report.orphans_removed} orphan file(s), {report.tmp_removed} temporary file(s); "
            f"kept {report.objects_kept}"
        )
        return 0
