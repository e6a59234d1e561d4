"""StoreError: the store's root error, and the one place OS and SQLite failures become it.

`store` imports nothing else of pveplan's, so it cannot reuse `dsl.DiagnosticError`; it
defines the same shape instead (`summary`, `detail`, `location`, `diagnostics` made of
objects with `summary`, `detail`, `location`, `severity`), which is all the CLI's renderer
reads. A store problem has no source position, so `location` is always None.

Failures the user's machine causes (an unwritable directory, a full disk, a damaged
database file, a busy store) must reach the user as one clear sentence and a hint, never
as a sqlite3 or OSError traceback: `from_exception` is where that translation happens.
Programming errors (a closed store, a malformed argument) stay ordinary exceptions with
their traceback.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import msgspec


class StoreDiagnostic(msgspec.Struct, frozen=True, kw_only=True):
    """One problem, shaped like `dsl.Diagnostic` so one renderer serves every package."""

    summary: str
    detail: str = ""
    location: None = None
    severity: str = "error"


class StoreError(Exception):
    """The store cannot do what was asked, for a reason the user can act on."""

    def __init__(self, summary: str, detail: str = "") -> None:
        self.summary = summary
        self.detail = detail
        self.location = None
        self.diagnostics: tuple[StoreDiagnostic, ...] = (
            StoreDiagnostic(summary=summary, detail=detail),
        )
        super().__init__(summary)


_FULL = {errno.ENOSPC, errno.EDQUOT}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


def from_exception(exc: BaseException, what: str, root: Path) -> StoreError:
    """The StoreError a user should see when `what` ("record a step result") failed.

    `root` is the store directory, named in every message so the user knows which store
    (there may be several: one per `PVEPLAN_STORE`) is in trouble.
    """
    if isinstance(exc, StoreError):
        return exc
    name = getattr(exc, "sqlite_errorname", "") or ""
    err = getattr(exc, "errno", None)
    text = getattr(exc, "strerror", None) or str(exc)
    if err in _FULL or name.startswith("SQLITE_FULL"):
        return StoreError(
            f"cannot {what}: the disk holding the store at {root} is full",
            "free some space (`pveplan store gc` removes unreachable objects) and retry; "
            "everything recorded before this error is intact",
        )
    if err in _DENIED or name.startswith(("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_CANTOPEN")):
        return StoreError(
            f"cannot {what}: the store at {root} is not writable ({text})",
            "check the owner and permissions of that directory, "
            "or set PVEPLAN_STORE to a writable directory",
        )
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or (
        isinstance(exc, sqlite3.DatabaseError)
        and any(s in text for s in ("not a database", "malformed"))
    ):
        return StoreError(
            f"cannot {what}: the store database {root / 'store.sqlite'} is unreadable ({text})",
            "the file is damaged or is not a pveplan store; move it aside to start an empty "
            "store (objects/ may stay, `pveplan store gc` tidies it), or restore a backup",
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StoreError(
            f"cannot {what}: the store at {root} is busy",
            "another pveplan process kept the database locked longer than the busy "
            "timeout; retry when it has finished",
        )
    if isinstance(exc, msgspec.DecodeError):
        return StoreError(
            f"cannot {what}: a record in the store at {root} is malformed ({exc})",
            "run `pveplan store verify`; the database was changed by something other "
            "than pveplan or is damaged",
        )
    return StoreError(f"cannot {what}: store at {root}: {text}")
