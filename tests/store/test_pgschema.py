"""A PostgreSQL store's schema: created on first use, migrated once by concurrent openers,
and a failing migration leaves the previous version whole."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from pveplan.store import StoreError, open_store
from pveplan.store._pgschema import PG_MIGRATIONS, PG_SCHEMA_VERSION, migrate
from tests._postgres import PostgresDatabase, PostgresServer

from .conftest import python

OPEN = r"""
import sys
from pveplan.store import open_store
with open_store(sys.argv[1]) as s:
    print(s.store_id, s.schema_version)
"""


def url(db: PostgresDatabase) -> str:
    return db.dsn.replace("pveplan@", f"pveplan:{db.password}@", 1)


def test_a_fresh_database_becomes_a_store_at_the_latest_version(
    postgres_db: PostgresDatabase,
) -> None:
    with open_store(url(postgres_db)) as store:
        assert store.schema_version == PG_SCHEMA_VERSION
        assert len(store.store_id) == 32
    with postgres_db.connect() as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    assert version == (str(PG_SCHEMA_VERSION),)


def test_processes_opening_a_new_store_at_once_create_it_once(
    postgres_db: PostgresDatabase,
) -> None:
    children = [python(OPEN, url(postgres_db), stdout=subprocess.PIPE) for _ in range(4)]
    answers = {child.communicate(timeout=30)[0].strip() for child in children}
    assert all(child.returncode == 0 for child in children)
    assert len(answers) == 1  # one store id: nobody made a second store


def test_a_failing_migration_leaves_the_previous_version_intact(
    postgres_db: PostgresDatabase,
) -> None:
    broken = [*PG_MIGRATIONS, "CREATE TABLE extra (x int); SELECT no_such_function();"]
    with postgres_db.connect(autocommit=True) as conn:
        assert migrate(conn, "test", PG_MIGRATIONS) == PG_SCHEMA_VERSION
        with pytest.raises(psycopg.Error):
            migrate(conn, "test", broken)
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        extra = conn.execute("SELECT to_regclass('extra')").fetchone()
    assert version == (str(PG_SCHEMA_VERSION),) and extra == (None,)


def test_a_role_that_may_not_create_tables_gets_a_clear_error(
    postgres_server: PostgresServer, postgres_db: PostgresDatabase
) -> None:
    with postgres_server.superuser(postgres_db.name) as admin:
        admin.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        admin.execute("DROP ROLE IF EXISTS reader")
        admin.execute("CREATE ROLE reader LOGIN PASSWORD 'reader-pw'")
    reader = postgres_db.dsn.replace("pveplan@", "reader:reader-pw@", 1)
    with pytest.raises(StoreError) as info:
        open_store(reader)
    assert "privilege" in info.value.summary and "reader-pw" not in str(info.value.detail)
