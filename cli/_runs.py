"""`pveplan runs list | show ID`: the run records the store keeps (events and logs)."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING

from pveplan.planner import PlanError

from ._session import open_run_store

if TYPE_CHECKING:
    from . import Console


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def run_runs(args: argparse.Namespace, console: Console) -> int:
    with open_run_store(console) as store:
        if args.runs_command == "list":
            runs = store.runs(args.workspace, limit=args.limit)
            if args.json:
                console.print(json.dumps([_plain(r) for r in runs], indent=2, sort_keys=True))
                return 0
            if not runs:
                console.print("No runs recorded.")
            for run in runs:
                took = f"{run.finished - run.started:.1f}s" if run.finished else "-"
                console.print(
                    f"{run.id:>5}  {_when(run.started)}  {run.verb:<8} {run.status:<12} {took:>8}  {run.workspace}"
                )
            return 0
        record = next((r for r in store.runs(None, limit=1_000_000) if r.id == args.id), None)
        if record is None:
            raise PlanError.at(
                None, f"no run {args.id} in the store", "list them with `pveplan runs list`"
            )
        events = store.run_events(args.id)
    if args.json:
        console.print(
            json.dumps(
                {"run": _plain(record), "events": [_plain(e) for e in events]},
                indent=2,
                sort_keys=True,
            )
        )
        return 0
    console.print(
        f"run {record.id}: {record.verb} of {record.workspace}, {record.status} (plan {record.plan_hash})"
    )
    for event in events:
        took = f" ({event.duration:.1f}s)" if event.duration is not None else ""
        where = f"[{event.host}] " if event.host else ""
        message = f": {event.message}" if event.message else ""
        console.print(f"  {_when(event.at)} {where}{event.kind:<8} {event.address}{took}{message}")
    return 0


def _plain(record: object) -> object:
    import msgspec

    return msgspec.to_builtins(record)
