"""`snapshot_before: [resize]`: a snapshot of a live VM just before a disk of it grows.

A grow cannot be undone (PVE has no shrink), so a VM whose args ask for it
(`VmCreateArgs.snapshot`) is snapshotted before the create step's in-place changes run,
and only when they include a resize: only the live VM says whether a disk really grows.
The name comes from the step's hash (`planner.snapshot_name`), the one the plan's diff
showed, so a re-run of an interrupted apply finds the snapshot it took instead of taking
another. Unless `keep`, the run removes it once every step succeeded (`_snapshots`,
called by `run_workspace`); after a failed run it stays, for `qm rollback`.
"""

from __future__ import annotations

from collections.abc import Sequence

from pveplan.planner import VmCreateArgs, snapshot_name

from .._context import StepContext
from ..pve import PveDriver, PveRequest, requests


def grows_a_disk(changes: Sequence[PveRequest]) -> bool:
    return any(r.method == "PUT" and r.path.endswith("/resize") for r in changes)


async def snapshot_before(
    ctx: StepContext, pve: PveDriver, vmid: int, args: VmCreateArgs, changes: Sequence[PveRequest]
) -> None:
    """Snapshot VM `vmid` if `args` ask for it and `changes` grow a disk (else nothing)."""
    policy = args.snapshot
    if not policy or "resize" not in policy.changes or not grows_a_disk(changes):
        return
    name = snapshot_name(ctx.step.hash)
    listed = await pve.run(requests.snapshots(pve.node, vmid))
    if any(entry.get("name") == name for entry in listed or ()):
        ctx.log(f"snapshot {name} of VM {vmid} exists (an earlier run took it): keeping it")
    else:
        ctx.log(f"snapshot {name} of VM {vmid} before its disk grows")
        description = f"pveplan: before a disk of {args.name} grows ({ctx.step.address})"
        await pve.run(requests.create_snapshot(pve.node, vmid, name, description))
    if not policy.keep:
        ctx.services.snapshots.append((ctx.step.address, ctx.host, vmid, name))
