"""`-target NODE`: a plan cut down to some nodes and what they need, as Terraform's -target.

A targeted apply plan keeps, for each target, its own steps (a PVE host's with its whole
subtree: its children are part of it), every step those depend on (the image and the
storage they use), and its ancestors: a VM inside a nested host needs that host, so the
host's steps stay, and its delegate step carries a subplan cut down the same way. A
targeted destroy plan keeps the target's destroy (a host's subtree first) and, for a
nested target, only its hosts' delegate steps that reach it: the hosts themselves stay.

Every other node is not considered: the executor neither runs nor destroys it, and the
workspace's applied state is left as it was (a targeted plan is a partial view; the next
full plan is the one to record). The targets are part of the plan (`Plan.targets`, in the
hash), at every level a cut subplan reaches, so a nested host's executor knows the same.
Pure: plans in, plan out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from pveplan.dsl import closest

from ._errors import PlanError
from ._hashing import plan_hash, rehash
from ._plan import Plan, Step


def node_names(plan: Plan) -> list[str]:
    """Every node of `plan`'s tree (all levels), in plan order."""
    names: dict[str, None] = {}
    for _, step in plan.walk():
        node = _node(step.address)
        if node is not None:
            names.setdefault(node, None)
    return list(names)


def check_targets(plan: Plan, targets: Sequence[str]) -> None:
    """PlanError naming the first target that is no node of `plan` (with a suggestion)."""
    known = node_names(plan)
    for target in targets:
        if target not in known:
            # The suggestion goes in the summary too: some callers show summaries only.
            guess = closest(target, sorted(known))
            hint = f"; did you mean {guess!r}?" if guess is not None else ""
            raise PlanError.at(
                None,
                f"-target {target!r}: the manifest has no node of that name{hint}",
                f"nodes that exist: {', '.join(sorted(known))}",
            )


def target_plan(plan: Plan, targets: Iterable[str], *, destroy: bool | None = None) -> Plan | None:
    """`plan` cut down to `targets` (unknown names are ignored here: `check_targets`
    refuses them for the new plan; an older plan may lack a new node). None when no
    target is in `plan`.

    `destroy` (default: whether `plan` is a destroy plan) cuts as a destroy does: the
    targets' own steps and the delegate steps that reach them, nothing they depend on and
    no host of theirs; an applied plan cut so is what a targeted destroy removes."""
    wanted = tuple(sorted(set(targets)))
    if not wanted:
        return plan
    if destroy is None:
        destroy = plan.action == "destroy"
    return _cut(plan, frozenset(wanted), wanted, destroy)


def _node(address: str) -> str | None:
    parts = address.split(".")
    return parts[1] if len(parts) == 3 and parts[0] == "node" else None


def _cut(
    level: Plan, targets: frozenset[str], recorded: tuple[str, ...], destroy: bool
) -> Plan | None:
    by_address = {s.address: s for s in level.steps}
    inner: dict[str, Plan] = {}
    for address, subplan in level.subplans.items():
        if _node(address) in targets:
            continue  # the target's whole subtree stays as it is
        cut = _cut(subplan, targets, recorded, destroy)
        if cut is not None:
            inner[address] = cut
    seeds: list[str] = [s.address for s in level.steps if _node(s.address) in targets]
    for address in inner:
        host = _node(address)
        if destroy:
            seeds.append(address)  # reach the target; the host itself stays
        else:
            seeds += [s.address for s in level.steps if _node(s.address) == host]
    if not seeds:
        return None
    keep = set(seeds) if destroy else _closure(seeds, by_address)
    steps = _rehash([s for s in level.steps if s.address in keep], inner)
    subplans = {a: inner.get(a, level.subplans[a]) for a in level.subplans if a in keep}
    return msgspec.structs.replace(
        level,
        steps=steps,
        subplans=subplans,
        targets=recorded,
        hash=plan_hash(
            level.manifest,
            level.host,
            level.action,
            level.settings,
            [(s.address, s.hash) for s in steps],
            targets=recorded,
        ),
    )


def _closure(seeds: Iterable[str], by_address: dict[str, Step]) -> set[str]:
    """`seeds` and every step they need, through deps and refs."""
    keep: set[str] = set()
    todo = list(seeds)
    while todo:
        address = todo.pop()
        if address in keep or address not in by_address:
            continue
        keep.add(address)
        step = by_address[address]
        todo += [*step.deps, *step.ref_addresses()]
    return keep


def _rehash(steps: list[Step], inner: dict[str, Plan]) -> tuple[Step, ...]:
    """The kept steps, a delegate whose subplan was cut pointing at the cut one, and every
    hash recomputed from there (a step's hash covers the hashes of what it needs)."""
    hashes: dict[str, str] = {}
    out: list[Step] = []
    for step in steps:
        if step.address in inner:
            step = msgspec.structs.replace(
                step, args={**step.args, "subplan": inner[step.address].hash}
            )
        digest = rehash(step, hashes)
        step = msgspec.structs.replace(step, hash=digest)
        hashes[step.address] = digest
        out.append(step)
    return tuple(out)
