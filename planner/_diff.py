"""What applying a plan would change, against the plan last applied to the workspace, and why.

Steps are matched by address, level by level (subplans by their delegate's address). A
step whose hash is unchanged is cached: its recorded result will be reused. A changed one
is an update, or a replace when an arg that cannot change in place changed (a VM's vmid,
image or storage; a shrinking disk: the rules are the args' own, `_stepargs.RULES`). A
step only in the old plan is destroyed.

Beyond Terraform, each change says why: which arg changed (old -> new, and the manifest
line it comes from), that a secret changed (never its value: "(sensitive)"), or which
upstream step's change reached it. Output order is plan order, so it is stable.

A change whose every reason is an upstream change ("input X changed", "subplan changed")
is a *dependent*: it carries no cause of its own. It names, in `caused_by`, the step that
carries the real cause (followed transitively, across levels), so a reader can show one
change per cause and sum up the rest, while machines still get every step.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from ._hashing import canonical
from ._itemchanges import item_changes
from ._plan import Frozen, Plan, Step
from ._snapshot import snapshot_note
from ._stepargs import STEP_ARGS, StepArgs, StepArgsError, change_of, decode_args

Action = Literal["create", "update", "replace", "destroy", "unchanged"]


class Reason(Frozen, kw_only=True):
    text: str
    source: str | None = None

    @property
    def subject(self) -> str | None:
        """What this reason says changed, for summaries: an arg name (`memory`), `secret
        <name>`, `kind` or `version`; None when it only passes an upstream change on. Read
        from the texts `_compare` writes, so the two stay side by side in this module."""
        text = self.text
        if text.startswith(("input ", "subplan changed", "inputs changed")):
            return None
        if text.startswith("secret "):
            return "secret " + text.split(" ")[1]
        if text.startswith("kind "):
            return "kind"
        if ": " in text:
            return text.split(": ", 1)[0]
        return "version" if " version " in text else None


class Change(Frozen, kw_only=True):
    path: tuple[str, ...] = ()  # delegate addresses leading to the step's plan
    host: str
    address: str
    kind: str
    action: Action
    reasons: tuple[Reason, ...] = ()
    note: str | None = None
    """What the step does beyond its kind, where a reviewer needs it (a pull node's fetch)."""
    caused_by: str | None = None
    """For a dependent (every reason is an upstream change): the address of the step that
    carries the real cause; None for a step with a cause of its own, or no change."""
    caused_by_path: tuple[str, ...] = ()
    """The `path` of the `caused_by` step (as `path` is this change's): a delegate's cause
    lies in its subplan, and `image.*` addresses repeat per level."""

    @property
    def key(self) -> tuple[tuple[str, ...], str]:
        """Where the step sits in the whole tree: unique, unlike the address alone."""
        return (self.path, self.address)

    @property
    def cause(self) -> tuple[tuple[str, ...], str] | None:
        """The `key` of the step carrying this dependent's cause (None: not a dependent)."""
        return (self.caused_by_path, self.caused_by) if self.caused_by is not None else None


class Summary(Frozen, kw_only=True):
    add: int = 0
    change: int = 0
    replace: int = 0
    destroy: int = 0
    unchanged: int = 0
    drift: int = 0
    """Live differences the probe found (`Plan.drift`): changes too, for `--detailed-exitcode`."""

    @property
    def changes(self) -> bool:
        return bool(self.add or self.change or self.replace or self.destroy or self.drift)


def diff_plans(
    new: Plan, old: Plan | None, sources: dict[str, dict[str, str]] | None = None
) -> list[Change]:
    """Every step's action, new plan order first, then what only the old plan had."""
    out: list[Change] = []
    _diff_level(new, old, (), sources or {}, out)
    return out


def plan_changes(
    plan: Plan, old: Plan | None, sources: dict[str, dict[str, str]] | None = None
) -> list[Change]:
    """What applying `plan` changes: for a destroy plan, every step of the applied plan
    destroyed (its own steps are how, not what); otherwise the diff against `old`."""
    if plan.action == "destroy":
        return diff_plans(Plan(manifest=plan.manifest, host=plan.host, hash=""), old)
    return diff_plans(plan, old, sources)


def summarize(changes: list[Change]) -> Summary:
    """Counts by action, in steps, every level included: a subplan's steps count like the
    top level's (the unit apply's counts use too), the delegates carrying them as well."""
    counts = {"create": 0, "update": 0, "replace": 0, "destroy": 0, "unchanged": 0}
    for change in changes:
        counts[change.action] += 1
    return Summary(
        add=counts["create"],
        change=counts["update"],
        replace=counts["replace"],
        destroy=counts["destroy"],
        unchanged=counts["unchanged"],
    )


def _diff_level(
    new: Plan,
    old: Plan | None,
    path: tuple[str, ...],
    sources: dict[str, dict[str, str]],
    out: list[Change],
) -> None:
    old_steps = {s.address: s for s in old.steps} if old is not None else {}
    actions: dict[str, Action] = {}
    # address -> key of the step carrying its cause (itself, unless a dependent)
    roots: dict[str, tuple[tuple[str, ...], str]] = {}
    for step in new.steps:
        before = old_steps.get(step.address)
        compared = _compare(step, before, actions, sources)
        actions[step.address] = compared.action
        nested: list[Change] = []
        if step.kind == "subplan.delegate":
            old_sub = old.subplans.get(step.address) if old is not None else None
            _diff_level(new.subplans[step.address], old_sub, (*path, step.address), sources, nested)
        cause = None
        if compared.derived and compared.upstreams:
            cause = roots[compared.upstreams[0]]
        elif compared.derived:  # only "subplan changed": the first change below (None: settings)
            cause = _first_cause(nested)
        if compared.action != "unchanged":
            roots[step.address] = cause or (path, step.address)
        out.append(
            Change(
                path=path,
                host=step.host,  # its level's host, or the one its node names (`host:`)
                address=step.address,
                kind=step.kind,
                action=compared.action,
                reasons=compared.reasons,
                note=_note(step, compared.action) or snapshot_note(step, before),
                caused_by=cause[1] if cause else None,
                caused_by_path=cause[0] if cause else (),
            )
        )
        out.extend(nested)
    if old is None:
        return
    present = {s.address for s in new.steps}
    for step in old.steps:
        if step.address not in present:
            out.append(
                Change(
                    path=path,
                    host=step.host,
                    address=step.address,
                    kind=step.kind,
                    action="destroy",
                )
            )
            if step.kind == "subplan.delegate" and step.address in old.subplans:
                _destroy_all(old.subplans[step.address], (*path, step.address), out)


def _first_cause(changes: list[Change]) -> tuple[tuple[str, ...], str] | None:
    """The cause of the first change in `changes` (plan order), if any step changed."""
    for change in changes:
        if change.action != "unchanged":
            return change.cause or change.key
    return None


TEMPLATE_REPLACED = (
    "a template with linked clones cannot be destroyed (PVE refuses): its linked clones "
    "are destroyed first, then cloned again from the new template"
)


def _note(step: Step, action: Action = "unchanged") -> str | None:
    if step.kind == "pve.template.create" and action == "replace":
        return TEMPLATE_REPLACED
    if step.kind != "config.await_report":
        return None
    args = step.args
    spec = args.get("spec") or {}
    packages = len(spec.get("packages") or [])
    users = ", ".join(u["name"] for u in spec.get("users") or []) or "none"
    return (
        f"pull: {args['identity']} fetches spec {args['spec_name']} ({args['spec_hash'][:12]}) "
        f"from the spec server with auth {args['auth']}: {packages} packages, users {users}"
    )


def _destroy_all(plan: Plan, path: tuple[str, ...], out: list[Change]) -> None:
    for step in plan.steps:
        out.append(
            Change(
                path=path, host=step.host, address=step.address, kind=step.kind, action="destroy"
            )
        )
        if step.kind == "subplan.delegate" and step.address in plan.subplans:
            _destroy_all(plan.subplans[step.address], (*path, step.address), out)


class _Compared(NamedTuple):
    action: Action
    reasons: tuple[Reason, ...] = ()
    upstreams: tuple[str, ...] = ()
    """Changed inputs (same level), in the order their reasons are listed."""
    derived: bool = False
    """Every reason is an upstream change (input or subplan): the step is a dependent."""


def _compare(
    step: Step, before: Step | None, actions: dict[str, Action], sources: dict[str, dict[str, str]]
) -> _Compared:
    if before is None:
        return _Compared("create")
    if before.hash == step.hash:
        return _Compared("unchanged")
    if before.kind != step.kind:
        return _Compared("replace", (Reason(text=f"kind {before.kind} -> {step.kind}"),))
    reasons: list[Reason] = []
    subplan = False
    replace = False
    where = sources.get(step.address, {})
    typed = STEP_ARGS.get(step.kind, StepArgs)
    # Device lists (a VM's disks, NICs) are compared item by item once either plan lists
    # them: their shorthands (`disk`, `bridge`) are then the first item's, not a change
    # of their own.
    listed = {field for field in typed.ITEMS if field in before.args or field in step.args}
    skip = {short for short, field in typed.SHORTHANDS.items() if field in listed}
    for key in sorted(set(before.args) | set(step.args)):
        old_value, new_value = before.args.get(key), step.args.get(key)
        if key in skip or canonical(old_value) == canonical(new_value):  # as hashed
            continue
        if key in listed:
            for item in item_changes(
                typed.ITEMS[key],
                key,
                typed.items_of(key, before.args),
                typed.items_of(key, step.args),
            ):
                forces = item.change == "replace"
                replace = replace or forces
                suffix = f" (forces replacement: {item.reason})" if forces else " (in place)"
                if item.change == "keep":
                    suffix = f" (kept: {item.reason}; {KEEP_HINT})"
                if item.old is None:
                    what = f"added {_show(item.new)}"
                elif item.new is None:
                    what = "removed" + (
                        ", detached: PVE keeps it as unusedN" if key == "disks" else ""
                    )
                else:
                    what = f"{_show(item.old)} -> {_show(item.new)}"
                reasons.append(
                    Reason(
                        text=f"{item.label}: {what}{suffix}",
                        source=where.get(item.label)
                        or where.get(item.label.split(".")[0])
                        or where.get(key),
                    )
                )
            continue
        if key == "subplan":
            reasons.append(Reason(text="subplan changed (see the steps nested below)"))
            subplan = True
            continue
        change = change_of(typed, key, old_value, new_value)
        forces = change == "replace"
        replace = replace or forces
        suffix = " (forces replacement)" if forces else ""
        if change == "keep":
            suffix = f" (kept: PVE cannot shrink a disk; {KEEP_HINT})"
        reasons.append(
            Reason(
                text=f"{key}: {_show(old_value)} -> {_show(new_value)}{suffix}",
                source=where.get(key),
            )
        )
    if before.kind_version != step.kind_version:
        reasons.append(
            Reason(text=f"{step.kind} version {before.kind_version} -> {step.kind_version}")
        )
    old_secrets = {s.name: s.digest for s in before.secrets}
    new_secrets = {s.name: s.digest for s in step.secrets}
    for name in sorted(set(old_secrets) | set(new_secrets)):
        if name not in old_secrets:
            reasons.append(Reason(text=f"secret {name} added (sensitive)"))
        elif name not in new_secrets:
            reasons.append(Reason(text=f"secret {name} removed (sensitive)"))
        elif old_secrets[name] != new_secrets[name]:
            reasons.append(Reason(text=f"secret {name} changed (sensitive)"))
    own = len(reasons) - int(subplan)
    upstreams: list[str] = []
    for upstream in (*step.ref_addresses(), *step.deps):
        upstream_action = actions.get(upstream)
        if upstream_action in ("create", "update", "replace") and upstream not in upstreams:
            verb = {"create": "is new", "update": "changed", "replace": "is replaced"}[
                upstream_action
            ]
            reasons.append(Reason(text=f"input {upstream} {verb}"))
            upstreams.append(upstream)
    for name in _replaced_with(step):
        upstream = step.refs[name].split("#", 1)[0]
        if actions.get(upstream) == "replace" and not replace:
            replace = True
            reasons.append(
                Reason(text=f"{name}: {upstream} is replaced (forces replacement)", source=None)
            )
            own += 1
    if not reasons:
        reasons.append(Reason(text="inputs changed"))
        own = 1
    return _Compared(
        "replace" if replace else "update",
        tuple(reasons),
        tuple(upstreams),
        derived=not own,
    )


KEEP_HINT = "the guest keeps its larger disk: destroy it and apply to recreate it smaller"
"""What a shrunk disk means (`change_of`'s `keep`): apply keeps the disk, and says so."""


def _replaced_with(step: Step) -> frozenset[str]:
    """The refs of `step` whose replacement replaces it too (a linked clone's template)."""
    if step.kind not in STEP_ARGS:
        return frozenset()
    try:
        forced = decode_args(step.kind, step.args).replaced_with()
    except StepArgsError:
        return frozenset()
    return frozenset(name for name in forced if name in step.refs)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, dict)):
        import json

        text = json.dumps(value, sort_keys=True, separators=(", ", ": "))
        return text if len(text) <= 60 else text[:57] + "..."
    return str(value)
