"""How two lists of devices differ, item by item: the `items` rule of `_stepargs`.

A VM's disks and NICs are lists; a change to one of them is shown, and carried out, per
item and per field (`disks[1].size: 20 -> 30`), by the item Struct's own `RULES`, so
growing the second disk is in place while moving it to another bus is a replacement.
The planner's diff and the VM kind's reconcile both read these changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from ._stepargs import Change, StepArgs, change_of


class ItemChange(msgspec.Struct, frozen=True, kw_only=True):
    """One difference between two lists of devices: `label` is `disks[1].size` for a
    changed field, `disks[1]` for an added (`old` None) or removed (`new` None) item."""

    label: str
    old: Any
    new: Any
    change: Change
    reason: str = ""
    """Why it cannot be done in place: for a replacement, or a change kept undone."""


ITEM_REASONS: Mapping[str, str] = {
    "size": "PVE cannot shrink a disk",
    "bus": "a disk's bus changes the guest's device names: it is a new disk",
    "storage": "a disk on another storage is a new disk",
}


def item_changes(
    item: type[StepArgs], field: str, old: list[dict[str, Any]], new: list[dict[str, Any]]
) -> list[ItemChange]:
    """Item by item (by position: `disks[1]` is the second disk either way), what differs
    between `old` and `new` of the `items` field `field` (items of Struct `item`, as
    plain dicts), and how each is carried out by the item's `RULES`. Adding or removing
    an item is in place (`qm set`)."""
    out = []
    for index in range(max(len(old), len(new))):
        label = f"{field}[{index}]"
        if index >= len(old) or index >= len(new):
            before = old[index] if index < len(old) else None
            after = new[index] if index < len(new) else None
            out.append(ItemChange(label=label, old=before, new=after, change="in_place"))
            continue
        for key in sorted(set(old[index]) | set(new[index])):
            before, after = old[index].get(key), new[index].get(key)
            if before != after:
                change = change_of(item, key, before, after)
                reason = ITEM_REASONS.get(key, "") if change != "in_place" else ""
                out.append(
                    ItemChange(
                        label=f"{label}.{key}", old=before, new=after, change=change, reason=reason
                    )
                )
    return out
