"""`verify` (is every stored thing intact?) and `gc` (remove what nothing can reach).

Roots, for gc: the plan of every workspace's applied state; the plans of the last
`keep_runs` runs of each workspace; and any object hash found under the output key
"object" of a live resource or of a successful step result (a cached result must not
outlive the object it names). From the roots, gc follows the recorded refs (a plan ->
its subplans) transitively; every other object is garbage, as are orphan files and
tmp/ leftovers.

gc deletes rows first and files second, in that order: a crash in between leaves files
without rows (orphans, removed next time), never a row without its file. Deleting the
rows of unreachable objects never breaks a reference, since anything that refers to an
unreachable object is itself unreachable. The caller holds the store lock exclusively,
so no writer can be between "blob written" and "row committed" while gc runs.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec

from ._blobs import fsync_dir
from ._layout import Layout, is_object_hash, object_hash
from ._records import OBJECT_KEY, GcReport, VerifyReport
from ._rowhash import damaged_rows, describe, workspace_of
from ._state import decode_outputs

_MAX_DB_LINES = 10
"""integrity_check can list thousands of lines for one bad page; the first few say enough."""


def verify(conn: sqlite3.Connection, layout: Layout) -> VerifyReport:
    """Check the database, then re-hash every object, then look for strays."""
    problems: list[str] = []
    collectable: list[str] = []
    objects: dict[str, int] = {}
    try:
        problems.extend(_database_problems(conn, layout))
        objects = dict(conn.execute("SELECT hash, size FROM objects"))
        problems.extend(row_problems(conn, objects, "rowid"))
    except (sqlite3.DatabaseError, msgspec.DecodeError) as exc:
        problems.append(f"database {layout.database} is unreadable: {exc}")

    checked = 0
    for digest, size in sorted(objects.items()):
        path = layout.object_path(digest) if is_object_hash(digest) else None
        if path is None:
            problems.append(f"object {digest!r}: the row's hash is malformed")
            continue
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            problems.append(f"object {digest}: row without file ({path} is missing)")
            continue
        except OSError as exc:
            problems.append(f"object {digest}: unreadable file {path} ({exc.strerror or exc})")
            continue
        checked += 1
        actual = object_hash(data)
        if actual != digest:
            problems.append(f"object {digest}: hash mismatch ({path} hashes to {actual})")
        elif len(data) != size:
            problems.append(f"object {digest}: row says {size} bytes, {path} has {len(data)}")

    for path in layout.object_files():
        if not _is_object_file(path):
            note = f"stray file {path} in objects/ (gc removes it)"
        elif path.name not in objects:
            note = f"object {path.name}: file without row (orphan {path}; gc removes it)"
        else:
            continue
        problems.append(note)
        collectable.append(note)
    for path in layout.tmp_files():
        note = f"tmp leftover {path} (an interrupted write; gc removes it)"
        problems.append(note)
        collectable.append(note)
    return VerifyReport(
        objects_checked=checked, problems=tuple(problems), collectable=tuple(collectable)
    )


def _database_problems(conn: sqlite3.Connection, layout: Layout) -> Iterator[str]:
    lines = [
        part
        for (text,) in conn.execute("PRAGMA integrity_check")
        for part in str(text).splitlines()
        if part != "ok" and not part.startswith("***")
    ]
    for line in lines[:_MAX_DB_LINES]:
        yield f"database {layout.database} is damaged: {line}"
    if len(lines) > _MAX_DB_LINES:
        yield f"database {layout.database} is damaged: {len(lines) - _MAX_DB_LINES} more problems"
    for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check"):
        yield f"database {layout.database}: row {rowid} of {table} names a missing {parent} row"


def row_problems(conn: Any, objects: Mapping[str, int], rowid: str) -> Iterator[str]:
    """Rows whose checksums fail, and outputs naming objects the store lacks (any engine)."""
    for table, _, values in damaged_rows(conn, rowid):
        yield f"{describe(table, values)}: row checksum mismatch (`pveplan store repair` drops it)"
    yield from dangling_outputs(conn, objects)


def dangling_outputs(conn: Any, objects: Mapping[str, int]) -> Iterator[str]:
    """Results and resources whose "object" output names an object the store lacks."""
    for what, ref in output_objects(conn):
        if ref not in objects:
            yield f"{what}: output object {ref} is not in the store"


def output_objects(conn: Any) -> Iterator[tuple[str, str]]:
    rows = conn.execute(
        "SELECT 'result ' || run_key || ' (' || address || ')', outputs FROM results"
        " WHERE status = 'ok' UNION ALL"
        " SELECT 'resource ' || address || ' of ' || workspace, outputs FROM resources"
    )
    for what, raw in rows:
        ref = decode_outputs(raw).get(OBJECT_KEY)
        if is_object_hash(ref):
            assert isinstance(ref, str)
            yield what, ref


def _is_object_file(path: Path) -> bool:
    return is_object_hash(path.name) and path.parent.name == path.name[:2]


def roots(conn: Any, keep_runs: int) -> set[str]:
    """The objects gc must keep even if nothing refers to them (see the module doc)."""
    found = {
        obj
        for (obj,) in conn.execute(
            "SELECT plans.object FROM applied JOIN plans USING (plan_hash)"
            " UNION SELECT plans.object FROM plans WHERE plan_hash IN ("
            "  SELECT plan_hash FROM (SELECT plan_hash, row_number() OVER"
            "   (PARTITION BY workspace ORDER BY id DESC) AS n FROM runs) AS recent WHERE n <= ?)",
            (keep_runs,),
        )
    }
    found.update(ref for _, ref in output_objects(conn))
    return found


def reachable(conn: Any, start: set[str]) -> set[str]:
    """`start` and everything its recorded refs reach, transitively."""
    refs: dict[str, list[str]] = {}
    for obj, ref in conn.execute("SELECT object, ref FROM object_refs"):
        refs.setdefault(obj, []).append(ref)
    seen: set[str] = set()
    todo = list(start)
    while todo:
        digest = todo.pop()
        if digest in seen:
            continue
        seen.add(digest)
        todo.extend(refs.get(digest, ()))
    return seen


def drop_unreachable(conn: Any, keep_runs: int) -> tuple[dict[str, int], set[str], list[str]]:
    """Delete the rows of unreachable objects (in the caller's transaction); every
    object's size, the live set, and the dead hashes."""
    sizes = dict(conn.execute("SELECT hash, size FROM objects"))
    live = reachable(conn, roots(conn, keep_runs)) & sizes.keys()
    dead = sorted(sizes.keys() - live)
    conn.executemany("DELETE FROM plans WHERE object = ?", [(d,) for d in dead])
    conn.executemany("DELETE FROM objects WHERE hash = ?", [(d,) for d in dead])
    return sizes, live, dead


def collect(
    conn: sqlite3.Connection,
    layout: Layout,
    keep_runs: int,
    transaction: Callable[[], contextlib.AbstractContextManager[object]],
) -> GcReport:
    """Delete unreachable objects (rows, then files), orphan files and tmp/ leftovers."""
    with transaction():
        sizes, live, dead = drop_unreachable(conn, keep_runs)

    freed = 0
    orphans = 0
    touched: set[Path] = set()
    for path in layout.object_files():
        if _is_object_file(path) and path.name in live:
            continue
        freed += _unlink(path)
        touched.add(path.parent)
        if path.name not in sizes:
            orphans += 1
    tmp = 0
    for path in layout.tmp_files():
        freed += _unlink(path)
        tmp += 1
    for directory in sorted(touched):
        with contextlib.suppress(OSError):
            if any(directory.iterdir()):
                fsync_dir(directory)
            else:
                directory.rmdir()
    with contextlib.suppress(sqlite3.Error):
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return GcReport(
        objects_removed=len(dead),
        bytes_freed=freed,
        orphans_removed=orphans,
        tmp_removed=tmp,
        objects_kept=len(live),
    )


def _unlink(path: Path) -> int:
    """Remove a file (or a directory tree left in tmp/); the bytes it held."""
    try:
        if path.is_dir() and not path.is_symlink():
            size = sum(_unlink(child) for child in path.iterdir())
            path.rmdir()
            return size
        size = path.lstat().st_size
        path.unlink()
        return size
    except FileNotFoundError:
        return 0


def repair(
    conn: Any,
    transaction: Callable[[], contextlib.AbstractContextManager[object]],
    rowid: str,
) -> tuple[str, ...]:
    """Drop every row whose checksum fails, in one transaction; what was dropped.

    What cannot be trusted is forgotten, never guessed at: a damaged applied state (or
    one of its steps) drops the workspace's whole applied state, so the next plan starts
    from what the host has; a damaged result, resource, plan record or secret drops that
    row alone (a forgotten result re-runs its step, which adopts what exists).
    """
    dropped: list[str] = []
    with transaction():
        for table, rowid_value, values in list(damaged_rows(conn, rowid)):
            dropped.append(describe(table, values))
            if table in ("applied", "applied_steps"):
                workspace = workspace_of(table, values)
                conn.execute("DELETE FROM applied WHERE workspace = ?", (workspace,))
                conn.execute("DELETE FROM applied_steps WHERE workspace = ?", (workspace,))
            else:
                conn.execute(f"DELETE FROM {table} WHERE {rowid} = ?", (rowid_value,))
    return tuple(dropped)
