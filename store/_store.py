"""`Store`: the one object through which pveplan reads and writes its store.

It holds a backend (`_local`: SQLite plus blob files; `_postgres`: a PostgreSQL database
a team shares) and speaks the same contract over either: callers never learn which one
they have. Every write is one transaction, and a method returns only after its commit is
durable, so whatever a caller saw succeed survives a SIGKILL (and, locally, a power cut).
Objects follow "bytes first, then the row in one transaction; the row is the proof".

What it never does: plan, hash plans or run keys (the planner and executor do), or take
workspace locks behind the caller's back; `set_applied` and friends trust the caller
to hold `lock_workspace` for the workspace they change.

A `Store` may be shared between threads: the backend serialises use of its connection.
Other processes may open the same store at the same time; only gc needs it to itself.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from . import _state
from ._address import StoreAddress, is_store_url, locate_store
from ._backend import Backend, Conn
from ._errors import StoreError
from ._layout import is_object_hash, object_hash
from ._locks import WorkspaceLock
from ._records import (
    AppliedState,
    GcReport,
    LockHolder,
    Resource,
    RunEvent,
    RunRecord,
    StepResult,
    VerifyReport,
)


def open_store(where: StoreAddress | Path | str, *, wait: float = 30.0) -> Store:
    """Open (creating on first use) a store; close it, or use it in `with`.

    `where` is a directory (a local store), a `postgresql://` URL, or a `StoreAddress`
    from `locate_store`. A local store's directory tree (mode 0700) and database are
    created, and an older schema is migrated, in either engine. Waits up to `wait`
    seconds if a gc holds the store. Every failure the environment can cause (an
    unwritable directory, an unreachable server, a damaged database, a newer schema) is a
    `StoreError`.
    """
    if isinstance(where, str) and is_store_url(where):
        where = locate_store({"PVEPLAN_STORE": where})
    if isinstance(where, StoreAddress) and where.url is not None:
        from ._postgres import open_postgres

        return Store(open_postgres(where, wait))
    from ._local import open_local

    root = where.path if isinstance(where, StoreAddress) else Path(where)
    assert root is not None
    return Store(open_local(root, wait))


class Store:
    """An open store. Build it with `open_store`, never directly."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.schema_version = backend.schema_version
        self.store_id = backend.store_id
        """Random, fixed at creation: tells two stores apart (the remote `hello` frame)."""

    @property
    def location(self) -> str:
        """How to name this store in a message: its directory, or its password-free URL."""
        return self._backend.location

    @property
    def local_dir(self) -> Path:
        """This machine's directory for what is local by nature: built bundles, the
        simulator, server logs (the store itself, for a local store)."""
        return self._backend.local_dir

    @property
    def shared(self) -> bool:
        """Whether this is a PostgreSQL store (other machines may use it too)."""
        return self._backend.shared

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection and drop the shared store lock; idempotent."""
        self._backend.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _write(self, what: str) -> contextlib.AbstractContextManager[Conn]:
        return _in_transaction(self._backend, what, write=True)

    def _read(self, what: str) -> contextlib.AbstractContextManager[Conn]:
        return _in_transaction(self._backend, what, write=False)

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
        backend = self._backend
        with backend.guard(f"store object {digest}") as conn:
            known = conn.execute("SELECT 1 FROM objects WHERE hash = ?", (digest,)).fetchone()
            backend.save_blob(conn, digest, data, known is not None)
            with backend.transaction():
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
                if known is None:
                    backend.insert_object(conn, digest, data, time.time())
                conn.executemany(
                    "INSERT INTO object_refs (object, ref) VALUES (?, ?)"
                    " ON CONFLICT (object, ref) DO NOTHING",
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
        with self._backend.guard(f"read object {digest}") as conn:
            if conn.execute("SELECT 1 FROM objects WHERE hash = ?", (digest,)).fetchone() is None:
                raise StoreError(
                    f"object {digest} is not in the store at {self.location}",
                    "it was never stored here, or gc removed it because nothing referred to it",
                )
            return self._backend.load_blob(conn, digest)

    def has_object(self, digest: str) -> bool:
        """Whether the store holds `digest` (its row; `verify` checks the file)."""
        if not is_object_hash(digest):
            return False
        with self._backend.guard("look up an object") as conn:
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
        with self._backend.guard(f"look up plan {plan_hash}") as conn:
            return _state.select_plan_object(conn, plan_hash, self.location)

    # -- step results ------------------------------------------------------------------

    def record_result(self, result: StepResult) -> None:
        """File a finished step's result under its run key, durably, in one transaction."""
        with self._write(f"record the result of {result.address}") as conn:
            _state.insert_result(conn, result)

    def record_steps(
        self,
        workspace: str,
        steps: Sequence[tuple[StepResult, Mapping[str, object] | None]],
    ) -> None:
        """File many finished steps in one transaction: each result, and for a step that
        made (or changed) a live resource, that resource's outputs (None: no resource).
        Every record lands, or none does."""
        if not steps:
            return
        with self._write(f"record the results of {len(steps)} step(s)") as conn:
            now = time.time()
            for result, resource in steps:
                _state.insert_result(conn, result)
                if resource is not None:
                    _state.upsert_resource(
                        conn, workspace, result.address, result.kind, resource, now
                    )

    def results_for(self, addresses: Iterable[str]) -> dict[str, StepResult]:
        """Run key -> the result `get_result` would give, for every result recorded for
        `addresses`: a run looks its steps up in one pass instead of a query per step
        (on PostgreSQL, a round trip per step)."""
        with self._read("read step results") as conn:
            return _state.select_results_for(conn, list(addresses), self.location)

    def get_result(self, run_key: str) -> StepResult | None:
        """The latest successful result for `run_key`; else the latest failed; else None."""
        with self._backend.guard("read a step result") as conn:
            return _state.select_result(conn, run_key, self.location)

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
            return _state.select_applied(conn, workspace, self.location)

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
            return _state.select_resources(conn, workspace, self.location)

    # -- runs --------------------------------------------------------------------------

    def start_run(self, workspace: str, plan_hash: str, verb: str) -> int:
        """Open a run record (status "running" until `finish_run`); its id."""
        with self._write(f"start a run in {workspace}") as conn:
            return _state.insert_run(conn, workspace, plan_hash, verb, time.time())

    def add_event(self, run_id: int, event: RunEvent) -> None:
        with self._write(f"record an event of run {run_id}") as conn:
            if not _state.run_exists(conn, run_id):
                raise StoreError(f"run {run_id} is not in the store at {self.location}")
            _state.insert_events(conn, run_id, [event])

    def add_events(self, run_id: int, events: Iterable[RunEvent]) -> None:
        """Record many events in one transaction (a run's cached steps come in thousands)."""
        with self._write(f"record the events of run {run_id}") as conn:
            if not _state.run_exists(conn, run_id):
                raise StoreError(f"run {run_id} is not in the store at {self.location}")
            _state.insert_events(conn, run_id, events)

    def finish_run(self, run_id: int, status: str) -> None:
        with self._write(f"finish run {run_id}") as conn:
            if not _state.run_exists(conn, run_id):
                raise StoreError(f"run {run_id} is not in the store at {self.location}")
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
        with self._backend.guard(f"read secret {name}") as conn:
            return _state.select_secret(conn, name, self.location)

    def delete_secret(self, name: str) -> None:
        """Forget a secret; forgetting an unknown one is not an error."""
        with self._write(f"delete secret {name}") as conn:
            conn.execute("DELETE FROM secrets WHERE name = ?", (name,))

    # -- locks and maintenance ---------------------------------------------------------

    def lock_workspace(self, workspace: str, *, plan: str = "", wait: float = 0.0) -> WorkspaceLock:
        """A context manager holding the workspace's lock; see `WorkspaceLock`.

        `plan` (the hash being applied) is shown to anyone refused; `wait` is how many
        seconds to keep retrying before refusing (0: refuse at once).
        """
        return self._backend.lock_workspace(workspace, plan, wait)

    def break_lock(self, workspace: str) -> LockHolder | None:
        """Release the workspace's lock when its holder is gone; who held it (None: no one).

        A holder still alive on this machine is refused (`WorkspaceLocked`): stop it
        instead. The caller records that the lock was broken (`pveplan store unlock`).
        """
        return self._backend.break_lock(workspace)

    def verify(self) -> VerifyReport:
        """Re-hash every object and check the database; reports, never repairs."""
        with self._backend.guard("verify the store") as conn:
            return self._backend.verify(conn)

    def repair(self) -> tuple[str, ...]:
        """Drop the rows whose checksums fail (see `_maintenance.repair`); what was dropped."""
        with self._backend.guard("repair the store") as conn:
            return self._backend.repair(conn)

    def gc(self, keep_runs: int = 10) -> GcReport:
        """Delete what no root reaches (see `_maintenance`); needs the store to itself.

        Raises StoreError if another process has the store open.
        """
        if keep_runs < 0:
            raise ValueError("keep_runs must be >= 0")
        with self._backend.guard("collect garbage") as conn:
            return self._backend.gc(conn, keep_runs)


@contextlib.contextmanager
def _in_transaction(backend: Backend, what: str, *, write: bool) -> Iterator[Conn]:
    with backend.guard(what), backend.transaction(write) as conn:
        yield conn
