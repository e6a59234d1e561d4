"""A flipped byte in the store's applied state, as the user meets it (issue 17).

`store verify` reports it (exit 1), `plan` and `apply` refuse to use it with a message
naming it and what to do, `store repair` drops it after consent, and then planning
works again from nothing applied. No simulator: the refusals come before any run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pveplan.planner._hashing import canonical
from pveplan.planner._planfile import read_plan_file
from pveplan.store import open_store

from ..cli_runner import run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "site-config"


@pytest.fixture
def damaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A store where n1-push@sim is applied, then one byte of that row flipped on disk."""
    store_dir = tmp_path / "store"
    monkeypatch.setenv("PVEPLAN_STORE", str(store_dir))
    site = tmp_path / "site-config"
    shutil.copytree(EXAMPLES, site)
    where = ["-M", "n1-push", "-H", "sim", "--site-config", str(site)]
    assert run_cli(["plan", *where, "-o", str(tmp_path / "p.json")])[0] == 0
    plan = read_plan_file(tmp_path / "p.json").plan
    with open_store(store_dir) as store:
        store.put_plan(plan.hash, store.put_object(canonical(plan)), "n1-push@sim")
        store.set_applied("n1-push@sim", plan.hash, {s.address: s.hash for s in plan.steps})
    database = store_dir / "store.sqlite"
    data = bytearray(database.read_bytes())
    anchor = b"n1-push@sim" + plan.hash.encode()  # the applied row: workspace, plan hash
    assert data.count(anchor) == 1
    at = data.index(anchor) + len(anchor) - 1
    data[at] = ord("0") if data[at] != ord("0") else ord("1")
    database.write_bytes(bytes(data))
    return where


def test_verify_reports_it_and_plan_and_apply_refuse_it(damaged: list[str]) -> None:
    code, out, err = run_cli(["store", "verify"])
    assert code == 1 and "applied state of n1-push@sim" in err and "1 damaged" in out

    for argv in (["plan", *damaged], ["apply", *damaged, "--yes"]):
        code, out, err = run_cli(argv)
        assert code == 1, (argv, out, err)
        assert "applied state of n1-push@sim" in err and "checksum" in err
        assert "store repair" in err and "Traceback" not in err


def test_repair_drops_it_after_consent_and_planning_starts_over(damaged: list[str]) -> None:
    code, _, err = run_cli(["store", "repair"])  # no terminal, no --yes: refused
    assert code == 1 and "--yes" in err
    assert run_cli(["store", "verify"])[0] == 1

    code, out, err = run_cli(["store", "repair", "--yes"])
    assert code == 0, err
    assert "dropped the applied state of n1-push@sim" in out
    assert run_cli(["store", "verify"])[0] == 0
    code, out, err = run_cli(["plan", *damaged])
    assert code == 0, err
    assert "to add" in out  # nothing is recorded as applied now: everything is new
