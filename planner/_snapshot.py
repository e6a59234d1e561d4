"""`snapshot_before`: which plans snapshot a VM before they change it, and the name.

A snapshot guards one change: a disk of a live VM growing (PVE's `resize`, which cannot be
undone: PVE has no shrink). The create step of a VM whose manifest says
`snapshot_before: [resize]` carries it in its args (`VmCreateArgs.snapshot`); the executor
takes the snapshot just before it sends a resize, and only then, since only the live VM
says whether a disk really grows. Here the planner says so in the diff, against the applied
plan, so a reviewer sees the snapshot before apply does.

The name is the create step's hash, so it is fixed by the plan (a saved plan names the same
snapshot at apply) and a re-run of an interrupted apply finds the snapshot it took
instead of taking a second one. A replacement is never snapshotted: PVE deletes a VM's
snapshots with the VM, so validation refuses `replace` (`dsl._validate`).
"""

from __future__ import annotations

from ._plan import Step
from ._stepargs import StepArgsError, VmCreateArgs, args_of

PREFIX = "pveplan-"


def snapshot_name(step_hash: str) -> str:
    """`pveplan-<first 8 of the step's hash>`: PVE's snapname pattern (a letter first,
    then letters, digits, `-` and `_`), and fixed by the plan."""
    return PREFIX + step_hash.rsplit(":", 1)[-1][:8]


def grown_disks(step: Step, before: Step | None) -> tuple[int, ...]:
    """The positions of the disks `step` grows against `before` (the applied plan's step),
    when the VM's args ask for a snapshot before a resize; empty otherwise."""
    if step.kind != "pve.vm.create" or before is None or before.kind != step.kind:
        return ()
    try:
        new, old = args_of(step, VmCreateArgs), args_of(before, VmCreateArgs)
    except StepArgsError:
        return ()
    if not isinstance(new, VmCreateArgs) or not isinstance(old, VmCreateArgs):
        return ()
    if not new.snapshot or "resize" not in new.snapshot.changes:
        return ()
    pairs = zip(new.disk_list(), old.disk_list(), strict=False)
    return tuple(n for n, (a, b) in enumerate(pairs) if a.bus == b.bus and a.size > b.size)


def snapshot_note(step: Step, before: Step | None) -> str | None:
    """What the diff says of an update that snapshots the VM first (None: it does not)."""
    if not grown_disks(step, before):
        return None
    args = args_of(step, VmCreateArgs)
    assert isinstance(args, VmCreateArgs) and args.snapshot
    after = "kept" if args.snapshot.keep else "removed after the run succeeded"
    return f"snapshot {snapshot_name(step.hash)} before the disk grows ({after})"
