"""The CLI over a PostgreSQL store: site.yaml's `store:` with secrets.yaml's password,
`store unlock` (consent, logged), `store copy`, and a busy workspace refused with a hint."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests._postgres import PostgresDatabase, PostgresServer

from ..cli_runner import run_cli
from ..store.conftest import python, wait_for_line
from .test_cli_store import EXAMPLES, record_applied

HOLD = r"""
import sys
from pveplan.store import open_store
with open_store(sys.argv[1]) as s, s.lock_workspace(sys.argv[2], plan="abc123") as lock:
    print("locked", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "site-config"
    shutil.copytree(EXAMPLES, copy)
    for name in ("PVEPLAN_STORE", "PVEPLAN_STORE_PASSWORD", "HOMESTAK_SITE_CONFIG", "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PVEPLAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return copy


def share(site: Path, db: PostgresDatabase) -> None:
    """Point the site config at the shared store, its password in secrets.yaml."""
    with (site / "site.yaml").open("a") as out:
        out.write(f"\nstore:\n  url: {db.dsn}\n  lock_timeout: 0\n")
    with (site / "secrets.yaml").open("a") as out:
        out.write(f"\nstore:\n  password: {db.password}\n")


def with_password(db: PostgresDatabase) -> str:
    return db.dsn.replace("pveplan@", f"pveplan:{db.password}@", 1)


def test_the_site_configs_store_is_used_and_its_password_never_shown(
    site: Path, postgres_db: PostgresDatabase, tmp_path: Path
) -> None:
    share(site, postgres_db)
    args = ["-M", "n2-tiered", "-H", "sim", "--site-config", str(site)]
    saved = tmp_path / "n2.json"
    assert run_cli(["plan", *args, "-o", str(saved)])[0] == 0
    record_applied(with_password(postgres_db), saved)  # type: ignore[arg-type]
    code, out, err = run_cli(["plan", *args])
    assert code == 0 and out.rstrip().endswith("No changes."), out + err
    code, out, err = run_cli(["store", "verify", "--site-config", str(site)])
    assert code == 0, out + err
    assert postgres_db.dsn in out and postgres_db.password not in out + err


def test_a_password_written_into_site_yaml_is_refused(
    site: Path, postgres_db: PostgresDatabase
) -> None:
    with (site / "site.yaml").open("a") as out:
        out.write(f"\nstore:\n  url: {with_password(postgres_db)}\n")
    code, out, err = run_cli(["store", "verify", "--site-config", str(site)])
    assert code == 1
    assert "contains a password" in err and postgres_db.password not in out + err


def test_unlock_needs_consent_and_is_logged_as_a_run(
    site: Path, postgres_db: PostgresDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PVEPLAN_STORE", with_password(postgres_db))
    holder = python(HOLD, with_password(postgres_db), "lab@sim", stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE)  # fmt: skip
    try:
        wait_for_line(holder, "locked")
        code, out, err = run_cli(["store", "unlock", "lab@sim"])  # no terminal, no --yes
        assert code == 1 and "store unlock needs consent" in err
        code, out, err = run_cli(["store", "unlock", "lab@sim", "--yes"])
        assert code == 1 and f"pid {holder.pid}" in err, out + err  # alive here: refused
    finally:
        holder.kill()
        holder.wait(timeout=10)
    code, out, err = run_cli(["store", "unlock", "lab@sim", "--yes"])
    assert code == 0, out + err
    assert f"pid {holder.pid}" in out and "logged as run" in out
    code, out, _ = run_cli(["runs", "list", "--workspace", "lab@sim"])
    assert code == 0 and "unlock" in out
    code, out, _ = run_cli(["store", "unlock", "lab@sim", "--yes"])
    assert code == 0 and "not locked" in out


def test_store_copy_moves_what_is_applied_and_refuses_to_merge(
    site: Path, postgres_db: PostgresDatabase, tmp_path: Path
) -> None:
    args = ["-M", "n2-tiered", "-H", "sim", "--site-config", str(site)]
    saved = tmp_path / "n2.json"
    local = tmp_path / "store"
    assert run_cli(["plan", *args, "-o", str(saved)])[0] == 0
    record_applied(local, saved)
    url = with_password(postgres_db)
    code, out, err = run_cli(["store", "copy", str(local), url])
    assert code == 0 and "n2-tiered@sim" in out, out + err
    assert postgres_db.password not in out + err
    code, out, err = run_cli(["store", "copy", str(local), url])
    assert code == 1 and "already holds records" in err
    code, out, err = run_cli(["store", "copy", str(tmp_path / "nothing"), url])
    assert code == 1 and "no store" in err


def test_lock_timeout_takes_seconds_only() -> None:
    code, _, err = run_cli(["apply", "-M", "x", "-H", "sim", "--lock-timeout", "soon"])
    assert code != 0 and "not a number of seconds" in err


def test_the_documented_read_only_review_role_can_plan_against_what_is_applied(
    site: Path,
    postgres_server: PostgresServer,
    postgres_db: PostgresDatabase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/review-workflow.md's grants, run as written: enough to diff, nothing secret."""
    args = ["-M", "n2-tiered", "-H", "sim", "--site-config", str(site)]
    saved = tmp_path / "n2.json"
    assert run_cli(["plan", *args, "-o", str(saved)])[0] == 0
    record_applied(with_password(postgres_db), saved)  # type: ignore[arg-type]
    doc = (Path(__file__).parents[2] / "docs" / "review-workflow.md").read_text()
    grant = doc[
        doc.index("GRANT USAGE ON SCHEMA") : doc.index(
            "TO pveplan_read;", doc.index("GRANT SELECT")
        )
    ]
    with postgres_server.superuser(postgres_db.name) as admin:
        admin.execute("DROP ROLE IF EXISTS pveplan_read")
        admin.execute("CREATE ROLE pveplan_read LOGIN PASSWORD 'read-only-pw'")
        for statement in (grant + "TO pveplan_read;").split(";"):
            if statement.strip():
                admin.execute(statement)
    reader = postgres_db.dsn.replace("pveplan@", "pveplan_read:read-only-pw@", 1)
    monkeypatch.setenv("PVEPLAN_STORE", reader)
    code, out, err = run_cli(["plan", *args])
    assert code == 0 and out.rstrip().endswith("No changes."), out + err
    with postgres_server.superuser(postgres_db.name) as admin:
        admin.execute("SET ROLE pveplan_read")
        with pytest.raises(Exception, match="permission denied"):
            admin.execute("SELECT value FROM secrets")
