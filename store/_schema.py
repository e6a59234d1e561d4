"""The database: how it is opened, its tables, and the migrations between their versions.

`MIGRATIONS[i]` takes a store from schema version i to i+1; each runs in one
transaction together with the bump of `meta.schema_version`, so a kill mid-migration
leaves the previous version intact and the next open simply runs it again. Migrations
are append-only: once released, a script never changes (stores in the wild ran it).

A store made by a newer pveplan (a version past `len(MIGRATIONS)`) is refused, not
guessed at: an older pveplan cannot know what the newer tables mean.

Connections use WAL with `synchronous=FULL`: a commit returns only after the WAL is on
disk, so a recorded result survives a kill or a power cut, and readers never block the
writer. Foreign keys are on, so no row can name a plan or object the store lacks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._errors import StoreError
from ._rowhash import register as register_row_hash

BUSY_TIMEOUT_S = 30.0
"""How long a writer waits for another process's transaction before giving up."""

MIGRATIONS: list[str] = [
    # 1: the initial schema.
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    INSERT INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))));

    CREATE TABLE objects (
        hash    TEXT PRIMARY KEY,
        size    INTEGER NOT NULL,
        created REAL NOT NULL
    );
    -- object -> the objects it embeds (a plan -> its subplans), followed by gc.
    CREATE TABLE object_refs (
        object TEXT NOT NULL REFERENCES objects (hash) ON DELETE CASCADE,
        ref    TEXT NOT NULL REFERENCES objects (hash) DEFERRABLE INITIALLY DEFERRED,
        PRIMARY KEY (object, ref)
    );
    CREATE INDEX object_refs_ref ON object_refs (ref);

    -- A plan hash is the planner's Merkle root, not the hash of the stored bytes.
    CREATE TABLE plans (
        plan_hash TEXT PRIMARY KEY,
        object    TEXT NOT NULL REFERENCES objects (hash),
        workspace TEXT NOT NULL,
        created   REAL NOT NULL
    );
    CREATE INDEX plans_object ON plans (object);

    CREATE TABLE results (
        id        INTEGER PRIMARY KEY,
        run_key   TEXT NOT NULL,
        step_hash TEXT NOT NULL,
        address   TEXT NOT NULL,
        kind      TEXT NOT NULL,
        status    TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
        outputs   TEXT NOT NULL,
        error     TEXT NOT NULL,
        run_id    INTEGER,
        started   REAL NOT NULL,
        finished  REAL NOT NULL
    );
    CREATE INDEX results_run_key ON results (run_key);

    CREATE TABLE applied (
        workspace TEXT PRIMARY KEY,
        plan_hash TEXT NOT NULL,
        updated   REAL NOT NULL
    );
    CREATE TABLE applied_steps (
        workspace TEXT NOT NULL REFERENCES applied (workspace) ON DELETE CASCADE,
        address   TEXT NOT NULL,
        step_hash TEXT NOT NULL,
        PRIMARY KEY (workspace, address)
    );

    CREATE TABLE resources (
        workspace TEXT NOT NULL,
        address   TEXT NOT NULL,
        kind      TEXT NOT NULL,
        outputs   TEXT NOT NULL,
        updated   REAL NOT NULL,
        PRIMARY KEY (workspace, address)
    );

    CREATE TABLE runs (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        workspace TEXT NOT NULL,
        plan_hash TEXT NOT NULL,
        verb      TEXT NOT NULL,
        status    TEXT NOT NULL,
        started   REAL NOT NULL,
        finished  REAL
    );
    CREATE INDEX runs_workspace ON runs (workspace, id);
    CREATE TABLE run_events (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id   INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        address  TEXT NOT NULL,
        kind     TEXT NOT NULL
                 CHECK (kind IN ('started', 'finished', 'cached', 'failed', 'log')),
        message  TEXT NOT NULL,
        at       REAL NOT NULL,
        duration REAL,
        host     TEXT
    );
    CREATE INDEX run_events_run ON run_events (run_id, id);
    """,
    # 2: a step's history by address (`pveplan state show ADDRESS`).
    """
    CREATE INDEX results_address ON results (address, finished);
    """,
    # 3: secrets the executor makes at run time (the driver's SSH key, each VM's host
    # key): never in a plan, never in an object (objects are shipped and shown).
    """
    CREATE TABLE secrets (
        name    TEXT PRIMARY KEY,
        value   BLOB NOT NULL,
        updated REAL NOT NULL
    );
    """,
    # 4: row checksums (`_rowhash`): the rows that decide what is applied, skipped or
    # destroyed carry the xxh3-128 of their contents, checked on every read. Rows that
    # exist already are sealed as they are (they were trusted until now).
    """
    ALTER TABLE applied ADD COLUMN row_hash TEXT;
    UPDATE applied SET row_hash =
        pveplan_row_hash('applied', workspace, plan_hash, updated);
    ALTER TABLE applied_steps ADD COLUMN row_hash TEXT;
    UPDATE applied_steps SET row_hash =
        pveplan_row_hash('applied_steps', workspace, address, step_hash);
    ALTER TABLE results ADD COLUMN row_hash TEXT;
    UPDATE results SET row_hash = pveplan_row_hash('results', run_key, step_hash, address,
        kind, status, outputs, error, run_id, started, finished);
    ALTER TABLE resources ADD COLUMN row_hash TEXT;
    UPDATE resources SET row_hash =
        pveplan_row_hash('resources', workspace, address, kind, outputs, updated);
    ALTER TABLE plans ADD COLUMN row_hash TEXT;
    UPDATE plans SET row_hash = pveplan_row_hash('plans', plan_hash, object, workspace, created);
    ALTER TABLE secrets ADD COLUMN row_hash TEXT;
    UPDATE secrets SET row_hash = pveplan_row_hash('secrets', name, value, updated);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def connect(database: Path) -> sqlite3.Connection:
    """A connection with the store's settings; transactions are explicit (BEGIN IMMEDIATE).

    `check_same_thread` is off because the executor may hand the store to worker threads;
    `Store` serialises its own use of the connection with a lock.
    """
    conn = sqlite3.connect(
        database, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        register_row_hash(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def schema_version(conn: sqlite3.Connection, root: Path) -> int:
    """The version recorded in `meta`; 0 for an empty database."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "meta" not in tables:
        if tables - {"sqlite_sequence"}:
            raise StoreError(
                f"{root / 'store.sqlite'} is not a pveplan store database",
                "point PVEPLAN_STORE at an empty or pveplan-owned directory",
            )
        return 0
    return recorded_version(conn, root)


def recorded_version(conn: Any, location: str | Path) -> int:
    """`meta.schema_version` of a store whose `meta` table exists (either engine)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    try:
        return int(row[0]) if row else 0
    except ValueError:
        raise StoreError(
            f"store at {location} has an unreadable schema version {row[0]!r}",
            "the database was changed by something other than pveplan",
        ) from None


def too_new(location: str | Path, version: int, known: int) -> StoreError:
    return StoreError(
        f"store at {location} has schema version {version}; this pveplan knows up to {known}",
        "a newer pveplan wrote this store: upgrade pveplan, "
        "or point PVEPLAN_STORE at another store",
    )


def statements(script: str) -> list[str]:
    """Split a migration script into single statements (sqlite3 runs one at a time).

    `executescript` cannot be used: it commits any open transaction first, which would
    break "one migration, one transaction".
    """
    out: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            out.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in buffer.splitlines()
    ):
        raise ValueError(f"migration ends with an incomplete statement: {buffer.strip()!r}")
    return out


def migrate(conn: sqlite3.Connection, root: Path, migrations: Sequence[str] = MIGRATIONS) -> int:
    """Bring the database up to `len(migrations)`, one transaction per migration.

    Safe against a concurrent opener: each step re-reads the version inside its
    write transaction and skips what the other process already did. Returns the
    version the database ends at.
    """
    known = len(migrations)
    version = schema_version(conn, root)
    if version > known:
        raise too_new(root, version, known)
    for target in range(version + 1, known + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = schema_version(conn, root)
            if current > known:
                raise too_new(root, current, known)
            if current < target:
                for statement in statements(migrations[target - 1]):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(target),),
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return max(version, known)
