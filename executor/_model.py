"""What a run reports: events while it goes, outcomes when each step ends, a report at the end.

These cross boundaries (the progress display, `--json`, the store's run record, and later
the remote executor protocol), so they are msgspec Structs with no behaviour of their own.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ._errors import ExecutorError

Outputs = dict[str, str | int | bool | None]

EventKind = Literal["started", "finished", "cached", "failed", "skipped", "log"]
Status = Literal["ok", "cached", "failed", "skipped"]


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """Something that happened to a step, as it happened.

    `path` is, for a step run by a remote executor, the chain of nested hosts from the
    driver's down to the one it ran on (which is `host`): empty for the driver's own steps.
    Each delegate prepends its host as events pass up, so a display can show
    `root-pve › leaf-pve › edge › wait_ip`.
    """

    address: str
    kind: EventKind
    host: str
    at: float
    message: str = ""
    duration: float | None = None
    path: tuple[str, ...] = ()


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """How one step of a run ended.

    `path` is empty for the driver's own steps; for a nested host's step it is the chain
    of hosts, as its events carry it. Such outcomes are rebuilt from events and have no
    outputs: the nodes they made reach the driver through their delegate's outputs.
    """

    address: str
    status: Status
    outputs: Outputs = msgspec.field(default_factory=dict)
    error: str = ""
    duration: float = 0.0
    path: tuple[str, ...] = ()


class RunReport(msgspec.Struct, frozen=True, kw_only=True):
    """A finished run: every step's outcome (in plan order) and what rollback destroyed.

    `outcomes` are this level's steps (a delegate is one of them, however much ran below
    it). `nested` are the steps that ran on nested hosts, every level deep, as their
    forwarded events reported them (`executor.with_nested`); empty when nobody collected
    them, and then counts and node rows fall back to what the delegates' outputs say.
    """

    plan_hash: str
    status: Literal["ok", "failed", "interrupted"]
    outcomes: tuple[Outcome, ...]
    rolled_back: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    running_when_interrupted: tuple[str, ...] = ()
    nested: tuple[Outcome, ...] = ()

    def count(self, status: Status) -> int:
        """Steps of this level only (what a remote level reports up in its result frame)."""
        return sum(1 for o in self.outcomes if o.status == status)

    def count_all(self, status: Status) -> int:
        """Steps of every level: the unit of the plan's `Plan: N to add`, which counts
        nested steps too."""
        return self.count(status) + sum(1 for o in self.nested if o.status == status)

    def outcome(self, address: str) -> Outcome:
        for outcome in self.outcomes:
            if outcome.address == address:
                return outcome
        raise KeyError(address)


class StepFailed(ExecutorError):
    """A step could not do its job; the message says why, for the user.

    `outputs` are what the step learned before failing (a VM it created half-way), so a
    rollback can destroy it.
    """

    def __init__(self, message: str, outputs: Outputs | None = None) -> None:
        super().__init__(message)
        self.outputs = outputs or {}
