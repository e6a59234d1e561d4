"""`-target NODE` on plan, apply and destroy: the plan cut down to some nodes, as
Terraform's -target, with its warning.

The planner cuts (`target_plan`: the targets, what they need, their hosts); this module
takes the flag, refuses unknown names with a suggestion, warns that the rest is not
considered, and gives the applied plan the same view, so a targeted diff compares like
with like instead of showing every other node as destroyed.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, Any

import msgspec

from pveplan.dsl import closest, did_you_mean
from pveplan.planner import (
    Plan,
    PlanError,
    PlanFile,
    check_targets,
    plan_hash,
    rehearsal_host,
    target_plan,
)

if TYPE_CHECKING:
    from pveplan.planner import Change

    from . import Console

WARNING = """\
Warning: resource targeting is in effect: only {names} and what {pronoun} on are
planned. The rest of the workspace is not considered: it is neither changed nor destroyed,
and the workspace's applied state is left as it was (apply the whole manifest to record it).
Use -target for exceptions (repairing one node, a mistake), not routinely."""


HOST_WARNING = """\
Warning: host targeting is in effect: only the nodes on {hosts} ({names}) are planned.
The nodes on the other hosts of the manifest are not considered: they are neither changed
nor destroyed, and the workspace's applied state is left as it was (apply the whole manifest
to record it)."""


def targets_of(args: argparse.Namespace) -> tuple[str, ...]:
    """The `-target` names, in order, each once."""
    return tuple(dict.fromkeys(getattr(args, "target", None) or ()))


def target_hosts_of(args: argparse.Namespace) -> tuple[str, ...]:
    """The `--target-host` names, in order, each once."""
    return tuple(dict.fromkeys(getattr(args, "target_host", None) or ()))


def host_targets(plan: Plan, hosts: tuple[str, ...], console: Console) -> tuple[str, ...]:
    """The nodes `--target-host` stands for: every root node of `plan` placed on one of
    `hosts` (a node's subtree comes with it, as with -target). A name that is no host of
    the plan is an error with a suggestion; so is a host no node is placed on."""
    if not hosts:
        return ()
    known = {s.host for s in plan.steps} | {plan.host}
    chosen = []
    for name in hosts:
        # under --simulate the plan names rehearsals (`sim:mother`): `mother` means it
        host = name if name in known or rehearsal_host(name) not in known else rehearsal_host(name)
        if host not in known:
            guess = closest(name, sorted(known))
            raise PlanError.at(
                None,
                f"--target-host {name}: the manifest places no node on {name}"
                + (f" (did you mean {guess!r}?)" if guess else ""),
                did_you_mean(name, known, "hosts of this plan"),
            )
        chosen.append(host)
    names = tuple(
        step.args["name"]
        for step in plan.steps
        if step.host in chosen and step.address.endswith(".create") and "name" in step.args
    )
    if not names:
        raise PlanError.at(
            None,
            f"--target-host {', '.join(hosts)}: no node of the manifest is placed there",
            "name a host that has nodes (`host:` on a root node; -H for the rest)",
        )
    console.error(HOST_WARNING.format(hosts=", ".join(chosen), names=", ".join(names)))
    return names


def warn(console: Console, targets: tuple[str, ...]) -> None:
    names = ", ".join(targets)
    console.error(
        WARNING.format(names=names, pronoun="it depends" if len(targets) == 1 else "they depend")
    )


def cut_plan_file(
    plan_file: PlanFile, targets: tuple[str, ...], console: Console, *, announce: bool = True
) -> PlanFile:
    """`plan_file` cut down to `targets` (unchanged without any); PlanError for a name
    that is no node of the manifest. `announce`: print -target's warning (a
    `--target-host` cut alone has printed its own)."""
    if not targets:
        return plan_file
    check_targets(plan_file.plan, targets)
    cut = target_plan(plan_file.plan, targets)
    assert cut is not None  # every target is a node of the plan
    if announce:
        warn(console, targets)
    return msgspec.structs.replace(plan_file, plan=cut, hash=cut.hash)


def old_view(old: Plan | None, targets: tuple[str, ...], *, destroy: bool = False) -> Plan | None:
    """The applied plan as a targeted plan sees it: cut to the same targets (as a destroy
    cuts, for a destroy), so the diff leaves the nodes that are not considered alone."""
    if old is None or not targets:
        return old
    return target_plan(old, targets, destroy=destroy)


def cut_destroy(destroy: PlanFile, targets: tuple[str, ...]) -> PlanFile:
    """A workspace's destroy plan cut down to `targets` (and the subtrees inside them);
    an empty one, still targeted, when none of them was applied."""
    if not targets:
        return destroy
    cut = target_plan(destroy.plan, targets)
    if cut is None:
        plan = destroy.plan
        cut = Plan(
            manifest=plan.manifest,
            host=plan.host,
            action="destroy",
            settings=plan.settings,
            targets=tuple(sorted(set(targets))),
            hash=plan_hash(plan.manifest, plan.host, "destroy", plan.settings, [], targets=targets),
        )
    return msgspec.structs.replace(destroy, plan=cut, hash=cut.hash)


def destroyed_considered(changes: list[Change], targets: tuple[str, ...]) -> list[Change]:
    """A targeted destroy's changes without the delegate steps of the hosts in front of a
    target: they only reach it, and those hosts stay (listed, they would read as destroyed)."""
    if not targets:
        return changes
    return [
        c
        for c in changes
        if not (c.address.endswith(".delegate") and c.address.split(".")[1] not in targets)
    ]


@dataclasses.dataclass(frozen=True)
class _NothingFound:
    found: tuple[Any, ...] = ()
    refused: tuple[Any, ...] = ()


class NotSwept:
    """A targeted destroy's stand-in for `_leftovers.Swept`: nothing was searched for on
    the host, so nothing beyond the target was found or destroyed."""

    leftovers = _NothingFound()
    failed: dict[int, str] = {}  # noqa: RUF012 - read only
    findings: list[Any] = []  # noqa: RUF012
    errors: list[str] = []  # noqa: RUF012
    destroyed: list[Any] = []  # noqa: RUF012


async def no_sweep(services: Any, report: Any) -> NotSwept:
    """The `execute_run` hook of a targeted destroy: no search, no sweep."""
    return NotSwept()
