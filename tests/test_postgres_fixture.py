"""The throw-away PostgreSQL server of tests/_postgres.py does what the store tests rely on:
password logins as `pveplan`, nothing else over TCP, loopback only, a database per test, and
nothing left behind after `stop()`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests._postgres import PostgresDatabase, PostgresServer


def test_the_password_logs_in_as_pveplan(postgres_db: PostgresDatabase) -> None:
    assert postgres_db.dsn == (
        f"postgresql://pveplan@127.0.0.1:{postgres_db.port}/{postgres_db.name}"
    )
    assert postgres_db.password not in postgres_db.dsn
    assert postgres_db.password not in repr(postgres_db)
    with psycopg.connect(postgres_db.dsn, password=postgres_db.password) as conn:
        user, database, owner = conn.execute(
            "SELECT current_user, current_database(), pg_get_userbyid(datdba)"
            " FROM pg_database WHERE datname = current_database()"
        ).fetchone()
        conn.execute("CREATE TABLE t (x int)")  # the owner may create in its database
    assert (user, database, owner) == ("pveplan", postgres_db.name, "pveplan")


def test_a_subprocess_logs_in_with_env(postgres_db: PostgresDatabase) -> None:
    code = "import psycopg, sys; print(psycopg.connect(sys.argv[1]).info.user)"
    env = postgres_db.env()
    assert env["PGPASSWORD"] == postgres_db.password
    result = subprocess.run(
        [sys.executable, "-c", code, postgres_db.dsn],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pveplan"


@pytest.mark.parametrize("password", ["wrong", ""])
def test_tcp_without_the_password_fails(postgres_db: PostgresDatabase, password: str) -> None:
    with pytest.raises(psycopg.OperationalError, match=r"password"):
        psycopg.connect(postgres_db.dsn, password=password, passfile=os.devnull, connect_timeout=5)


def test_the_superuser_has_no_tcp_login(postgres_db: PostgresDatabase) -> None:
    with pytest.raises(psycopg.OperationalError, match=r"password"):
        psycopg.connect(
            host="127.0.0.1",
            port=postgres_db.port,
            user="postgres",
            dbname="postgres",
            password="",
            passfile=os.devnull,
            connect_timeout=5,
        )


def test_listens_on_loopback_only(
    postgres_server: PostgresServer, postgres_db: PostgresDatabase
) -> None:
    with postgres_db.connect() as conn:
        (listen,) = conn.execute("SHOW listen_addresses").fetchone()
    assert listen == "127.0.0.1"
    tcp = Path("/proc/net/tcp")
    if not tcp.exists():
        return  # not Linux: the setting above is all there is to see
    # Every listening socket on the port, IPv4 and IPv6, in this network namespace.
    port = f"{postgres_db.port:04X}"
    listening = []
    for table in (tcp, Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            address, local_port = fields[1].split(":")
            if local_port == port and fields[3] == "0A":  # 0A: LISTEN
                listening.append((table.name, address))
    assert listening == [("tcp", "0100007F")]  # 127.0.0.1, little-endian hex


def test_each_test_database_is_its_own(postgres_server: PostgresServer) -> None:
    first, second = postgres_server.create_database(), postgres_server.create_database()
    try:
        assert first.name != second.name and first.dsn != second.dsn
        with first.connect(autocommit=True) as conn:
            conn.execute("CREATE TABLE only_in_first (x int)")
        with second.connect() as conn:
            found = conn.execute("SELECT to_regclass('only_in_first')").fetchone()
        assert found == (None,)
    finally:
        first.drop()
        second.drop()
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        first.connect(connect_timeout=5)


def test_stop_leaves_nothing_behind(postgres_server: PostgresServer) -> None:
    """On a second, private server (the session's fixture only lends its skip-or-fail)."""
    server = PostgresServer(postgres_server.binaries)
    try:
        server.start()
        database = server.create_database()
        assert server.process is not None and server.directory is not None
        pid, port, directory = server.process.pid, database.port, server.directory
        conn = database.connect(autocommit=True)
        assert conn.execute("SELECT 1").fetchone() == (1,)
        server.stop()  # with a session open: a fast shutdown ends it
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
        conn.close()
    finally:
        server.stop()
    server.stop()  # again: a no-op
    assert not directory.exists()
    assert not Path(f"/proc/{pid}").exists() or b"postgres" not in _cmdline(pid)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
