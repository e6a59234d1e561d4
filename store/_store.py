"""`Store`: the one object through which pveplan reads and writes its local store.

It owns an SQLite connection and the store-wide shared lock, both released by `close`
(or leaving the `with` block). Every write is one `BEGIN IMMEDIATE` transaction, and a
method returns only after its commit is durable, so whatever a caller saw succeed
survives a SIGKILL or a power cut. Objects follow "blob to tmp, fsync, rename, then the
row in one transaction; the row is the proof" (see `_blobs`).

What it never does: plan, hash plans or run keys (the planner and executor do), or take
workspace locks behind the caller's back; `set_applied` and friends trust the caller
to hold `lock_workspace` for the workspace they change.

A `Store` may be shared between threads: a mutex serialises its use of the connection.
Other processes may open the same store at the same time (WAL lets them); only gc needs
the store to itself.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import msgspec

from . import _maintenance, _state
from ._blobs import ensure_dir, read_blob, write_blob
from ._errors import StoreError, from_exception
from ._layout import Layout, is_object_hash, object_hash
from ._locks import StoreLock, WorkspaceLock
from ._records import (
    AppliedState,
    GcReport,
    Resource,
    RunEvent,
    RunRecord,
    StepResult,
    VerifyReport,
)
from ._schema import connect, migrate


def open_store(path: Path, *, wait: float = 30.0) -> Store:
    """Open (creating on first use) the store at `path`; close it, or use it in `with`.

    Creates the directory tree (mode 0700) and the database, and migrates an older schema.
    Waits up to `wait` seconds if a gc holds the store. Every failure the environment can
    cause (unwritable directory, damaged database, newer schema) is a `StoreError`.
    """
    root = Path(path)
    layout = Layout(root)
    if root.exists() and not root.is_dir():
        raise StoreError(
            f"store path {root} exists and is not a directory",
            "set PVEPLAN_STORE to a directory (it is created if missing)",
        )
    try:
        for directory in (root, layout.objects, layout.tmp, layout.locks):
            ensure_dir(directory)
    except OSError as exc:
        raise from_exception(exc, "create the store", root) from exc
    lock = StoreLock(layout.store_lock, root)
    conn: sqlite3.Connection | None = None
    try:
        lock.shared(wait)
        conn = connect(layout.database)
        version = migrate(conn, root)
        store_id = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0]
    except BaseException as exc:
        if conn is not None:
            conn.close()
        lock.close()
        if isinstance(exc, sqlite3.ProgrammingError):
            raise
        if isinstance(exc, sqlite3.Error | OSError):
            raise from_exception(exc, "open the store", root) from exc
        raise
    return Store(layout, conn, lock, version, store_id)


class Store:
    """An open store. Build it with `open_store`, never directly."""

    def __init__(
        self,
        layout: Layout,
        conn: sqlite3.Connection,
        lock: StoreLock,
        schema_version: int,
        store_id: str,
    ) -> None:
        self._layout = layout
        self._conn: sqlite3.Connection | None = conn
        self._lock = lock
        self._mutex = threading.RLock()
        self.schema_version = schema_version
        self.store_id = store_id
        """Random, fixed at creation: tells two stores apart (the remote `hello` frame)."""

    @property
    def path(self) -> Path:
        return self._layout.root

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Close the database and drop the shared store lock; idempotent."""
        with self._mutex:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()
                self._lock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[sqlite3.Connection]:
        """The connection, for one operation; environment failures become StoreError."""
        with self._mutex:
            if self._conn is None:
                raise RuntimeError(f"store at {self.path} is closed")
            try:
                yield self._conn
            except (sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.IntegrityError):
                raise  # our bug (a closed store, a violated constraint): keep the traceback
            except (sqlite3.Error, OSError, msgspec.DecodeError) as exc:
                raise from_exception(exc, what, self.path) from exc

    @contextlib.contextmanager
    def _transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """One transaction; IMMEDIATE for writes, DEFERRED for a consistent read."""
        conn = self._conn
        assert conn is not None
        conn.execute(f"BEGIN {mode}")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._guard(what), self._transaction() as conn:
            yield conn

    @contextlib.contextmanager
    def _read(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._guard(what), self._transaction("DEFERRED") as conn:
            yield conn

    # -- objects -----------------------------------------------------------------------

    def put_object(self, data: bytes, refs: Iterable[str] = ()) -> str:
        """Store a blob (idempotent) and the objects it refers to; its xxh3-128 hex hash.

        `refs` must already be stored (store subplans before the plan that embeds them):
        gc follows them, so a reference to nothing would be a hole in a closure.
        """
        digest = object_hash(data)
        wanted = sorted(set(refs))
        for ref in wanted:
            if not is_object_hash(ref):
                raise ValueError(f"refs must be object hashes, not {ref!r}")
        with self._guard(f"store object {digest}") as conn:
            known = conn.execute("SELECT 1 FROM objects WHERE hash = ?", (digest,)).fetchone()
            if known is None or not self._layout.object_path(digest).is_file():
                write_blob(self._layout, digest, data)
            with self._transaction():
                missing = [
                    ref
                    for ref in wanted
                    if ref != digest
                    and conn.execute("SELECT 1 FROM objects WHERE hash = ?", (ref,)).fetchone()
                    is None
                ]
                if missing:
                    raise StoreError(
                        f"object {digest} refers to {missing[0]}, which is not in the store",
                        "store the objects an object refers to first (subplans before plans)",
                    )
                conn.execute(
                    "INSERT OR IGNORE INTO objects (hash, size, created) VALUES (?, ?, ?)",
                    (digest, len(data), time.time()),
                )
                conn.executemany(
                    "INSERT OR IGNORE INTO object_refs (object, ref) VALUES (?, ?)",
                    [(digest, ref) for ref in wanted],
                )
        return digest

    def get_object(self, digest: str) -> bytes:
        """The blob's bytes, re-hashed on every read: a damaged blob is a StoreError."""
        if not is_object_hash(digest):
            raise StoreError(
                f"{digest!r} is not an object hash",
                "object hashes are 32 lowercase hex digits (xxh3-128)",
            )
        with self._guard(f"read object {digest}") as conn:
            if conn.execute("SELECT 1 FROM objects WHERE hash = ?", (digest,)).fetchone() is None:
                raise StoreError(
                    f"object {digest} is not in the store at {self.path}",
                    "it was never stored here, or gc removed it because nothing referred to it",
                )
            return read_blob(self._layout, digest)

    def has_object(self, digest: str) -> bool:
        """Whether the store holds `digest` (its row; `verify` checks the file)."""
        if not is_object_hash(digest):
            return False
        with self._guard("look up an object") as conn:
            row = conn.execute("SELECT 1 FROM objects WHERE hash = ?", (digest,)).fetchone()
            return row is not None

    # -- plans -------------------------------------------------------------------------

    def put_plan(self, plan_hash: str, object_hash: str, workspace: str) -> None:
        """Record that plan `plan_hash` (the planner's Merkle root) is stored as an object.

        The object is the whole plan file, header included, so the same plan hash may be
        re-recorded with different bytes: the latest wins.
        """
        with self._write(f"record plan {plan_hash}") as conn:
            if (
                conn.execute("SELECT 1 FROM objects WHERE hash = ?", (object_hash,)).fetchone()
                is None
            ):
                raise StoreError(
                    f"plan {plan_hash} names object {object_hash}, which is not in the store",
                    "store the plan file with put_object first",
                )
            _state.upsert_plan(conn, plan_hash, object_hash, workspace, time.time())

    def plan_object(self, plan_hash: str) -> str | None:
        """The object holding plan `plan_hash`, if it was stored (and not collected)."""
        with self._guard(f"look up plan {plan_hash}") as conn:
            return _state.select_plan_object(conn, plan_hash, self.path)

    # -- step results ------------------------------------------------------------------

    def record_result(self, result: StepResult) -> None:
        """File a finished step's result under its run key, durably, in one transaction."""
        with self._write(f"record the result of {result.address}") as conn:
            _state.insert_result(conn, result)

    def get_result(self, run_key: str) -> StepResult | None:
        """The latest successful result for `run_key`; else the latest failed; else None."""
        with self._guard("read a step result") as conn:
            return _state.select_result(conn, run_key, self.path)

    # -- applied state -----------------------------------------------------------------

    def set_applied(self, workspace: str, plan_hash: str, steps: Mapping[str, str]) -> None:
        """Replace the workspace's applied state (address -> step hash) atomically.

        Readers see the old set or the new one, never a mixture.
        """
        with self._write(f"record the applied state of {workspace}") as conn:
            _state.replace_applied(conn, workspace, plan_hash, steps, time.time())

    def clear_applied(self, workspace: str) -> None:
        """Forget the workspace's applied state (after a full destroy)."""
        with self._write(f"clear the applied state of {workspace}") as conn:
            _state.delete_applied(conn, workspace)

    def applied(self, workspace: str) -> AppliedState | None:
        with self._read(f"read the applied state of {workspace}") as conn:
            return _state.select_applied(conn, workspace, self.path)

    def workspaces(self) -> tuple[str, ...]:
        """Every workspace with an applied state, a resource or a run, sorted."""
        with self._read("list workspaces") as conn:
            return _state.select_workspaces(conn)

    # -- resources ---------------------------------------------------------------------

    def put_resource(
        self, workspace: str, address: str, kind: str, outputs: Mapping[str, object]
    ) -> None:
        """Record (or update) a live resource and the outputs needed to destroy it."""
        with self._write(f"record resource {address} of {workspace}") as conn:
            _state.upsert_resource(conn, workspace, address, kind, outputs, time.time())

    def remove_resource(self, workspace: str, address: str) -> None:
        """Forget a destroyed resource; forgetting an unknown one is not an error."""
        with self._write(f"remove resource {address} of {workspace}") as conn:
            _state.delete_resource(conn, workspace, address)

    def resources(self, workspace: str) -> tuple[Resource, ...]:
        with self._read(f"read the resources of {workspace}") as conn:
            return _state.select_resources(conn, workspace, self.path)

    # -- runs --------------------------------------------------------------------------

    def start_run(self, workspace: str, plan_hash: str, verb: str) -> int:
        """Open a run record (status "running" until `finish_run`); its id."""
        with self._write(f"start a run in {workspace}") as conn:
            return _state.insert_run(conn, workspace, plan_hash, verb, time.time())

    def add_event(self, run_id: int, event: RunEvent) -> None:
        with self._write(f"record an event of run {run_id}") as conn:
            if not _state.run_exists(conn, run_id):
                raise StoreError(f"run {run_id} is not in the store at {self.path}")
            _state.insert_event(conn, run_id, event)

    def add_events(self, run_id: int, events: Iterable[RunEvent]) -> None:
        """Record many events in one transaction (a run's cached steps come in thousands)."""
        with self._write(f"record the events of run {run_id}") as conn:
            if not _state.run_exists(conn, run_id):
                raise StoreError(f"run {run_id} is not in the store at {self.path}")
            for event in events:
                _state.insert_event(conn, run_id, event)

    def finish_run(self, run_id: int, status: str) -> None:
        with self._write(f"finish run {run_id}") as conn:
            if not _state.run_exists(conn, run_id):
                raise StoreError(f"run {run_id} is not in the store at {self.path}")
            _state.update_run(conn, run_id, status, time.time())

    def runs(self, workspace: str | None = None, limit: int = 20) -> tuple[RunRecord, ...]:
        """The latest runs (of one workspace, or all), newest first."""
        with self._read("list runs") as conn:
            return _state.select_runs(conn, workspace, limit)

    def run_events(self, run_id: int) -> tuple[RunEvent, ...]:
        """A run's events in the order they were added."""
        with self._read(f"read the events of run {run_id}") as conn:
            return _state.select_events(conn, run_id)

    # -- secrets -----------------------------------------------------------------------

    def put_secret(self, name: str, value: bytes) -> None:
        """Keep a secret made at run time (a private key), replacing an older value."""
        with self._write(f"record secret {name}") as conn:
            _state.upsert_secret(conn, name, bytes(value), time.time())

    def get_secret(self, name: str) -> bytes | None:
        with self._guard(f"read secret {name}") as conn:
            return _state.select_secret(conn, name, self.path)

    def delete_secret(self, name: str) -> None:
        """Forget a secret; forgetting an unknown one is not an error."""
        with self._write(f"delete secret {name}") as conn:
            conn.execute("DELETE FROM secrets WHERE name = ?", (name,))

    # -- locks and maintenance ---------------------------------------------------------

    def lock_workspace(self, workspace: str) -> WorkspaceLock:
        """A context manager holding the workspace's lock; see `WorkspaceLock`."""
        return WorkspaceLock(self._layout.workspace_lock(workspace), workspace, self.path)

    def verify(self) -> VerifyReport:
        """Re-hash every object and check the database; reports, never repairs."""
        with self._guard("verify the store") as conn:
            return _maintenance.verify(conn, self._layout)

    def repair(self) -> tuple[str, ...]:
        """Drop the rows whose checksums fail (see `_maintenance.repair`); what was dropped."""
        with self._guard("repair the store") as conn:
            return _maintenance.repair(conn, self._transaction)

    def gc(self, keep_runs: int = 10) -> GcReport:
        """Delete what no root reaches (see `_maintenance`); needs the store to itself.

        Raises StoreError if another process has the store open.
        """
        if keep_runs < 0:
            raise ValueError("keep_runs must be >= 0")
        with self._guard("collect garbage") as conn:
            self._lock.exclusive()
            try:
                return _maintenance.collect(conn, self._layout, keep_runs, self._transaction)
            finally:
                self._lock.shared(wait=60.0)
