"""Plans and plan diffs for people (text) and for machines (JSON-ready dicts).

Text is Terraform-like: first one line per node that changes (`~ vm db (memory, disk)`),
then the steps that carry a cause, `+` create, `~` update, `-/+` replace, `-` destroy,
nested subplans indented under their host (`root-pve ›`), each followed by why. A step that
changed only because an upstream one did (a dependent: "input X changed", a delegate whose
subplan changed) is not a line of its own but counted under its cause, "and 4 dependent
steps", listed there only when verbose: one edit reads as one change, and no step is
printed twice. Unchanged steps are counted, not listed. Secrets appear as `(sensitive)`
only: no value reaches a plan, so none can reach this output.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import msgspec

from ._diff import Change, Summary
from ._drift import drift_line
from ._nodesummary import NodeChange, host_of, node_changes
from ._plan import Drift, Plan, Step
from ._planfile import PlanFile

SYMBOLS = {"create": "+", "update": "~", "replace": "-/+", "destroy": "-", "unchanged": " "}


class Styler(Protocol):
    def green(self, text: str) -> str: ...
    def yellow(self, text: str) -> str: ...
    def red(self, text: str) -> str: ...
    def bold(self, text: str) -> str: ...
    def dim(self, text: str) -> str: ...


def _colour(action: str, text: str, style: Styler) -> str:
    if action == "create":
        return style.green(text)
    if action in ("update",):
        return style.yellow(text)
    if action in ("replace", "destroy"):
        return style.red(text)
    return text


def summary_line(summary: Summary) -> str:
    if not summary.changes:
        return "No changes."
    drift = f" {summary.drift} drifted." if summary.drift else ""
    return (
        f"Plan: {summary.add} to add, {summary.change} to change, "
        f"{summary.replace} to replace, {summary.destroy} to destroy.{drift}"
    )


def render_changes(
    changes: Iterable[Change],
    summary: Summary,
    style: Styler,
    *,
    verbose: bool = False,
    drift: Iterable[Drift] = (),
) -> str:
    """The diff as text: the drift the probe found (live vs manifest, with its cause),
    the nodes that change, then the steps that carry a cause with their reasons and a
    count (a list, if `verbose`) of their dependents, then the counts."""
    changes = list(changes)
    lines: list[str] = []
    drift = list(drift)
    if drift:
        lines.append(style.bold("Drift (the live hosts moved since the last apply):"))
        shown_hosts: set[tuple[str, ...]] = set()
        for item in sorted(drift, key=lambda d: d.path):  # stable: each level's in its order
            for depth in range(1, len(item.path) + 1):  # nested drift: under its host
                if item.path[:depth] not in shown_hosts:
                    shown_hosts.add(item.path[:depth])
                    lines.append("  " * depth + style.bold(f"{item.path[depth - 1]} ›"))
            line = drift_line(item)
            colour = style.red if item.fix == "report" else style.yellow
            pad = "  " * (len(item.path) + 1)
            lines.append(pad + (style.green(line) if item.fix == "recreate" else colour(line)))
        lines.append("")
    nodes = node_changes(changes)
    if nodes:
        # Top-level nodes on several hosts (`host:`): each says which one it is on.
        spread = len({node.host for node in nodes if not node.path}) > 1
        lines.append(style.bold("Nodes:"))
        lines.extend("  " + node_line(node, style, placed=spread) for node in nodes)
        lines.append("")
    shown = [c for c in changes if c.action != "unchanged"]
    causes = {c.key for c in shown if c.cause is None}
    dependents: dict[tuple[tuple[str, ...], str], list[Change]] = {}
    for change in shown:
        if change.cause is not None and change.cause in causes:
            dependents.setdefault(change.cause, []).append(change)
    if shown:
        lines.append(style.bold("Steps:"))
    shown_paths: set[tuple[str, ...]] = set()
    for change in shown:
        if change.cause in causes:
            continue  # counted under its cause
        for depth in range(1, len(change.path) + 1):
            prefix = change.path[:depth]
            if prefix not in shown_paths:
                shown_paths.add(prefix)
                lines.append("  " * depth + style.bold(f"{host_of(prefix[-1])} ›"))
        pad = "  " * (len(change.path) + 1)
        lines.append(pad + _step_head(change, style))
        if change.note and change.action != "destroy":
            lines.append(f"{pad}      {change.note}")
        for reason in change.reasons:
            where = f"  {style.dim('(' + reason.source + ')')}" if reason.source else ""
            lines.append(f"{pad}      {reason.text}{where}")
        below = dependents.get(change.key, [])
        if below:
            word = "step" if len(below) == 1 else "steps"
            lines.append(f"{pad}      and {len(below)} dependent {word}{':' if verbose else ''}")
        for dependent in below if verbose else ():
            where = "" if dependent.path == change.path else f"  (on {dependent.host})"
            lines.append(f"{pad}        {_step_head(dependent, style)}{where}")
    if summary.unchanged:
        if not lines or lines[-1]:  # the drift block already ends with one
            lines.append("")
        lines.append(f"  {summary.unchanged} step(s) unchanged (cached).")
    lines.append("")
    lines.append(style.bold(summary_line(summary)))
    return "\n".join(lines)


def node_line(node: NodeChange, style: Styler, *, placed: bool = False) -> str:
    """`~ vm root-pve › edge (memory, disk)`: symbol, type, host path and name, what changed;
    with `placed` (a plan on several hosts), `on HOST` after a top-level node."""
    what = [*node.fields, *(f"via {other}" for other in node.via)]
    detail = f" ({', '.join(what)})" if what else ""
    symbol = _colour(node.action, SYMBOLS[node.action].rjust(3), style)
    on = f" on {node.host}" if placed and not node.path and "@" not in node.name else ""
    return f"{symbol} {node.type} {node.label}{on}{detail}"


def _step_head(change: Change, style: Styler) -> str:
    symbol = _colour(change.action, SYMBOLS[change.action].rjust(3), style)
    return f"{symbol} {change.address}  {style.dim(change.kind)}"


def changes_json(
    plan_file: PlanFile, changes: Iterable[Change], summary: Summary
) -> dict[str, Any]:
    """The diff for machines: stable keys, documented in docs/plan-format.md. Every changed
    step is listed (dependents too, with `caused_by`); `nodes` is the text's node summary."""
    changes = list(changes)
    targets = plan_file.plan.targets  # a -target plan says so; an untargeted one has no key
    out: dict[str, Any] = {
        "format": "pveplan-diff/1",
        "plan": plan_file.hash,
        "workspace": plan_file.header.workspace,
        "planned_against": plan_file.header.planned_against,
        **({"targets": list(targets)} if targets else {}),
        "summary": {
            "add": summary.add,
            "change": summary.change,
            "replace": summary.replace,
            "destroy": summary.destroy,
            "unchanged": summary.unchanged,
        },
        "nodes": [msgspec.to_builtins(node) for node in node_changes(changes)],
        "changes": [msgspec.to_builtins(c) for c in changes if c.action != "unchanged"],
    }
    if plan_file.plan.drift:  # only when probed and found: offline diffs keep their keys
        out["summary"]["drift"] = summary.drift
        out["drift"] = [msgspec.to_builtins(d) for d in plan_file.plan.drift]
    return out


