"""A homestak site config rehearsed on the simulator with `--simulate`, unchanged:
`father` is a real host in its node file (`datastore: local-zfs`), its images are built-in
names without pins, its specs name keys as `ssh_keys.<id>`. Apply, re-apply (all cached),
destroy, for a 12-node flat manifest and a 3-level nested one.

The fixture is tests/fixtures/homestak-rehearsal; validate and plan of the same are in the
fast tier (tests/planner/test_cli_rehearsal.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ..cli_runner import run_cli
from .conftest import Lab
from .test_apply import counts

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "homestak-rehearsal"


@pytest.mark.parametrize(("name", "vms"), [("flat-12", 12), ("n3-deep", 3)])  # every level's
def test_apply_reapply_destroy_a_homestak_site_config_with_simulate(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, vms: int
) -> None:
    site = tmp_path / "site-config"
    shutil.copytree(FIXTURE, site)
    monkeypatch.delenv("PVEPLAN_SIMULATE", raising=False)
    base = ["-M", name, "-H", "father", "--site-config", str(site), "--simulate", "-y"]

    code, out, err = run_cli(["apply", *base])
    assert code == 0, out + err
    assert "Rehearsal (--simulate)" in out
    assert len(lab.vms(name)) == vms  # nested levels share the simulator's state

    code, out, err = run_cli(["apply", *base])
    assert code == 0, out + err
    assert "No changes." in out and counts(out)["ran"] == 0 and counts(out)["cached"] > 0, out

    code, out, err = run_cli(["destroy", *base])
    assert code == 0, out + err
    assert lab.vms(name) == []
