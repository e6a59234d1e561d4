"""The base of every step kind's args (`StepArgs`) and the one reading of its rules
(`change_of`): how a changed field is carried out, in place or by replacement. Kept apart
from the kinds' args (`_stepargs`) so both stay small; `_stepargs` re-exports it all."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import msgspec

AuthMethod = Literal["network", "site_token", "node_token"]

Rule = Literal["in_place", "replace", "grow", "items"]
"""How a changed field is carried out: changed on the live resource (`in_place`), only by
recreating it (`replace`), or in place when it grows and not at all when it shrinks
(`grow`: a disk; PVE cannot shrink one, and pveplan destroys no guest's data to get a
smaller disk: the change is `keep`, shown by the plan and logged by apply alike; a smaller
disk is had by destroying the guest and applying again). A field without a rule changes
in place. `items` (a list of devices:
a VM's disks, its NICs) is compared item by item, by the item's own rules (`ITEMS`);
adding or removing an item is in place."""

Change = Literal["in_place", "replace", "keep"]


class StepArgs(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every kind's args. No field has a default but `UNSET` (left out on the
    wire), so the wire form holds exactly the keys plans always had."""

    RULES: ClassVar[Mapping[str, Rule]] = {}
    ITEMS: ClassVar[Mapping[str, type[StepArgs]]] = {}
    """For each `items` field: the Struct of one item (whose `RULES` say how it changes)."""
    SHORTHANDS: ClassVar[Mapping[str, str]] = {}
    """A field that is short for an `items` field's one-item list (`disk` for `disks`):
    where both plans show the list, the diff compares items, not the shorthand."""

    @classmethod
    def items_of(cls, field: str, wire: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The `items` field `field` of a step's wire args as plain items: the list when
        the step carries it, else the one item its shorthand means."""
        listed = wire.get(field)
        return list(listed) if isinstance(listed, list) else []

    def wait_limit(self) -> int | None:
        """The step's own time limit in seconds (a wait's `timeout`), else None."""
        return None

    def replaced_with(self) -> frozenset[str]:
        """The refs (by name) whose step being replaced replaces this one as well (a
        linked clone's template): what the diff shows as a replacement."""
        return frozenset()

    def reconcile(self, live: Mapping[str, Any]) -> dict[str, Change]:
        """For each field in `live` (its value on the real resource) that differs from
        these args: how to make it so. The executor's view of `RULES`."""
        found: dict[str, Change] = {}
        for field, value in live.items():
            wanted = getattr(self, field)
            if value != wanted:
                found[field] = change_of(type(self), field, value, wanted)
        return found


def change_of(args: type[StepArgs], field: str, old: Any, new: Any) -> Change:
    """How `field` of a step with `args` changing from `old` to `new` is carried out."""
    rule = args.RULES.get(field, "in_place")
    if rule == "grow":
        shrinks = isinstance(old, int) and isinstance(new, int) and new < old
        return "keep" if shrinks else "in_place"
    if rule == "items":
        from ._itemchanges import item_changes  # it reads these rules: imported when used

        changes = item_changes(args.ITEMS[field], field, list(old or ()), list(new or ()))
        return "replace" if any(c.change == "replace" for c in changes) else "in_place"
    return rule


class NoArgs(StepArgs, frozen=True, kw_only=True):
    """Kinds whose step needs nothing beyond its refs and secrets (`{}`)."""
