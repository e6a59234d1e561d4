"""The local backend: SQLite (WAL, synchronous=FULL) plus a directory of blob files.

One operator on one machine: objects are files written before their rows (`_blobs`),
workspace locks are flock(2) files the kernel drops when their holder dies, and the
store-wide lock is a shared flock that gc takes exclusively. See docs/store.md.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from . import _maintenance
from ._backend import Backend, Conn
from ._blobs import ensure_dir, read_blob, write_blob
from ._errors import StoreError, from_exception
from ._layout import Layout
from ._locks import FileWorkspaceLock, StoreLock, WorkspaceLock
from ._records import GcReport, LockHolder, VerifyReport
from ._schema import connect, migrate


def open_local(root: Path, wait: float) -> LocalBackend:
    """Open (creating on first use) the local store at `root`."""
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
    return LocalBackend(layout, conn, lock, version, store_id)


class LocalBackend(Backend):
    bug_errors = (sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.IntegrityError)
    user_errors = (sqlite3.Error, OSError, msgspec.DecodeError)

    def __init__(
        self,
        layout: Layout,
        conn: sqlite3.Connection,
        lock: StoreLock,
        schema_version: int,
        store_id: str,
    ) -> None:
        super().__init__()
        self.layout = layout
        self._conn: sqlite3.Connection | None = conn
        self._lock = lock
        self.schema_version = schema_version
        self.store_id = store_id
        self.location = str(layout.root)
        self.local_dir = layout.root

    @property
    def conn(self) -> Conn | None:
        return self._conn

    def translate(self, exc: BaseException, what: str) -> StoreError:
        return from_exception(exc, what, self.layout.root)

    def begin(self, write: bool) -> str:
        return "BEGIN IMMEDIATE" if write else "BEGIN DEFERRED"

    def close(self) -> None:
        with self._mutex:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()
                self._lock.close()

    # -- objects -----------------------------------------------------------------------

    def save_blob(self, conn: Conn, digest: str, data: bytes, known: bool) -> None:
        if not known or not self.layout.object_path(digest).is_file():
            write_blob(self.layout, digest, data)

    def insert_object(self, conn: Conn, digest: str, data: bytes, now: float) -> None:
        conn.execute(
            "INSERT INTO objects (hash, size, created) VALUES (?, ?, ?)"
            " ON CONFLICT (hash) DO NOTHING",
            (digest, len(data), now),
        )

    def load_blob(self, conn: Conn, digest: str) -> bytes:
        return read_blob(self.layout, digest)

    # -- locks and maintenance ---------------------------------------------------------

    def lock_workspace(self, workspace: str, plan: str, wait: float) -> WorkspaceLock:
        path = self.layout.workspace_lock(workspace)
        return FileWorkspaceLock(path, workspace, self.layout.root, plan=plan, wait=wait)

    def break_lock(self, workspace: str) -> LockHolder | None:
        """A flock dies with its holder, so there is never a lock to break here: refuse a
        live holder (stop it instead), and clear what a dead one left in the file."""
        lock = FileWorkspaceLock(self.layout.workspace_lock(workspace), workspace, self.layout.root)
        if not lock.path.exists():
            return None
        with lock:  # refused (WorkspaceLocked, naming the live holder) if it is held
            stale = lock.recovered_from
        return stale

    def after_copy(self, conn: Conn) -> None:
        """Nothing to do: AUTOINCREMENT already counts from the largest id inserted."""

    def verify(self, conn: Conn) -> VerifyReport:
        assert isinstance(conn, sqlite3.Connection)
        return _maintenance.verify(conn, self.layout)

    def repair(self, conn: Conn) -> tuple[str, ...]:
        assert isinstance(conn, sqlite3.Connection)
        return _maintenance.repair(conn, self.transaction, "rowid")

    def gc(self, conn: Conn, keep_runs: int) -> GcReport:
        assert isinstance(conn, sqlite3.Connection)
        self._lock.exclusive()
        try:
            return _maintenance.collect(conn, self.layout, keep_runs, self.transaction)
        finally:
            self._lock.shared(wait=60.0)
