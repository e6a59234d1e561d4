"""Test-wide settings.

Hypothesis explores new random inputs on every local run (that is how it finds bugs);
under CI (`CI` set) it runs derandomized, so a submission's CI result does not depend
on the luck of the draw. Anything a local run finds becomes a regression test.

Simulator daemons started during the run (by fixtures, or on demand by `apply`) live with
it: they get a short idle limit and are told to exit with this process
(docs/simulator.md, "How long the daemon lives"), and the session's end stops any still
running. So an interrupted or killed run leaves no daemon behind: at worst one stops a
second after pytest dies, or when pytest's tmp dirs are cleaned.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

os.environ.setdefault("PVEPLAN_SIM_IDLE_TIMEOUT", "120")
os.environ["PVEPLAN_SIM_EXIT_WITH_PID"] = str(os.getpid())  # each xdist worker: its own


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the daemons this run started and no fixture stopped (a test that failed before
    its `finally`, a test that applied to a store of its own and never ran `sim down`)."""
    from executor.sim._control import stop_daemons_living_with

    stop_daemons_living_with(os.getpid())
