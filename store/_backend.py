"""What a store backend provides, so that `Store` holds one contract over two engines.

`Store` owns the records' SQL (`_state`), which both engines run as written: `?`
placeholders, `ON CONFLICT`, `RETURNING`. A backend owns everything that differs: how it
connects and what its errors mean to a user, where an object's bytes live (a file beside
SQLite, a row in PostgreSQL), how transactions begin, the workspace locks (flock, or
advisory locks with a lock table), and the engine-specific parts of verify, repair and gc.

Like trio's `abc` module, this is a base class with the shared parts implemented once
(the mutex, error translation, transactions) and the rest abstract.
"""

from __future__ import annotations

import abc
import contextlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from ._errors import StoreError
from ._locks import WorkspaceLock
from ._records import GcReport, LockHolder, VerifyReport


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """The slice of a DB-API connection the store's SQL uses, with `?` placeholders."""

    def execute(self, sql: str, params: Sequence[object] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[object]], /) -> Any: ...


class Backend(abc.ABC):
    """One open store's engine. `Store` calls it; nothing else does."""

    location: str
    """How messages name the store (a directory, or a URL without its password)."""
    local_dir: Path
    """This machine's directory for bundles, the simulator and logs."""
    schema_version: int
    store_id: str
    shared: bool = False
    """A store other machines may use too (PostgreSQL)."""
    bug_errors: tuple[type[BaseException], ...] = ()
    """Exceptions that mean a bug of ours (a violated constraint): they keep a traceback."""
    user_errors: tuple[type[BaseException], ...] = ()
    """Exceptions the environment causes: `translate` turns them into a StoreError."""

    def __init__(self) -> None:
        self._mutex = threading.RLock()

    @property
    @abc.abstractmethod
    def conn(self) -> Conn | None:
        """The open connection, None once closed."""

    @abc.abstractmethod
    def translate(self, exc: BaseException, what: str) -> StoreError:
        """The StoreError a user sees when `what` failed with `exc`."""

    @abc.abstractmethod
    def begin(self, write: bool) -> str:
        """The statement opening a write (or a consistent read) transaction."""

    @abc.abstractmethod
    def close(self) -> None: ...

    # -- objects -----------------------------------------------------------------------

    @abc.abstractmethod
    def save_blob(self, conn: Conn, digest: str, data: bytes, known: bool) -> None:
        """Make the bytes durable before their row is committed (the row is the proof)."""

    @abc.abstractmethod
    def insert_object(self, conn: Conn, digest: str, data: bytes, now: float) -> None:
        """The object's row, inside the caller's transaction; a no-op if it exists."""

    @abc.abstractmethod
    def load_blob(self, conn: Conn, digest: str) -> bytes:
        """The object's bytes, re-hashed: damage is a StoreError."""

    # -- locks and maintenance ---------------------------------------------------------

    @abc.abstractmethod
    def lock_workspace(self, workspace: str, plan: str, wait: float) -> WorkspaceLock: ...

    @abc.abstractmethod
    def break_lock(self, workspace: str) -> LockHolder | None:
        """Release a lock whose holder is gone (`pveplan store unlock`); who held it."""

    @abc.abstractmethod
    def verify(self, conn: Conn) -> VerifyReport: ...

    @abc.abstractmethod
    def repair(self, conn: Conn) -> tuple[str, ...]: ...

    @abc.abstractmethod
    def gc(self, conn: Conn, keep_runs: int) -> GcReport: ...

    @abc.abstractmethod
    def after_copy(self, conn: Conn) -> None:
        """Catch up after rows were inserted with their ids (`copy_store`)."""

    # -- shared ------------------------------------------------------------------------

    @contextlib.contextmanager
    def guard(self, what: str) -> Iterator[Conn]:
        """The connection, for one operation; environment failures become StoreError."""
        with self._mutex:
            conn = self.conn
            if conn is None:
                raise RuntimeError(f"store at {self.location} is closed")
            try:
                yield conn
            except self.bug_errors:
                raise
            except self.user_errors as exc:
                raise self.translate(exc, what) from exc

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[Conn]:
        """One transaction on the guarded connection; rolled back on any exception."""
        conn = self.conn
        assert conn is not None
        conn.execute(self.begin(write))
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(*self.user_errors, *self.bug_errors):
                conn.execute("ROLLBACK")
            raise
