"""A team on one PostgreSQL store: two working directories (each with its own local cache,
as two operators' machines, or an operator and a CI runner) apply one lab on the simulator.

Real `pveplan` processes, the real simulator (the session's, shared through
PVEPLAN_SIM_DIR as a real PVE host is shared), and a real PostgreSQL server started by the
tests (tests/_postgres.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._postgres import PostgresDatabase

from .conftest import Lab
from .test_apply import counts, specless


class Operator:
    """One working directory: its own cache and store setting, the lab's simulator."""

    def __init__(self, lab: Lab, home: Path, store: str, password: str = "") -> None:
        self.lab = lab
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "PVEPLAN_STORE": store,
            "PVEPLAN_CACHE_DIR": str(home / "cache"),
            "PVEPLAN_SIM_DIR": str(lab.sim.path),
        }
        if password:
            self.env["PVEPLAN_STORE_PASSWORD"] = password

    def command(self, *words: str, site: bool = True) -> list[str]:
        return [sys.executable, "-m", "pveplan.cli", *(self.lab.args(*words) if site else words)]

    def run(self, *words: str, site: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*words, site=site),
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def start(self, *words: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*words),
            env=self.env,
            cwd=self.home,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )


def wait_for_lock(db: PostgresDatabase, workspace: str, proc: subprocess.Popen[str]) -> int:
    """The pid in the workspace's lock row, once the apply in `proc` holds the lock."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the apply ended before locking: {proc.communicate()}")
        try:
            with db.connect() as conn:
                row = conn.execute(
                    "SELECT pid FROM workspace_locks WHERE workspace = %s", (workspace,)
                ).fetchone()
        except Exception:  # the tables appear with the first open
            row = None
        if row is not None:
            return int(row[0])
        time.sleep(0.1)
    raise AssertionError(f"{workspace} was never locked")


N2_MOVED = """
manifest "n2-moved" {
  pattern = "tiered"
  node "moved-pve" {
    type = "pve"
    spec = "pve"
    preset = "vm-large"
    image = "pve-9"
    vmid = 96311
    node "moved-edge" { type = "vm" spec = "base" preset = "vm-small" image = "debian-12" vmid = 96321 }
  }
}
"""


def kill_group(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)


@pytest.fixture
def url(postgres_db: PostgresDatabase) -> str:
    return postgres_db.dsn


def test_a_second_operator_is_refused_naming_the_holder_then_finds_everything_cached(
    lab: Lab, tmp_path: Path, postgres_db: PostgresDatabase, url: str
) -> None:
    name = lab.manifest("teamwork", specless("teamwork", 2, 96100, prefix="t"))
    alice = Operator(lab, tmp_path / "alice", url, postgres_db.password)
    ci = Operator(lab, tmp_path / "ci", url, postgres_db.password)
    # The first apply must still hold the lock when the second one asks: its guests' agents
    # answer only after 10 s, so it waits at least that long holding the lock (a per-call
    # latency alone was not enough once the simulator answered host tools in-process).
    lab.set_sim_config(latency=0.05, agent_delay=10.0)
    first = alice.start("apply", "-M", name, "-H", "sim", "--yes")
    try:
        holder = wait_for_lock(postgres_db, f"{name}@sim", first)
        assert holder == first.pid
        refused = ci.run("apply", "-M", name, "-H", "sim", "--yes")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"locked by pid {first.pid}" in refused.stderr, refused.stderr
        assert "applying plan" in refused.stderr and "Traceback" not in refused.stderr
        out, err = first.communicate(timeout=600)
        assert first.returncode == 0, out + err
    finally:
        kill_group(first)
        lab.set_sim_config(latency=0.0, agent_delay=0.0)
    again = ci.run("apply", "-M", name, "-H", "sim", "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert counts(again.stdout)["ran"] == 0, again.stdout
    assert not (tmp_path / "ci" / "cache" / "store.sqlite").exists()  # nothing local
    gone = ci.run("destroy", "-M", name, "-H", "sim", "--yes")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert lab.vms(name) == []


def test_an_apply_killed_holding_the_lock_frees_it_for_the_next_one_at_once(
    lab: Lab, tmp_path: Path, postgres_db: PostgresDatabase, url: str
) -> None:
    name = lab.manifest("teamkill", specless("teamkill", 2, 96200, prefix="x"))
    alice = Operator(lab, tmp_path / "alice", url, postgres_db.password)
    bob = Operator(lab, tmp_path / "bob", url, postgres_db.password)
    lab.set_sim_config(latency=0.05, agent_delay=10.0)  # still running when seen holding it
    first = alice.start("apply", "-M", name, "-H", "sim", "--yes")
    try:
        wait_for_lock(postgres_db, f"{name}@sim", first)
    finally:
        kill_group(first)  # kill -9, mid-run, lock held
        lab.set_sim_config(latency=0.0, agent_delay=0.0)
    # --lock-timeout 0: no waiting; the lock went with the killed process's session.
    taken = bob.run("apply", "-M", name, "-H", "sim", "--yes", "--lock-timeout", "0")
    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert f"pid {first.pid}" in taken.stderr and "taking it over" in taken.stderr
    assert sorted(v["name"] for v in lab.vms(name)) == ["x-1", "x-2"]
    assert bob.run("destroy", "-M", name, "-H", "sim", "--yes").returncode == 0


def test_an_n2_lab_applied_with_a_local_store_moves_to_postgresql_and_is_destroyed_elsewhere(
    lab: Lab, tmp_path: Path, postgres_db: PostgresDatabase, url: str
) -> None:
    # n2-tiered's shape under names of its own: the session's simulator is shared, and the
    # nested host other tests make (root-pve) keeps its state there between them.
    name = lab.manifest("n2-moved", N2_MOVED)
    solo = Operator(lab, tmp_path / "solo", str(tmp_path / "solo" / "store"))
    team = Operator(lab, tmp_path / "team", url, postgres_db.password)
    applied = solo.run("apply", "-M", name, "-H", "sim", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    try:
        copied = team.run("store", "copy", str(tmp_path / "solo" / "store"), url, site=False)
        assert copied.returncode == 0, copied.stdout + copied.stderr
        assert f"{name}@sim" in copied.stdout
        planned = team.run("plan", "-M", name, "-H", "sim")
        assert planned.returncode == 0, planned.stdout + planned.stderr
        assert "No changes." in planned.stdout, planned.stdout
        gone = team.run("destroy", "-M", name, "-H", "sim", "--yes")
        assert gone.returncode == 0, gone.stdout + gone.stderr
        assert lab.vms(name) == []
    finally:
        if lab.vms(name):
            solo.run("destroy", "-M", name, "-H", "sim", "--yes")
