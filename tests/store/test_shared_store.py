"""What only a PostgreSQL store has: its address (password kept apart, TLS by default),
its failures (unreachable, refused password, newer schema), and `copy_store` both ways."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pveplan.store import (
    DamagedRow,
    RunEvent,
    StepResult,
    Store,
    StoreError,
    copy_store,
    locate_store,
    open_store,
)
from tests._postgres import PostgresDatabase


@pytest.fixture
def shared(postgres_db: PostgresDatabase) -> str:
    return postgres_db.dsn.replace("pveplan@", f"pveplan:{postgres_db.password}@", 1)


# -- addresses ---------------------------------------------------------------------------


def test_the_environment_wins_then_the_site_then_the_local_default(tmp_path: Path) -> None:
    site = "postgresql://team@db.lab/pveplan"
    env = {"HOME": str(tmp_path)}
    assert locate_store(env).path == tmp_path / ".local" / "state" / "pveplan"
    assert locate_store(env, site).url is not None
    assert locate_store({**env, "PVEPLAN_STORE": str(tmp_path / "s")}, site).path == tmp_path / "s"
    chosen = locate_store({**env, "PVEPLAN_STORE": "postgresql://ci@127.0.0.1/x"}, site)
    assert chosen.url == "postgresql://ci@127.0.0.1/x"
    assert chosen.local_dir == tmp_path / ".cache" / "pveplan"


def test_a_password_in_the_environment_url_is_kept_apart_from_what_is_shown() -> None:
    where = locate_store({"PVEPLAN_STORE": "postgresql://ci:s3cr%40t@127.0.0.1:5433/lab"})
    assert where.password == "s3cr@t"
    assert where.display == "postgresql://ci@127.0.0.1:5433/lab"
    assert "s3cr" not in repr(where)


def test_a_password_in_the_site_config_url_is_refused() -> None:
    with pytest.raises(StoreError) as info:
        locate_store({}, "postgresql://team:pw@db.lab/pveplan")
    assert "password" in info.value.summary
    assert "pw@" not in info.value.summary + info.value.detail


def test_the_password_comes_from_the_environment_then_the_secrets() -> None:
    site = "postgresql://team@db.lab/pveplan"
    assert locate_store({}, site, "from-secrets").password == "from-secrets"
    env = {"PVEPLAN_STORE_PASSWORD": "from-env"}
    assert locate_store(env, site, "from-secrets").password == "from-env"


def test_a_server_off_this_machine_is_verified_unless_told_otherwise() -> None:
    remote = locate_store({}, "postgresql://team@db.lab/pveplan").display
    assert "sslmode=verify-full" in remote and "sslrootcert=system" in remote
    own = locate_store({}, "postgresql://team@db.lab/pveplan?sslmode=require").display
    assert own.endswith("?sslmode=require")
    assert "sslmode" not in locate_store({}, "postgresql://team@127.0.0.1/pveplan").display
    assert "sslmode" not in locate_store({"PGSSLMODE": "require"}, "postgresql://t@db/p").display


def test_a_url_without_a_database_is_refused() -> None:
    with pytest.raises(StoreError):
        locate_store({"PVEPLAN_STORE": "postgresql://team@db.lab"})


@given(
    user=st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
    password=st.text(min_size=1, max_size=20).filter(lambda p: p.strip()),
)
def test_no_password_survives_into_what_is_shown(user: str, password: str) -> None:
    from urllib.parse import quote

    where = locate_store({"PVEPLAN_STORE": f"postgresql://{user}:{quote(password)}@10.1.2.3/db"})
    assert where.password == password
    assert where.display.startswith(f"postgresql://{user}@10.1.2.3/db")


# -- failures ----------------------------------------------------------------------------


def test_an_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once the probe closes
    with pytest.raises(StoreError) as info:
        open_store(f"postgresql://pveplan:hunter2@127.0.0.1:{port}/lab")
    assert f"127.0.0.1:{port}/lab" in info.value.summary
    assert "hunter2" not in info.value.summary + info.value.detail
    assert "reachable" in info.value.detail


def test_a_refused_password_says_where_passwords_come_from(postgres_db: PostgresDatabase) -> None:
    wrong = postgres_db.dsn.replace("pveplan@", "pveplan:not-it@", 1)
    with pytest.raises(StoreError) as info:
        open_store(wrong)
    assert "not-it" not in info.value.summary + info.value.detail
    assert "PVEPLAN_STORE_PASSWORD" in info.value.detail


def test_a_store_with_a_newer_schema_is_refused(shared: str, postgres_db: PostgresDatabase) -> None:
    with open_store(shared):
        pass
    with postgres_db.connect(autocommit=True) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError) as info:
        open_store(shared)
    assert "schema version 99" in info.value.summary


def test_a_database_holding_other_tables_is_not_taken_over(
    shared: str, postgres_db: PostgresDatabase
) -> None:
    with postgres_db.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id int)")
    with pytest.raises(StoreError) as info:
        open_store(shared)
    assert "not a pveplan store" in info.value.summary


def test_a_corrupt_object_row_is_caught_on_read(shared: str, postgres_db: PostgresDatabase) -> None:
    with open_store(shared) as store:
        digest = store.put_object(b"a plan file")
        with postgres_db.connect(autocommit=True) as conn:
            conn.execute("UPDATE objects SET data = 'a plan filE'::bytea")
        with pytest.raises(StoreError) as info:
            store.get_object(digest)
        assert "corrupt" in info.value.summary
        assert any(digest in problem for problem in store.verify().damage)


# -- copy --------------------------------------------------------------------------------


def fill(store: Store) -> None:
    sub = store.put_object(b"subplan")
    plan = store.put_object(b"plan", refs=[sub])
    store.put_plan("p" * 32, plan, "lab@sim")
    run = store.start_run("lab@sim", "p" * 32, "apply")
    store.add_events(run, [RunEvent(address="node.a", kind="finished", at=1.0, duration=0.5)])
    store.record_result(
        StepResult(
            run_key="rk",
            step_hash="h",
            address="node.a",
            kind="pve.vm.create",
            status="ok",
            outputs={"vm_id": 101, "object": sub},
            run_id=run,
            started=1.0,
            finished=2.0,
        )
    )
    store.finish_run(run, "ok")
    store.set_applied("lab@sim", "p" * 32, {"node.a": "h"})
    store.put_resource("lab@sim", "node.a", "pve.vm.create", {"vm_id": 101})
    store.put_secret("hostkey.a", b"\x00private")


def same_records(a: Store, b: Store) -> None:
    assert a.applied("lab@sim") == b.applied("lab@sim")
    assert a.resources("lab@sim") == b.resources("lab@sim")
    assert a.get_result("rk") == b.get_result("rk")
    assert a.runs() == b.runs()
    assert a.run_events(a.runs()[0].id) == b.run_events(b.runs()[0].id)
    assert a.get_secret("hostkey.a") == b.get_secret("hostkey.a")
    assert a.get_object(a.plan_object("p" * 32) or "") == b"plan"


def test_copy_local_to_postgresql_and_back_keeps_every_record(tmp_path: Path, shared: str) -> None:
    with open_store(tmp_path / "a") as local, open_store(shared) as remote:
        fill(local)
        report = copy_store(local, remote)
        assert report.objects == 2 and report.workspaces == ("lab@sim",)
        same_records(local, remote)
        assert remote.verify().damage == ()
        next_run = remote.start_run("lab@sim", "q", "apply")  # ids continue past the copy
        assert next_run > local.runs()[0].id
        with open_store(tmp_path / "b") as back:
            copy_store(remote, back)
            assert back.applied("lab@sim") == local.applied("lab@sim")
            assert back.verify().damage == ()


def test_copy_refuses_a_destination_that_holds_records(tmp_path: Path, shared: str) -> None:
    with open_store(tmp_path / "a") as local, open_store(shared) as remote:
        fill(local)
        remote.put_object(b"already here")
        with pytest.raises(StoreError) as info:
            copy_store(local, remote)
        assert "already holds records" in info.value.summary
        assert remote.applied("lab@sim") is None


def test_a_damaged_object_stops_the_copy_and_leaves_the_destination_empty(
    tmp_path: Path, shared: str
) -> None:
    with open_store(tmp_path / "a") as local, open_store(shared) as remote:
        fill(local)
        digest = local.plan_object("p" * 32) or ""
        blob = tmp_path / "a" / "objects" / digest[:2] / digest
        blob.chmod(0o644)
        blob.write_bytes(b"PLAN")
        with pytest.raises(StoreError):
            copy_store(local, remote)
        assert remote.workspaces() == () and not remote.has_object(digest)


def test_a_damaged_row_is_refused_reported_and_repaired(
    shared: str, postgres_db: PostgresDatabase
) -> None:
    """Row checksums on PostgreSQL: an applied state edited behind pveplan's back is never
    used; verify names it; repair drops it (the workspace's whole applied state)."""
    with open_store(shared) as store:
        store.set_applied("lab@sim", "p" * 32, {"node.a": "h1", "node.b": "h2"})
        store.put_resource("lab@sim", "node.a", "pve.vm.create", {"vm_id": 101})
        with postgres_db.connect(autocommit=True) as conn:
            conn.execute("UPDATE applied_steps SET step_hash = 'evil' WHERE address = 'node.b'")
        with pytest.raises(DamagedRow):
            store.applied("lab@sim")
        damage = store.verify().damage
        assert any("node.b" in problem and "checksum" in problem for problem in damage)
        assert store.repair() != ()
        assert store.applied("lab@sim") is None and store.verify().damage == ()
        assert [r.address for r in store.resources("lab@sim")] == ["node.a"]  # untouched
