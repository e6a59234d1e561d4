"""Row checksums: the rows that decide what is applied, skipped or destroyed carry their own.

Objects are re-hashed on every read, but a database row is just bytes in a page, and
SQLite keeps no checksums: a flipped byte in an applied plan hash or a cached result's
outputs would be used silently (a step skipped that should run, a VM destroyed by the
wrong id). So each row of the tables in `SEALED` carries `row_hash`, the xxh3-128 of its
table name and covered columns, written with the row and checked whenever it is read;
`verify` checks every one, and `repair` drops those that fail.

This guards against damage (disks, bugs, a hand edit that forgot the checksum), not an
attacker who can write the database: such a one can recompute the hash. The same function
is registered in SQLite (`pveplan_row_hash`) so the migration that added the column could
seal the rows already there.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import xxhash

from ._errors import StoreError

SEALED: dict[str, tuple[str, ...]] = {
    "applied": ("workspace", "plan_hash", "updated"),
    "applied_steps": ("workspace", "address", "step_hash"),
    "results": (
        "run_key",
        "step_hash",
        "address",
        "kind",
        "status",
        "outputs",
        "error",
        "run_id",
        "started",
        "finished",
    ),
    "resources": ("workspace", "address", "kind", "outputs", "updated"),
    "plans": ("plan_hash", "object", "workspace", "created"),
    "secrets": ("name", "value", "updated"),
}
"""Table -> the columns its checksum covers, in order."""

_NAMES = {
    "applied": ("the applied state of {0}", 0),
    "applied_steps": ("the applied step {1} of {0}", 0),
    "results": ("the recorded result of {2} (run key {0})", None),
    "resources": ("resource {1} of {0}", 0),
    "plans": ("the record of plan {0}", None),
    "secrets": ("the run-time secret {0}", None),
}
"""How to name a row of each table in a message, and which column is its workspace."""

SQL_FUNCTION = "pveplan_row_hash"


def row_hash(table: str, *values: object) -> str:
    """The checksum of one row: xxh3-128 of [table, values...] as JSON (bytes as base64)."""
    return xxhash.xxh3_128_hexdigest(msgspec.json.encode([table, *values]))


def register(conn: sqlite3.Connection) -> None:
    """Make `pveplan_row_hash(table, values...)` callable from SQL (the migration uses it)."""
    conn.create_function(SQL_FUNCTION, -1, row_hash, deterministic=True)


def describe(table: str, values: Sequence[object]) -> str:
    template, _ = _NAMES[table]
    return template.format(*values)


def workspace_of(table: str, values: Sequence[object]) -> str | None:
    _, column = _NAMES[table]
    return str(values[column]) if column is not None else None


class DamagedRow(StoreError):
    """A row whose checksum does not match: it is reported, never used."""


def damaged(table: str, values: Sequence[object], root: str | Path) -> DamagedRow:
    return DamagedRow(
        f"the store at {root} is damaged: {describe(table, values)} does not match its "
        "checksum, so pveplan will not use it",
        "run `pveplan store verify` to list all damage, then `pveplan store repair` to drop "
        "what cannot be trusted (a dropped applied state or resource is re-adopted from the "
        "host by the next `apply --refresh`; `destroy --discover` finds VMs by their tags)",
    )


def check(table: str, values: Sequence[object], stored: object, root: str | Path) -> None:
    """Raise `DamagedRow` unless `stored` is the checksum of `values`."""
    if stored != row_hash(table, *values):
        raise damaged(table, values, root)


def select_sealed(table: str, rowid: str = "rowid") -> str:
    """`SELECT <rowid>, <covered columns>, row_hash FROM table` (names are constants);
    `rowid` is the engine's row identifier (SQLite's rowid, PostgreSQL's ctid)."""
    return f"SELECT {rowid}, {', '.join(SEALED[table])}, row_hash FROM {table}"


def damaged_rows(
    conn: Any, rowid: str = "rowid"
) -> Iterator[tuple[str, object, tuple[object, ...]]]:
    """Every row of every sealed table whose checksum fails: (table, rowid, values)."""
    for table in SEALED:
        for rowid_value, *rest in conn.execute(select_sealed(table, rowid)):
            values, stored = tuple(rest[:-1]), rest[-1]
            if stored != row_hash(table, *values):
                yield table, rowid_value, values
