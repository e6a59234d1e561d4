"""`pveplan store verify|repair|gc`: check the local store's integrity, drop damaged rows,
and reclaim space."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._state import store_location

if TYPE_CHECKING:
    from pveplan.store import Store

    from . import Console


def run_store(args: argparse.Namespace, console: Console) -> int:
    from pveplan.store import open_store

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
        if args.store_command == "repair":
            return _repair(args, console, store)
        report = store.gc(keep_runs=args.keep_runs)
        console.print(
            f"{path}: removed {report.objects_removed} object(s) ({report.bytes_freed:,} bytes), "
            f"{report.orphans_removed} orphan file(s), {report.tmp_removed} temporary file(s); "
            f"kept {report.objects_kept}"
        )
        return 0


def _repair(args: argparse.Namespace, console: Console, store: Store) -> int:
    """Drop the rows whose checksums fail, after consent: what they held is lost for good
    (the next `apply --refresh` re-adopts what exists; `destroy --discover` finds VMs)."""
    from ._consent import confirm

    damage = store.verify().damage
    rows = [problem for problem in damage if "row checksum mismatch" in problem]
    if not rows:
        console.print(f"{store.path}: no damaged rows to drop")
        return 1 if damage else 0
    for problem in rows:
        console.print(f"  {problem}")
    if not confirm(args, console, f"Drop these {len(rows)} row(s)?"):
        console.print("Repair cancelled.")
        return 1
    for dropped in store.repair():
        console.print(f"dropped {dropped}")
    left = store.verify().damage
    for problem in left:
        console.error(f"pveplan: {console.err_style.red('error')}: {problem}")
    return 1 if left else 0
