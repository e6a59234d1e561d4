"""A throw-away PostgreSQL server for the tests, started and stopped by the tests themselves.

Why: the store's PostgreSQL backend has to be tested against a real server, and a test run
must not depend on (or touch) a server someone happens to run on the machine. So each pytest
session (each xdist worker) starts a private one from the installed server binaries, and each
test that wants a database gets a fresh one on it (`tests/conftest.py`: `postgres_server`,
`postgres_db`).

The server:
- lives in a fresh `tempfile.mkdtemp()` directory (data directory, unix socket, log), removed
  by `stop()`; under root it belongs to the `postgres` system user (else `nobody`), because
  initdb and postgres refuse to run as root, so that directory must not sit under a
  directory only root can enter (pytest's tmp_path is one);
- listens on 127.0.0.1 only, on a port picked free by binding port 0, and on a unix socket in
  that directory (mode 0700, so only its owner and root reach it);
- lets the superuser (`postgres`) in over the unix socket without a password (trust) and
  everyone over TCP only with a password (scram-sha-256); the tests' role is `pveplan`, a
  login role with a random password, owning every database `create_database()` makes;
- runs with fsync, synchronous_commit and full_page_writes off: a crash loses its data,
  which is fine for a server that lives as long as a test run.

Stopping: `stop()` sends SIGINT (fast shutdown), waits a bounded time, then SIGKILLs the
server's process group. Fixtures call it in a `finally`; `atexit` calls it for servers still
running when the interpreter exits; and on Linux the server gets SIGINT when the thread that
started it dies (PR_SET_PDEATHSIG), so even a SIGKILLed pytest leaves no server running (at
worst its temp directory).

Binaries: `$PVEPLAN_PG_BIN`, else the directory of `initdb` on PATH, else the newest
/usr/lib/postgresql/*/bin (Debian's layout). `.ci/run` installs them when none is found.

Measured on the development container (PostgreSQL 15, 2 cores, a noisy virtual disk): start,
initdb included, 0.8-1.3 s; `create_database()` 50-300 ms (median 70-300 ms from run to run:
it copies template1's ~8 MB; STRATEGY FILE_COPY was no faster); `drop()` about 15 ms;
`stop()` 60-80 ms.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import itertools
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

SUPERUSER = "postgres"
"""The superuser initdb creates: reached over the unix socket only (trust)."""

ROLE = "pveplan"
"""The login role the tests (and the store) connect as, over TCP with a password."""

START_TIMEOUT = 30.0
"""Seconds the server may take to accept connections."""

STOP_TIMEOUT = 10.0
"""Seconds a fast shutdown may take before the server is SIGKILLed."""

_BINARIES = ("initdb", "postgres")
_PR_SET_PDEATHSIG = 1


def postgres_binaries() -> Path | None:
    """The directory holding `initdb` and `postgres`, or None when there is none.

    `$PVEPLAN_PG_BIN` if set (and nothing else then: a wrong setting is not papered over),
    else where `initdb` on PATH really lives, else the newest /usr/lib/postgresql/*/bin."""
    explicit = os.environ.get("PVEPLAN_PG_BIN")
    if explicit:
        return _holds_binaries(Path(explicit))
    on_path = shutil.which("initdb")
    if on_path:
        for candidate in (Path(on_path).resolve().parent, Path(on_path).parent):
            if found := _holds_binaries(candidate):
                return found
    versions = []
    for directory in Path("/usr/lib/postgresql").glob("*/bin"):
        with contextlib.suppress(ValueError):
            versions.append((float(directory.parent.name), directory))
    for _, directory in sorted(versions, reverse=True):
        if found := _holds_binaries(directory):
            return found
    return None


def _holds_binaries(directory: Path) -> Path | None:
    if all(os.access(directory / name, os.X_OK) for name in _BINARIES):
        return directory
    return None


