"""Destroy plans: the reverse of what the store says a workspace applied.

Built from the applied plan (and the resources the store recorded, which know the vmids
that were allocated at apply time), never from the manifest: what exists is what was
applied. Each created node gets a destroy step; a nested PVE host first delegates the
destruction of its own subtree (deepest first), then is destroyed itself, so
destruction runs in the reverse order of creation. Images are left in place: other
workspaces may use them, and they are content-addressed, so keeping them is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from ._hashing import plan_hash, step_hash
from ._plan import Plan, PlanSettings, Step
from ._planfile import PlanFile
from ._stepargs import DelegateArgs, GuestDestroyArgs, StepArgs, to_wire

DESTROY_KINDS = {
    "pve.vm.create": "pve.vm.destroy",
    "pve.ct.create": "pve.ct.destroy",
    "pve.template.create": "pve.vm.destroy",
    "pve.clone.create": "pve.vm.destroy",
}
KIND_VERSION = 1


def destroy_plan(applied: Plan, resources: Mapping[str, Mapping[str, Any]] | None = None) -> Plan:
    """The plan that removes everything `applied` created (`resources`: address -> outputs)."""
    return _level(applied, resources or {})


def destroy_plan_file(
    plan_file: PlanFile,
    old: Plan | None,
    resources: Mapping[str, Mapping[str, Any]] | None = None,
) -> PlanFile:
    """The destroy plan for the workspace `plan_file` belongs to: what removes `old` (the
    plan applied there, with its live `resources`), or, with nothing applied, an empty
    destroy plan of the same manifest and host. The header keeps the workspace and drops
    the source map (no manifest line made a destroy step)."""
    if old is None:
        manifest, host = plan_file.plan.manifest, plan_file.plan.host
        empty = Plan(
            manifest=manifest,
            host=host,
            action="destroy",
            hash=plan_hash(manifest, host, "destroy", PlanSettings(), []),
        )
        return msgspec.structs.replace(plan_file, plan=empty, hash=empty.hash)
    plan = destroy_plan(old, resources)
    header = msgspec.structs.replace(plan_file.header, sources={})
    return PlanFile(hash=plan.hash, plan=plan, header=header)


def _level(applied: Plan, resources: Mapping[str, Mapping[str, Any]]) -> Plan:
    steps: list[Step] = []
    hashes: dict[str, str] = {}
    subplans: dict[str, Plan] = {}
    creates = [s for s in applied.steps if s.kind in DESTROY_KINDS]
    for create in reversed(creates):  # reverse creation order
        node = create.address.rsplit(".", 1)[0]
        deps: list[str] = []
        delegate = f"{node}.delegate"
        if delegate in applied.subplans:
            inner = _level(applied.subplans[delegate], resources)
            address = f"{node}.destroy_subtree"
            _add(
                steps,
                hashes,
                address,
                "subplan.delegate",
                create.host,  # a node placed with `host:` is torn down on that host
                DelegateArgs(host=inner.host, subplan=inner.hash, action="destroy"),
                [],
            )
            subplans[address] = inner
            deps.append(address)
        # What was made from this one (a template's clones) goes first: PVE refuses to
        # destroy a template that linked clones are children of.
        deps.extend(
            f"{other.address.rsplit('.', 1)[0]}.destroy"
            for other in creates
            if create.address in other.ref_addresses()
        )
        outputs = resources.get(create.address, {})
        # Read leniently, as before args were typed: an applied plan is history, and
        # destroying what it made must not depend on its create step's args fitting today.
        args = GuestDestroyArgs(
            name=create.args.get("name"),
            vmid=outputs.get("vm_id", create.args.get("vmid")),
        )
        _add(steps, hashes, f"{node}.destroy", DESTROY_KINDS[create.kind], create.host, args, deps)
    plan_steps = tuple(steps)
    return Plan(
        manifest=applied.manifest,
        host=applied.host,
        action="destroy",
        settings=applied.settings,
        steps=plan_steps,
        subplans=subplans,
        hash=plan_hash(
            applied.manifest,
            applied.host,
            "destroy",
            applied.settings,
            [(s.address, s.hash) for s in plan_steps],
        ),
    )


def _add(
    steps: list[Step],
    hashes: dict[str, str],
    address: str,
    kind: str,
    host: str,
    typed: StepArgs,
    deps: list[str],
) -> None:
    args = to_wire(kind, typed)
    digest = step_hash(
        kind=kind,
        kind_version=KIND_VERSION,
        host=host,
        args=args,
        secrets=(),
        ref_hashes={},
        dep_hashes=[hashes[d] for d in deps],
    )
    steps.append(
        Step(
            address=address,
            kind=kind,
            kind_version=KIND_VERSION,
            host=host,
            args=args,
            deps=tuple(deps),
            hash=digest,
        )
    )
    hashes[address] = digest
