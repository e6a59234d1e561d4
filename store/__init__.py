"""store: pveplan's crash-safe store, local (SQLite) or shared (PostgreSQL).

Owns what outlives a single command: content-addressed objects (plan and subplan files),
step results by run key (the cache that makes a re-run do nothing), each workspace's
applied state and live resources, run records with their events, and the locks that keep
two applies of one workspace apart. Locally it is SQLite (WAL, synchronous=FULL) plus a
directory of blobs named by their xxh3-128 hash; a team shares one PostgreSQL database
instead (`postgresql://` URLs), with the same contract. See docs/store.md for the layouts
and the crash-safety argument.

It never plans, hashes plans, runs steps or reads the environment (`store_path` and
`locate_store` take the environment as an argument); it imports nothing else of pveplan's. Every failure the
user's machine can cause is a `StoreError`, shaped like the other packages' errors so the
CLI renders it the same way.
"""

from __future__ import annotations

from ._address import StoreAddress, cache_path, is_store_url, locate_store
from ._copy import CopyReport, copy_store
from ._errors import StoreDiagnostic, StoreError
from ._layout import object_hash, store_path
from ._locks import WorkspaceLock, WorkspaceLocked
from ._records import (
    OBJECT_KEY,
    AppliedState,
    GcReport,
    LockHolder,
    Outputs,
    Resource,
    RunEvent,
    RunRecord,
    StepResult,
    VerifyReport,
)
from ._rowhash import DamagedRow
from ._schema import MIGRATIONS, SCHEMA_VERSION
from ._store import Store, open_store

__all__ = [
    "MIGRATIONS",
    "OBJECT_KEY",
    "SCHEMA_VERSION",
    "AppliedState",
    "CopyReport",
    "DamagedRow",
    "GcReport",
    "LockHolder",
    "Outputs",
    "Resource",
    "RunEvent",
    "RunRecord",
    "StepResult",
    "Store",
    "StoreAddress",
    "StoreDiagnostic",
    "StoreError",
    "VerifyReport",
    "WorkspaceLock",
    "WorkspaceLocked",
    "cache_path",
    "copy_store",
    "is_store_url",
    "locate_store",
    "object_hash",
    "open_store",
    "store_path",
]