@dataclass(frozen=True)
class PostgresDatabase:
    """A database on a test server, owned by the `pveplan` role.

    `dsn` carries no password (it shows up in logs and test ids); pass `password` to
    `psycopg.connect(dsn, password=...)`, or `env()` to a subprocess (libpq reads
    PGPASSWORD)."""

    dsn: str
    """`postgresql://pveplan@127.0.0.1:PORT/NAME`"""
    password: str = field(repr=False)
    name: str
    port: int
    _admin: dict[str, Any] = field(repr=False, compare=False)

    def env(self) -> dict[str, str]:
        """This process's environment with PGPASSWORD set, for a subprocess given `dsn`."""
        return {**os.environ, "PGPASSWORD": self.password}

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A connection as `pveplan` over TCP, with the password."""
        return psycopg.connect(self.dsn, password=self.password, **kwargs)

    def drop(self) -> None:
        """Drop the database (closing its connections); a no-op once dropped or stopped."""
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
        with (
            contextlib.suppress(psycopg.OperationalError),  # the server is gone already
            psycopg.connect(**self._admin, autocommit=True) as admin,
        ):
            admin.execute(drop)


class PostgresServer:
    """A private PostgreSQL server: `start()`, `create_database()`, `stop()`; or `with`."""

    _counter = itertools.count(1)

    def __init__(self, binaries: Path | None = None, parent: str | None = None) -> None:
        found = binaries or postgres_binaries()
        if found is None:
            raise FileNotFoundError(
                "no PostgreSQL server binaries (initdb, postgres): set PVEPLAN_PG_BIN, put "
                "initdb on PATH or install the postgresql package"
            )
        self.binaries = found
        self.parent = parent
        self.directory: Path | None = None
        self.port: int | None = None
        self.password = secrets.token_urlsafe(24)
        self.process: subprocess.Popen[bytes] | None = None
        self._account = _server_account()

    @property
    def socket_dir(self) -> Path:
        assert self.directory is not None, "not started"
        return self.directory

    @property
    def data_dir(self) -> Path:
        return self.socket_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.socket_dir / "postgres.log"

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """initdb, configure, start and wait until the server accepts connections."""
        if self.directory is not None:
            raise RuntimeError("already started")
        atexit.register(self.stop)
        try:
            self.directory = Path(tempfile.mkdtemp(prefix="pveplan-pg-", dir=self.parent))
            if self._account is not None:
                _check_reachable(self.directory, self._account)
                os.chown(self.directory, self._account.pw_uid, self._account.pw_gid)
            self._initdb()
            self._configure()
            for attempt in range(3):  # the free port may be taken before postgres binds it
                self.port = _free_port()
                if self._run_until_ready():
                    break
                if attempt == 2 or "could not bind" not in self._log_tail():
                    raise RuntimeError(f"postgres did not start:\n{self._log_tail()}")
            with self._admin_connection() as admin:
                admin.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(ROLE), sql.Literal(self.password)
                    )
                )
        except BaseException:
            self.stop()
            raise

    def create_database(self) -> PostgresDatabase:
        """A fresh, empty database with a unique name, owned by `pveplan`."""
        if self.process is None or self.port is None:
            raise RuntimeError("not running")
        name = f"pveplan_test_{next(self._counter)}_{secrets.token_hex(4)}"
        with self._admin_connection() as admin:
            admin.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(ROLE)
                )
            )
        return PostgresDatabase(
            dsn=f"postgresql://{ROLE}@127.0.0.1:{self.port}/{name}",
            password=self.password,
            name=name,
            port=self.port,
            _admin=self._admin_params(),
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown, SIGKILL after STOP_TIMEOUT) and remove its
        directory. Safe to call more than once, and after a failed start."""
        atexit.unregister(self.stop)
        process, self.process = self.process, None
        if process is not None:
            _stop_process(process)
        directory, self.directory = self.directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def _initdb(self) -> None:
        result = subprocess.run(
            [
                str(self.binaries / "initdb"),
                "-D",
                str(self.data_dir),
                f"--username={SUPERUSER}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",  # throw-away: no need to flush the new cluster to disk
                "--no-instructions",
            ],
            cwd=self.socket_dir,
            env=_child_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=120,
            check=False,
            **self._as_account(),
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"initdb failed ({result.returncode}):\n"
                + (result.stdout + result.stderr).decode(errors="replace")[-3000:]
            )

    def _configure(self) -> None:
        settings = {
            "listen_addresses": "127.0.0.1",  # loopback only, never a public address
            "unix_socket_directories": str(self.socket_dir),
            "password_encryption": "scram-sha-256",
            # Throw-away: durability buys nothing, speed does.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "wal_level": "minimal",
            "max_wal_senders": "0",
            "jit": "off",
        }
        lines = "".join(f"{key} = {_quote(value)}\n" for key, value in settings.items())
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(f"\n# tests/_postgres.py\n{lines}")

    def _run_until_ready(self) -> bool:
        """Start postgres on self.port; True once it accepts connections, False if it
        exited (the process is then reaped). Raises on timeout."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(self.binaries / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)],
                cwd=self.socket_dir,
                env=_child_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # a Ctrl-C on the terminal goes to pytest, whose
                # fixtures then stop the server in order
                preexec_fn=_die_with_parent(),
                **self._as_account(),
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                self.process = None
                return False
            try:
                with self._admin_connection(connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postgres not ready after {START_TIMEOUT} s:\n{self._log_tail()}"
                    ) from None
                time.sleep(0.02)

    def _admin_params(self) -> dict[str, Any]:
        return {
            "host": str(self.socket_dir),
            "port": self.port,
            "user": SUPERUSER,
            "dbname": "postgres",
        }

    def superuser(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        """A superuser connection to `dbname` (autocommit): what a database administrator
        does in a test (make a role, revoke a privilege)."""
        return psycopg.connect(**{**self._admin_params(), "dbname": dbname}, autocommit=True)

    def _admin_connection(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A superuser connection over the unix socket, autocommit (CREATE DATABASE needs it)."""
        return psycopg.connect(**self._admin_params(), autocommit=True, **kwargs)

    def _as_account(self) -> dict[str, Any]:
        if self._account is None:
            return {}
        return {"user": self._account.pw_uid, "group": self._account.pw_gid, "extra_groups": []}

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"


def _server_account() -> pwd.struct_passwd | None:
    """The account to run initdb and postgres as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and there is neither a postgres nor a nobody user")


def _check_reachable(directory: Path, account: pwd.struct_passwd) -> None:
    """Fail clearly if `account` cannot enter the directories above `directory`."""
    for parent in directory.parents:
        mode = parent.stat()
        if mode.st_uid != account.pw_uid and not mode.st_mode & stat.S_IXOTH:
            raise RuntimeError(
                f"{parent} is closed to the {account.pw_name} user that runs postgres: "
                f"start the server under another directory (TMPDIR)"
            )


def _child_env() -> dict[str, str]:
    """Our environment without PG* variables (PGDATA, PGPORT... would steer the server)."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _die_with_parent() -> Any:
    """A preexec_fn asking Linux to SIGINT (fast shutdown) the server when the thread that
    started it dies; None elsewhere. It runs after subprocess switched users, which would
    otherwise clear the setting."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)

    return preexec


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return  # it died on its own; its backends notice and exit
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)  # fast shutdown: ends sessions, then exits
    try:
        process.wait(timeout=STOP_TIMEOUT)  # a clean exit comes after all its children's
        return
    except subprocess.TimeoutExpired:
        pass
    # Its backends (each in a session of its own) exit when they see the postmaster die.
    process.kill()
    process.wait(timeout=STOP_TIMEOUT)
