"""Consent before a run changes hosts: ask on a terminal, refuse without one.

Terraform's rule, for the same reason: a command that may destroy VMs must never go
ahead because nobody was there to say no. So `apply` and `destroy` ask on a terminal
(listing, per node, what would be destroyed or replaced) and, with no terminal and no
`--yes`, refuse with exit 1 before anything runs. A saved plan file is the consent
itself (it was reviewed, maybe signed), as `terraform apply PLANFILE` does not ask.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from pveplan.planner import PlanError, host_of, node_changes

if TYPE_CHECKING:
    from pveplan.planner import Change

    from . import Console

_AT_RISK = {"destroy": "destroyed", "replace": "replaced (destroyed, then created anew)"}


def at_risk(changes: Iterable[Change]) -> list[str]:
    """One line per VM, container or PVE host that would be lost: `vm db: replaced ...`,
    `vm edge on root-pve: destroyed` (from the plan's node summary: a nested host's
    subtree goes with it, and images are not machines anyone loses)."""
    lines: list[str] = []
    for node in node_changes(changes):
        if node.action not in _AT_RISK or node.type not in ("vm", "ct", "pve", "template"):
            continue
        where = " › ".join(host_of(address) for address in node.path)
        on = f" on {where}" if where else ""
        lines.append(f"{node.type} {node.name}{on}: {_AT_RISK[node.action]}")
    return lines


def confirm(
    args: argparse.Namespace, console: Console, question: str, risks: Sequence[str] = ()
) -> bool:
    """True to go ahead: `--yes`, or a `y` typed on the terminal. Without a terminal and
    without `--yes`, a `PlanError` (exit 1) saying how to give consent."""
    if getattr(args, "yes", False):
        return True
    if not (sys.stdin.isatty() and console.out.isatty()):
        verb = getattr(args, "command", "apply")
        hint = "review the changes above, then run the same command with --yes (-y)"
        if verb == "store":  # repair, unlock: no plan to save
            verb = f"store {args.store_command}"
        else:
            hint += (
                "; or save the plan (`pveplan plan ... -o FILE`), review it, and "
                "`pveplan apply FILE`"
            )
        raise PlanError.at(None, f"{verb} needs consent and there is no terminal to ask on", hint)
    if risks:
        console.print("These will be lost:")
        for line in risks:
            console.print(f"  {console.style.red(line)}")
    console.out.write(f"{question} Only 'yes' or 'y' goes ahead. [y/N] ")
    console.out.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")
