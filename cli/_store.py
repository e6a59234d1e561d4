"""`pveplan store verify|repair|gc|unlock|copy`: check the store's integrity, drop damaged
rows, reclaim space, break a dead holder's workspace lock, and move a store's records."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from ._state import store_exists, store_location

if TYPE_CHECKING:
    from pveplan.store import Store, StoreAddress

    from . import Console


def run_store(args: argparse.Namespace, console: Console) -> int:
    from pveplan.store import open_store

    if args.store_command == "copy":
        return _copy(args, console)
    where = store_location(console)
    if not store_exists(where):
        console.print(f"no store at {where.display} yet (nothing has been applied)")
        return 0
    with open_store(where) as store:
        if args.store_command == "verify":
            report = store.verify()
            for problem in report.damage:
                console.error(f"pveplan: {console.err_style.red('error')}: {problem}")
            console.print(
                f"{store.location}: {report.objects_checked} object(s) checked, "
                f"{len(report.damage)} damaged, {len(report.collectable)} collectable by gc"
            )
            return 1 if report.damage else 0
        if args.store_command == "repair":
            return _repair(args, console, store)
        if args.store_command == "unlock":
            return _unlock(args, console, store)
        report = store.gc(keep_runs=args.keep_runs)
        console.print(
            f"{store.location}: removed {report.objects_removed} object(s) "
            f"({report.bytes_freed:,} bytes), {report.orphans_removed} orphan file(s), "
            f"{report.tmp_removed} temporary file(s); kept {report.objects_kept}"
        )
        return 0


def _repair(args: argparse.Namespace, console: Console, store: Store) -> int:
    """Drop the rows whose checksums fail, after consent: what they held is lost for good
    (the next `apply --refresh` re-adopts what exists; `destroy --discover` finds VMs)."""
    from ._consent import confirm

    damage = store.verify().damage
    rows = [problem for problem in damage if "row checksum mismatch" in problem]
    if not rows:
        console.print(f"{store.location}: no damaged rows to drop")
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


def _unlock(args: argparse.Namespace, console: Console, store: Store) -> int:
    """Break a workspace lock after consent, and log it as a run of its own (verb
    "unlock"), so `pveplan runs list` shows who broke whose lock, and when."""
    from pveplan.store import RunEvent

    from ._consent import confirm

    workspace = args.workspace
    question = (
        f"Break the lock on {workspace} in {store.location}? Only do this when its holder "
        "is gone: a run still going would lose its exclusive hold."
    )
    if not confirm(args, console, question):
        console.print("Unlock cancelled.")
        return 1
    holder = store.break_lock(workspace)
    if holder is None:
        console.print(f"{workspace} is not locked")
        return 0
    message = f"broke the lock held by {holder.describe()}"
    run_id = store.start_run(workspace, holder.plan, "unlock")
    store.add_event(
        run_id, RunEvent(address=workspace, kind="log", message=message, at=time.time())
    )
    store.finish_run(run_id, "ok")
    console.print(f"{workspace}: {message} (logged as run {run_id})")
    return 0


def _copy(args: argparse.Namespace, console: Console) -> int:
    """Copy every record of SRC into the empty DST (see `store.copy_store`)."""
    from pveplan.store import copy_store, is_store_url, locate_store, open_store

    def address(text: str) -> StoreAddress:
        where = text if is_store_url(text) else str(console.cwd / text)
        return locate_store({**console.env, "PVEPLAN_STORE": where})

    source, destination = address(args.source), address(args.destination)
    if not store_exists(source):
        console.error(f"error: no store at {source.display}")
        return 1
    with open_store(source) as src, open_store(destination) as dst:
        report = copy_store(src, dst)
    console.print(
        f"copied {report.objects} object(s) ({report.bytes:,} bytes, each re-hashed) and "
        f"{sum(report.rows.values())} row(s) from {source.display} to {destination.display}"
    )
    for workspace in report.workspaces:
        console.print(f"  {workspace}")
    return 0
