"""The PostgreSQL backend: the store a team shares, in a database its users already run.

Same records, same contract as the local store (`_local`): objects are rows whose bytes
are re-hashed on every read, every write is one transaction committed before the method
returns, the sealed rows carry their checksums. What changes is the engine's: psycopg 3
over libpq (a connection in autocommit mode, explicit transactions; reads that span
several statements run REPEATABLE READ so they see one snapshot), advisory locks for the
workspaces and for gc (`_pglocks`), and errors translated into what a user can act on:
an unreachable server, a refused password, a missing privilege.

The password never appears in a URL this module logs or shows (`StoreAddress` keeps it
apart). TLS: `locate_store` makes a server that is not on this machine verified
(`sslmode=verify-full` against the system's CAs) unless the URL or PGSSLMODE says otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from . import _maintenance
from ._address import StoreAddress
from ._backend import Backend, Conn, Cursor
from ._errors import StoreError
from ._layout import object_hash
from ._locks import WorkspaceLock
from ._pglocks import KEEPALIVES, SERVER_KEEPALIVES, STORE_KEY, PgWorkspaceLock, break_lock
from ._pgschema import migrate
from ._records import GcReport, LockHolder, VerifyReport

CONNECT_TIMEOUT_S = 10
ROWID = "ctid::text"
"""How a row is named for `repair` (PostgreSQL has no rowid; ctid is stable in a transaction)."""


@functools.lru_cache(maxsize=256)
def _placeholders(sql: str) -> str:
    """The store's `?` placeholders as psycopg's `%s` (a literal % doubled first)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgConn:
    """A psycopg connection that speaks the store's SQL (`?` placeholders)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[object] = (), /) -> Cursor:
        if not params:
            return self.raw.execute(sql)  # type: ignore[no-any-return]
        return self.raw.execute(_placeholders(sql), tuple(params))  # type: ignore[no-any-return]

    def executemany(self, sql: str, rows: Iterable[Sequence[object]], /) -> None:
        batch = [tuple(row) for row in rows]
        if batch:
            with self.raw.cursor() as cursor:
                cursor.executemany(_placeholders(sql), batch)


def connection_options(address: StoreAddress) -> dict[str, Any]:
    """psycopg.connect's keyword arguments besides the URL: the password and timeouts
    (TLS verification is in the URL already: `locate_store` puts it there)."""
    options: dict[str, Any] = {
        "autocommit": True,
        "connect_timeout": CONNECT_TIMEOUT_S,
        "application_name": "pveplan",
    }
    if address.password is not None:
        options["password"] = address.password
    return options


def open_postgres(address: StoreAddress, wait: float) -> PostgresBackend:
    """Connect, take the store lock shared, migrate; every failure is a StoreError."""
    import psycopg

    assert address.url is not None
    options = connection_options(address)

    def connect(**extra: Any) -> Any:
        try:
            return psycopg.connect(address.url, **options, **extra)
        except psycopg.Error as exc:
            raise connect_error(exc, address.display) from None

    raw = connect()
    try:
        _take_shared(raw, address.display, wait)
        version = migrate(raw, address.display)
        store_id = raw.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0]
    except BaseException as exc:
        raw.close()
        if isinstance(exc, psycopg.Error):
            raise translate(exc, "open the store", address.display) from exc
        raise
    locks = functools.partial(connect, options=SERVER_KEEPALIVES, **KEEPALIVES)
    return PostgresBackend(address.display, address.local_dir, raw, locks, version, store_id)


def _take_shared(raw: Any, location: str, wait: float) -> None:
    deadline = time.monotonic() + wait
    while not raw.execute("SELECT pg_try_advisory_lock_shared(%s)", (STORE_KEY,)).fetchone()[0]:
        if time.monotonic() >= deadline:
            raise StoreError(
                f"store at {location} is busy: `pveplan store gc` is running",
                "retry when it has finished",
            )
        time.sleep(0.05)


def connect_error(exc: BaseException, location: str) -> StoreError:
    text = _first_line(exc)
    lowered = text.lower()
    if "password" in lowered:
        hint = (
            "give the store's password in $PVEPLAN_STORE_PASSWORD (or PGPASSWORD, "
            "~/.pgpass), or in the site's secrets.yaml (section store:, key password)"
        )
    elif "does not exist" in lowered:
        hint = "create it first (createdb -O USER DBNAME), or fix the URL"
    elif "certificate" in lowered or "ssl" in lowered:
        hint = (
            "the server's TLS certificate could not be verified: add sslrootcert=PATH to the "
            "URL (the CA that signed it), or sslmode=... if you accept the risk"
        )
    else:
        hint = "check that the server is up and reachable from here, and the URL"
    return StoreError(f"cannot reach the PostgreSQL store {location}: {text}", hint)


def translate(exc: BaseException, what: str, location: str) -> StoreError:
    """The StoreError for a failure of an open PostgreSQL store."""
    import psycopg

    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return StoreError(
            f"cannot {what}: the store's role lacks a privilege ({_first_line(exc)})",
            "pveplan's role must own its database (or have CREATE and USAGE on its schema); "
            "ask the database administrator, e.g. ALTER DATABASE ... OWNER TO ...",
        )
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return StoreError(
            f"cannot {what}: lost the connection to the PostgreSQL store {location} "
            f"({_first_line(exc)})",
            "check that the server is up and reachable, then retry; everything committed "
            "before this error is intact",
        )
    if isinstance(exc, msgspec.DecodeError):
        return StoreError(
            f"cannot {what}: a record in the store {location} is malformed ({exc})",
            "run `pveplan store verify`",
        )
    return StoreError(f"cannot {what}: store {location}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


class PostgresBackend(Backend):
    shared = True

    def __init__(
        self,
        location: str,
        local_dir: Path,
        raw: Any,
        connect_lock: Any,
        schema_version: int,
        store_id: str,
    ) -> None:
        import psycopg

        super().__init__()
        self.location = location
        self.local_dir = local_dir
        self.schema_version = schema_version
        self.store_id = store_id
        self._conn: PgConn | None = PgConn(raw)
        self._connect_lock = connect_lock
        self.bug_errors = (psycopg.errors.SyntaxError, psycopg.IntegrityError)
        self.user_errors = (psycopg.Error, msgspec.DecodeError, OSError)

    @property
    def conn(self) -> Conn | None:
        return self._conn

    def translate(self, exc: BaseException, what: str) -> StoreError:
        return translate(exc, what, self.location)

    def begin(self, write: bool) -> str:
        return "BEGIN" if write else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

    def close(self) -> None:
        with self._mutex:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.raw.close()

    # -- objects -----------------------------------------------------------------------

    def save_blob(self, conn: Conn, digest: str, data: bytes, known: bool) -> None:
        """Nothing before the row: the bytes are the row."""

    def insert_object(self, conn: Conn, digest: str, data: bytes, now: float) -> None:
        conn.execute(
            "INSERT INTO objects (hash, size, created, data) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (hash) DO NOTHING",
            (digest, len(data), now, data),
        )

    def load_blob(self, conn: Conn, digest: str) -> bytes:
        row = conn.execute("SELECT data FROM objects WHERE hash = ?", (digest,)).fetchone()
        if row is None:
            raise StoreError(f"object {digest} is not in the store {self.location}")
        data = bytes(row[0])
        actual = object_hash(data)
        if actual != digest:
            raise StoreError(
                f"object {digest} is corrupt: its bytes in {self.location} hash to {actual}",
                "the row changed after it was stored; run `pveplan store verify` to find "
                "every damaged object",
            )
        return data

    # -- locks and maintenance ---------------------------------------------------------

    def lock_workspace(self, workspace: str, plan: str, wait: float) -> WorkspaceLock:
        return PgWorkspaceLock(self._connect_lock, workspace, self.location, plan=plan, wait=wait)

    def break_lock(self, workspace: str) -> LockHolder | None:
        with self.guard(f"unlock workspace {workspace}") as conn:
            assert isinstance(conn, PgConn)
            return break_lock(conn.raw, workspace, self.location)

    def after_copy(self, conn: Conn) -> None:
        """Move the identity sequences past the ids the copy inserted."""
        for table in ("runs", "results", "run_events"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
            )

    def verify(self, conn: Conn) -> VerifyReport:
        problems: list[str] = []
        sizes = dict(conn.execute("SELECT hash, size FROM objects").fetchall())
        problems.extend(_maintenance.row_problems(conn, sizes, ROWID))
        checked = 0
        for digest, size in sorted(sizes.items()):
            row = conn.execute("SELECT data FROM objects WHERE hash = ?", (digest,)).fetchone()
            data = bytes(row[0]) if row else b""
            checked += 1
            actual = object_hash(data)
            if actual != digest:
                problems.append(f"object {digest}: hash mismatch (its bytes hash to {actual})")
            elif len(data) != size:
                problems.append(f"object {digest}: row says {size} bytes, it has {len(data)}")
        return VerifyReport(objects_checked=checked, problems=tuple(problems))

    def repair(self, conn: Conn) -> tuple[str, ...]:
        return _maintenance.repair(conn, self.transaction, ROWID)

    def gc(self, conn: Conn, keep_runs: int) -> GcReport:
        """Exclusive use of the store (no other session holds it shared), then one
        transaction deleting what no root reaches."""
        if not conn.execute("SELECT pg_try_advisory_lock(?)", (STORE_KEY,)).fetchone()[0]:
            raise StoreError(
                f"store {self.location} is in use by another pveplan process",
                "gc needs the store to itself so it never deletes what a running apply has "
                "just written; retry when the others (on any machine) have finished",
            )
        try:
            with self.transaction():
                sizes, live, dead = _maintenance.drop_unreachable(conn, keep_runs)
        finally:
            conn.execute("SELECT pg_advisory_unlock(?)", (STORE_KEY,))
        return GcReport(
            objects_removed=len(dead),
            bytes_freed=sum(sizes[d] for d in dead),
            objects_kept=len(live),
        )
