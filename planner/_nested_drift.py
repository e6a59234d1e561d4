"""Drift of nested levels: what each nested host's executor found on its own level.

A nested PVE host's VMs are reached only through that host's executor, so at `plan` and
`status` time the driver asks each applied nested host (`executor.probe_nested`) to list
its own PVE host once and compare it with its own store; deeper levels answer the same way
through theirs. Each level's answer is a `LevelProbe`; this module folds those answers into
what the plan and `status` show: the drift of every level (`Drift.path` says whose), each
nested node's state, and a warning for each level that could not be probed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import msgspec

from ._drift import NodeStatus, drift_line
from ._nodesummary import host_of
from ._plan import Drift, Frozen

LevelState = Literal["probed", "not_applied", "unreachable", "too_old"]
UPGRADE = "pveplan apply"
"""What brings a nested host's executor up to this driver's version (it ships the bundle)."""


class LevelProbe(Frozen, kw_only=True):
    """One nested level as its own executor saw it, or why it was not seen.

    `path` names the nested hosts from the asking level down to this one (this level's host
    last). `state`: `probed` (its `drift` and `nodes` are what its executor found), or not:
    `not_applied` (its host is not applied yet: nothing to probe), `unreachable` (its host
    did not answer; `reason` says why), `too_old` (its executor predates the probe request).
    The drift items carry an empty path on the wire; `nested_drift` places them."""

    path: tuple[str, ...]
    state: LevelState
    reason: str = ""
    drift: tuple[Drift, ...] = ()
    nodes: tuple[NodeStatus, ...] = ()


def below(host: str, levels: Iterable[LevelProbe]) -> tuple[LevelProbe, ...]:
    """`levels` as seen from one level up: `host` goes in front of each path."""
    return tuple(msgspec.structs.replace(lv, path=(host, *lv.path)) for lv in levels)


def nested_drift(levels: Iterable[LevelProbe]) -> tuple[Drift, ...]:
    """The drift of every probed level, each item placed on its level (`Drift.path`), in
    the order of `levels` (the plan's order of nested hosts, each before its own)."""
    return tuple(
        msgspec.structs.replace(item, path=level.path)
        for level in levels
        if level.state == "probed"
        for item in level.drift
    )


def placed_line(item: Drift) -> str:
    """`drift_line(item)` with the nested hosts it is under in front, for one-line forms
    (markdown, warnings): `root-pve › ~ vm db  memory: ...`."""
    line = drift_line(item)
    return f"{' › '.join(item.path)} › {line}" if item.path else line


def level_warning(level: LevelProbe) -> str | None:
    """What a plan says of a level it could not probe (None when it was, or had nothing)."""
    where = " › ".join(level.path)
    if level.state == "unreachable":
        return (
            f"nested host {where} did not answer ({level.reason}); the drift of its VMs "
            "is not shown: start it (or fix its SSH), or plan with --refresh=false"
        )
    if level.state == "too_old":
        return (
            f"not probed (executor too old on {where}: upgrade with `{UPGRADE}`, which ships "
            "this version to it)"
        )
    return None


def nested_status(
    name: str,
    type_: str,
    host: str,
    vmid: int | None,
    delegates: tuple[str, ...],
    levels: Mapping[tuple[str, ...], LevelProbe],
) -> NodeStatus:
    """The state of a node on a nested level (`delegates`: the delegate path leading to
    it): as its level's executor found it; unreachable (the nearest host above it that
    did not answer named); not applied; or not probed, and why."""
    path = tuple(host_of(address) for address in delegates)
    base = {"name": name, "type": type_, "host": host, "vmid": vmid}
    for depth in range(1, len(path) + 1):
        level = levels.get(path[:depth])
        if level is None:
            break
        where = " › ".join(level.path)
        if level.state == "unreachable":
            detail = f"nested host {where} did not answer: {level.reason}"
            return NodeStatus(**base, state="unreachable", detail=(detail,))
        if level.state == "not_applied":
            return NodeStatus(**base, state="not_applied")
        if level.state == "too_old":
            why = f"executor too old on {where}: upgrade with `{UPGRADE}`"
            return NodeStatus(**base, state="not_probed", detail=(why,))
        if depth == len(path):
            for node in level.nodes:
                if node.name == name:
                    return node
    detail = f"on nested host {host}: not probed"
    return NodeStatus(**base, state="not_probed", detail=(detail,))
