"""`copy_store`: move what one store holds into another, local to PostgreSQL or back.

A team starts a shared store from what one operator already applied: every object is read
back and re-hashed on the way (a damaged one stops the copy), every sealed row's checksum
is checked before it is copied, and run ids, results and events keep their identities, so
history reads the same on both sides. The copy is one transaction on the destination: it
lands whole or not at all. The destination must hold no records yet; merging two
histories is not a copy (which applied state would win?).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from ._backend import Backend, Conn
from ._errors import StoreError
from ._layout import object_hash
from ._rowhash import SEALED, check

if TYPE_CHECKING:
    from ._store import Store

TABLES: dict[str, tuple[str, ...]] = {
    "object_refs": ("object", "ref"),
    "plans": (*SEALED["plans"], "row_hash"),
    "runs": ("id", "workspace", "plan_hash", "verb", "status", "started", "finished"),
    "results": ("id", *SEALED["results"], "row_hash"),
    "run_events": ("id", "run_id", "address", "kind", "message", "at", "duration", "host"),
    "applied": (*SEALED["applied"], "row_hash"),
    "applied_steps": (*SEALED["applied_steps"], "row_hash"),
    "resources": (*SEALED["resources"], "row_hash"),
    "secrets": (*SEALED["secrets"], "row_hash"),
}
"""Every table but `objects` and `meta` (the store's own identity), in an order that
satisfies their references, with the columns that make a row what it is."""

RECORD_TABLES = ("objects", "plans", "runs", "results", "applied", "resources", "secrets")


class CopyReport(msgspec.Struct, frozen=True, kw_only=True):
    """What `copy_store` copied: objects (and their bytes), and rows per table."""

    objects: int
    bytes: int
    rows: dict[str, int]
    workspaces: tuple[str, ...]


def copy_store(source: Store, destination: Store) -> CopyReport:
    """Copy everything `source` holds into the empty `destination`, verifying as it goes."""
    if source.store_id == destination.store_id:
        raise StoreError(
            f"{source.location} and {destination.location} are the same store",
            "name two different stores: SRC and DST",
        )
    src, dst = source._backend, destination._backend
    with (
        src.guard(f"read the store {src.location}") as reading,
        src.transaction(write=False),
        dst.guard(f"copy into the store {dst.location}") as writing,
        dst.transaction(write=True),
    ):
        _refuse_unless_empty(writing, dst.location)
        count, size = _copy_objects(src, dst, reading, writing)
        rows = {table: _copy_rows(table, reading, writing, src.location) for table in TABLES}
        dst.after_copy(writing)
    return CopyReport(objects=count, bytes=size, rows=rows, workspaces=destination.workspaces())


def _refuse_unless_empty(conn: Conn, location: str) -> None:
    held = [t for t in RECORD_TABLES if conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()]
    if held:
        raise StoreError(
            f"the store {location} already holds records ({', '.join(held)})",
            "copy into an empty store (a new database or directory); merging two stores' "
            "histories is not supported",
        )


def _copy_objects(src: Backend, dst: Backend, reading: Conn, writing: Conn) -> tuple[int, int]:
    count = size = 0
    for (digest,) in reading.execute("SELECT hash FROM objects ORDER BY hash").fetchall():
        data = src.load_blob(reading, digest)  # re-hashed: damage stops the copy
        if object_hash(data) != digest:
            raise StoreError(f"object {digest} in {src.location} does not match its hash")
        dst.save_blob(writing, digest, data, False)
        dst.insert_object(writing, digest, data, _created(reading, digest))
        count, size = count + 1, size + len(data)
    return count, size


def _created(conn: Conn, digest: str) -> float:
    return float(
        conn.execute("SELECT created FROM objects WHERE hash = ?", (digest,)).fetchone()[0]
    )


def _copy_rows(table: str, reading: Conn, writing: Conn, location: str) -> int:
    columns = TABLES[table]
    rows = reading.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
    if table in SEALED:
        index = [columns.index(c) for c in SEALED[table]]
        for row in rows:
            check(table, [row[i] for i in index], row[-1], location)
    marks = ", ".join("?" for _ in columns)
    writing.executemany(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", [tuple(r) for r in rows]
    )
    return len(rows)
