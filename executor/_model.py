"""What a run reports: events while it goes, outcomes when each step ends, a report at the end.

These cross boundaries (the progress display, `--json`, the store's run record, and later
the remote executor protocol), so they are msgspec Structs with no behaviour of their own.
"""

from __future__ import annotations

from typing import Literal

import msgspec

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
    """How one step of a run ended."""

    address: str
    status: Status
    outputs: Outputs = msgspec.field(default_factory=dict)
    error: str = ""
    duration: float = 0.0


class RunReport(msgspec.Struct, frozen=True, kw_only=True):
    """A finished run: every step's outcome (in plan order) and what rollback destroyed."""

    plan_hash: str
    status: Literal["ok", "failed", "interrupted"]
    outcomes: tuple[Outcome, ...]
    rolled_back: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    running_when_interrupted: tuple[str, ...] = ()

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def outcome(self, address: str) -> Outcome:
        for outcome in self.outcomes:
            if outcome.address == address:
                return outcome
        raise KeyError(address)


class StepFailed(Exception):
    """A step could not do its job; the message says why, for the user.

    `outputs` are what the step learned before failing (a VM it created half-way), so a
    rollback can destroy it.
    """

    def __init__(self, message: str, outputs: Outputs | None = None) -> None:
        super().__init__(message)
        self.outputs = outputs or {}