def render_plan(plan_file: PlanFile, style: Styler) -> str:
    """`pveplan show`: what the plan does, host by host, step by step."""
    header = plan_file.header
    lines = [
        style.bold(f"plan {plan_file.hash}")
        + f"  ({plan_file.plan.manifest} on {plan_file.plan.host})",
        f"  made by {header.tool}; workspace {header.workspace}",
        f"  manifest digest {header.manifest_digest or '-'}; site config digest {header.site_config_digest or '-'}",
        f"  planned against: {header.planned_against or 'nothing applied yet'}",
        *(f"  signed by {signature.key}" for signature in header.signatures),
        "",
    ]
    _render_level(plan_file.plan, (), lines, style)
    return "\n".join(lines)


def _render_level(plan: Plan, path: tuple[str, ...], lines: list[str], style: Styler) -> None:
    pad = "  " * (len(path) + 1)
    lines.append(
        pad[:-2]
        + style.bold(f"{plan.host} ›")
        + style.dim(f"  subplan {plan.hash}" if path else "")
    )
    for step in plan.steps:
        lines.append(f"{pad}{step.address}  {style.dim(step.kind)}  {style.dim(step.hash[:12])}")
        for text in _step_details(step):
            lines.append(f"{pad}    {text}")
        if step.kind == "subplan.delegate":
            _render_level(plan.subplans[step.address], (*path, step.address), lines, style)


def _step_details(step: Step) -> list[str]:
    out = []
    interesting = {k: v for k, v in step.args.items() if k not in ("subplan",)}
    if interesting:
        out.append(", ".join(f"{k}={_short(v)}" for k, v in sorted(interesting.items())))
    if step.refs:
        out.append("uses " + ", ".join(f"{k}={v}" for k, v in sorted(step.refs.items())))
    if step.secrets:
        out.append("secrets " + ", ".join(f"{s.name} (sensitive)" for s in step.secrets))
    return out


def _short(value: Any) -> str:
    import json

    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= 40 else text[:37] + "..."


def plan_json(plan_file: PlanFile) -> dict[str, Any]:
    """`pveplan show --json`: the plan flattened to one list of steps, each with its path."""
    steps = []
    for path, step in plan_file.plan.walk():
        item = msgspec.to_builtins(step)
        item["path"] = list(path)
        item["secrets"] = [s.name for s in step.secrets]
        steps.append(item)
    return {
        "format": "pveplan-show/1",
        "hash": plan_file.hash,
        "manifest": plan_file.plan.manifest,
        "host": plan_file.plan.host,
        "header": msgspec.to_builtins(plan_file.header),
        "steps": steps,
    }
