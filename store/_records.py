"""The records that cross the store's boundary: what callers put in and get back.

They are frozen msgspec Structs so the executor, the CLI and the remote protocol can pass
them around, compare them and encode them without copying the store's tables. Timestamps
(`started`, `finished`, `at`, `updated`, `created`) are wall-clock floats for humans and
history; nothing here is ever hashed, so they never disturb a plan or run key.
"""

from __future__ import annotations

from typing import Literal, get_args

import msgspec

Scalar = str | int | bool | None
"""An output value: the store keeps step outputs JSON-simple and float-free."""

Outputs = dict[str, Scalar]

OBJECT_KEY = "object"
"""An output under this key naming an object hash keeps that object alive through gc."""


class Record(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base for every store record: immutable and strict when decoded."""


class StepResult(Record, kw_only=True):
    """What running one step produced, filed under its run key.

    `run_key` is hash(step hash, resolved ref values), computed by the executor; the store
    treats it as an opaque string. A result is recorded in one transaction when the step
    finishes, so a killed apply loses no step that finished.
    """

    run_key: str
    step_hash: str
    address: str
    kind: str
    status: Literal["ok", "failed"]
    outputs: Outputs = msgspec.field(default_factory=dict)
    error: str = ""
    run_id: int | None = None
    started: float
    finished: float


class AppliedState(Record, kw_only=True):
    """The plan a workspace was last brought to, and each step that is applied now."""

    workspace: str
    plan_hash: str
    steps: dict[str, str]
    """address -> step hash."""
    updated: float


class Resource(Record, kw_only=True):
    """A live thing a workspace created, with the outputs needed to destroy it."""

    workspace: str
    address: str
    kind: str
    outputs: Outputs
    updated: float


EventKind = Literal["started", "finished", "cached", "failed", "log"]
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)


class RunEvent(Record, kw_only=True):
    """One entry of a run's record: a step started/finished/cached/failed, or a log line."""

    address: str
    kind: EventKind
    message: str = ""
    at: float
    duration: float | None = None
    host: str | None = None


class RunRecord(Record, kw_only=True):
    """One `apply`/`destroy`/... run. `status` stays "running" if the run was killed."""

    id: int
    workspace: str
    plan_hash: str
    verb: str
    status: str
    started: float
    finished: float | None = None


class LockHolder(Record, kw_only=True):
    """Who holds (or held) a workspace lock: the JSON in a lock file, or a lock table row."""

    pid: int
    host: str
    since: str
    """Local time with offset, ISO 8601, to the second."""
    workspace: str
    user: str = ""
    plan: str = ""
    """The hash of the plan being applied (empty when the holder gave none)."""

    def describe(self) -> str:
        """ "pid 123 (alice) on host ci-7 since ..., applying plan 4f2a..." for messages."""
        who = f"pid {self.pid}" + (f" ({self.user})" if self.user else "")
        text = f"{who} on host {self.host} since {self.since}"
        return text + (f", applying plan {self.plan[:12]}" if self.plan else "")


class VerifyReport(Record, kw_only=True):
    """What `verify` found. `collectable` is the subset of `problems` gc removes safely.

    Orphan files (a blob whose row was never committed, or whose row gc already deleted)
    and tmp/ leftovers are what a killed writer legitimately leaves behind; everything
    else in `problems` is damage.
    """

    objects_checked: int
    problems: tuple[str, ...] = ()
    collectable: tuple[str, ...] = ()

    @property
    def damage(self) -> tuple[str, ...]:
        """The problems gc cannot fix: corrupt or missing blobs, a bad database."""
        return tuple(p for p in self.problems if p not in self.collectable)


class GcReport(Record, kw_only=True):
    """What `gc` removed. `bytes_freed` counts every file it deleted."""

    objects_removed: int
    """Unreachable objects: their rows and files."""
    bytes_freed: int
    orphans_removed: int = 0
    """Files in objects/ that had no row."""
    tmp_removed: int = 0
    """Leftovers of interrupted writes in tmp/."""
    objects_kept: int = 0
