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

from .._errors import PlanError

if TYPE_CHECKING:
    from .._diff import Change
    from . import Console

_AT_RISK = {"destroy": "destroyed", "replace": "replaced (destroyed, then created anew)"}


def at_risk(changes: Iterable[Change]) -> list[str]:
    """One line per node that loses a VM or container: `vm db (root-pve ›): replaced ...`.

    A node is at risk when its create step is destroyed or replaced (for a nested host,
    its delegate's subtree goes with it); the other steps of a node follow its create,
    so listing them would only repeat it.
    """
    lines: list[str] = []
    seen: set[tuple[tuple[str, ...], str]] = set()
    for change in changes:
        parts = change.address.split(".")
        if change.action not in _AT_RISK or len(parts) < 3 or parts[0] != "node":
            continue
        if parts[2] not in ("create", "delegate", "destroy_subtree"):
            continue
        key = (change.path, parts[1])
        if key in seen:
            continue
        seen.add(key)
        where = " › ".join(p.split(".")[1] if p.startswith("node.") else p for p in change.path)
        kind = "ct" if change.kind.startswith("pve.ct.") else "vm"
        on = f" on {where}" if where else ""
        lines.append(f"{kind} {parts[1]}{on}: {_AT_RISK[change.action]}")
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
        raise PlanError.at(
            None,
            f"{verb} needs consent and there is no terminal to ask on",
            "review the changes above, then run the same command with --yes (-y); "
            "or save the plan (`pveplan plan ... -o FILE`), review it, and `pveplan apply FILE`",
        )
    if risks:
        console.print("These will be lost:")
        for line in risks:
            console.print(f"  {console.style.red(line)}")
    console.out.write(f"{question} Only 'yes' or 'y' goes ahead. [y/N] ")
    console.out.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")
