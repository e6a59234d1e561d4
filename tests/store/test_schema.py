"""Schema versions: fresh stores, migration from version 1, and refusing newer stores."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pveplan.store import MIGRATIONS, SCHEMA_VERSION, StoreError, open_store
from pveplan.store._schema import connect, migrate, statements


def meta(root: Path) -> dict[str, str]:
    conn = sqlite3.connect(root / "store.sqlite")
    try:
        return dict(conn.execute("SELECT key, value FROM meta"))
    finally:
        conn.close()


def indexes(root: Path) -> set[str]:
    conn = sqlite3.connect(root / "store.sqlite")
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        conn.close()


def test_a_fresh_store_is_at_the_latest_version(root: Path) -> None:
    assert len(MIGRATIONS) == SCHEMA_VERSION >= 2
    with open_store(root) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert len(store.store_id) == 32
        store_id = store.store_id
    assert meta(root)["schema_version"] == str(SCHEMA_VERSION)
    assert "results_address" in indexes(root)  # migration 2 ran
    assert (root / "store.sqlite").is_file()
    assert (root.stat().st_mode & 0o777) == 0o700
    for sub in ("objects", "tmp", "locks"):
        assert (root / sub).is_dir()
    with open_store(root) as store:  # reopening migrates nothing and keeps the identity
        assert store.store_id == store_id


def test_the_connection_is_wal_with_full_sync_and_foreign_keys(root: Path) -> None:
    open_store(root).close()
    conn = connect(root / "store.sqlite")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    finally:
        conn.close()


def test_a_version_1_store_is_migrated_and_keeps_its_data(root: Path) -> None:
    root.mkdir()
    conn = connect(root / "store.sqlite")
    assert migrate(conn, root, MIGRATIONS[:1]) == 1
    conn.execute(
        "INSERT INTO results (run_key, step_hash, address, kind, status, outputs, error,"
        " run_id, started, finished) VALUES ('rk', 'sh', 'node.a.create', 'k', 'ok',"
        " '{\"ip\":\"10.0.0.5\"}', '', NULL, 1.0, 2.0)"
    )
    conn.execute("INSERT INTO applied (workspace, plan_hash, updated) VALUES ('ws', 'p', 1.0)")
    conn.close()
    assert meta(root)["schema_version"] == "1"
    assert "results_address" not in indexes(root)

    with open_store(root) as store:
        assert store.schema_version == SCHEMA_VERSION
        result = store.get_result("rk")
        assert result is not None and result.outputs == {"ip": "10.0.0.5"}
        applied = store.applied("ws")
        assert applied is not None and applied.plan_hash == "p"
    assert meta(root)["schema_version"] == str(SCHEMA_VERSION)
    assert "results_address" in indexes(root)


def test_a_store_from_a_newer_pveplan_is_refused(root: Path) -> None:
    open_store(root).close()
    conn = sqlite3.connect(root / "store.sqlite")
    conn.execute(
        "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 5),)
    )
    conn.commit()
    conn.close()
    with pytest.raises(StoreError) as info:
        open_store(root)
    assert info.value.summary == (
        f"store at {root} has schema version {SCHEMA_VERSION + 5}; "
        f"this pveplan knows up to {SCHEMA_VERSION}"
    )
    assert "upgrade pveplan" in info.value.detail
    assert meta(root)["schema_version"] == str(SCHEMA_VERSION + 5)  # untouched
    # The refusal released everything: the store lock is free again.
    conn = sqlite3.connect(root / "store.sqlite")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
    conn.commit()
    conn.close()
    with open_store(root) as store:
        store.gc()


def test_a_failing_migration_leaves_the_previous_version_intact(root: Path) -> None:
    root.mkdir()
    conn = connect(root / "store.sqlite")
    broken = "CREATE TABLE half_done (a INTEGER);\nINSERT INTO no_such_table VALUES (1);\n"
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, root, [MIGRATIONS[0], broken])
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert "results" in tables and "half_done" not in tables
    assert meta(root)["schema_version"] == "1"
    with open_store(root) as store:  # the real migration 2 still applies
        assert store.schema_version == SCHEMA_VERSION


def test_a_database_that_is_not_a_store_is_refused(root: Path) -> None:
    root.mkdir()
    conn = sqlite3.connect(root / "store.sqlite")
    conn.execute("CREATE TABLE something_else (x)")
    conn.close()
    with pytest.raises(StoreError, match="is not a pveplan store database"):
        open_store(root)


def test_migration_scripts_split_into_whole_statements() -> None:
    for script in MIGRATIONS:
        for statement in statements(script):
            assert sqlite3.complete_statement(statement)
    assert statements("CREATE TABLE a (x);\n-- trailing comment\n") == ["CREATE TABLE a (x);"]
    with pytest.raises(ValueError, match="incomplete statement"):
        statements("CREATE TABLE a (x")
