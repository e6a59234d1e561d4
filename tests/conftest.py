"""Test-wide settings.

Two tiers (tests/_tiers.py): `.venv/bin/pytest` runs the fast one (unit, contract and
property tests), `.venv/bin/pytest -m slow` the slow one (the simulator, SSH, nested and
pull runs, SIGKILL trials, benchmark scale); CI runs both. A new test that starts a daemon
goes under a path in `_tiers.SLOW` or gets `@pytest.mark.slow`.

Hypothesis explores new random inputs on every local run (that is how it finds bugs), at
a reduced count in the fast tier; under CI (`CI` set) it runs derandomized at full counts,
so a submission's CI result does not depend on the luck of the draw. Anything a local run
finds becomes a regression test.

Simulator daemons started during the run (by fixtures, or on demand by `apply`) live with
it: they get a short idle limit and are told to exit with this process
(docs/simulator.md, "How long the daemon lives"), and the session's end stops any still
running. So an interrupted or killed run leaves no daemon behind: at worst one stops a
second after pytest dies, or when pytest's tmp dirs are cleaned.

PostgreSQL (tests/_postgres.py): `postgres_server` is a private server started once per
session (per xdist worker) on first use and stopped at its end; `postgres_db` is a fresh
database on it per test, dropped afterwards. Without server binaries they skip, unless
PVEPLAN_REQUIRE_POSTGRES=1 (CI sets it), which makes them fail instead. Likewise
tests/integration/test_outputs.py skips without `ansible-inventory` (ansible-core, in the
test extra) unless PVEPLAN_REQUIRE_ANSIBLE=1 (CI sets it too).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests import _postgres, _tiers

os.environ.setdefault("PVEPLAN_SIM_IDLE_TIMEOUT", "120")
os.environ["PVEPLAN_SIM_EXIT_WITH_PID"] = str(os.getpid())  # each xdist worker: its own


def pytest_configure(config: pytest.Config) -> None:
    _tiers.configure(config)
    config.pluginmanager.register(_tiers.LeftOut(config), "tiers-left-out")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    _tiers.mark_slow(items)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the daemons this run started and no fixture stopped (a test that failed before
    its `finally`, a test that applied to a store of its own and never ran `sim down`)."""
    from pveplan.sim import stop_daemons_living_with

    stop_daemons_living_with(os.getpid())


@pytest.fixture(autouse=True, scope="session")
def _reports_outside_the_tree(tmp_path_factory: pytest.TempPathFactory) -> None:
    """create/destroy/test write a report per run (./reports by default): not into the
    checkout. A test about where reports go passes -r or its own environment."""
    os.environ.setdefault("PVEPLAN_REPORT_DIR", str(tmp_path_factory.mktemp("reports")))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[_postgres.PostgresServer]:
    """A private PostgreSQL server for the session (tests/_postgres.py); skips (or, with
    PVEPLAN_REQUIRE_POSTGRES=1, fails) when no server binaries are installed."""
    if _postgres.postgres_binaries() is None:
        reason = (
            "no PostgreSQL server binaries (initdb and postgres in $PVEPLAN_PG_BIN, on PATH "
            "or in /usr/lib/postgresql/*/bin): install the postgresql package"
        )
        if os.environ.get("PVEPLAN_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PVEPLAN_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    server = _postgres.PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_db(postgres_server: _postgres.PostgresServer) -> Iterator[_postgres.PostgresDatabase]:
    """A fresh database owned by `pveplan` on the session's server, dropped after the test."""
    database = postgres_server.create_database()
    try:
        yield database
    finally:
        database.drop()
