"""Consent: no terminal and no --yes means refuse, before anything runs (cli/_consent.py).

These runs refuse before a store lock, a simulator or a host is touched, so they need
no simulator: the store directory must stay without any applied state.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pveplan.cli._consent import at_risk
from pveplan.planner._diff import Change

from ..cli_runner import run_cli

PVEPLAN = Path(sys.executable).with_name("pveplan")


def _pveplan(*words: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed entry point, with stdin from /dev/null as in CI or a cron job."""
    return subprocess.run(
        [str(PVEPLAN), *words],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("verb", ["apply", "destroy"])
def test_no_terminal_and_no_yes_refuses_and_changes_nothing(site: Path, verb: str) -> None:
    store = site.parent / "store"
    result = _pveplan(verb, "-M", "n1-push", "-H", "sim", "--site-config", str(site), cwd=site)
    assert result.returncode == 1
    assert "--yes" in result.stderr and "Traceback" not in result.stderr
    # Nothing started: no simulator, no run recorded, no applied state.
    assert not (store / "sim").exists()
    runs = run_cli(["runs", "list", "--json"])
    assert runs[0] == 0 and '"id"' not in runs[1]


def test_create_goes_ahead_without_asking_when_nothing_would_be_lost() -> None:
    adds = [Change(host="sim", address="node.edge.create", kind="pve.vm.create", action="create")]
    assert at_risk(adds) == []


def test_at_risk_lists_each_node_once_with_its_host_path() -> None:
    changes = [
        Change(host="sim", address="node.db.create", kind="pve.vm.create", action="replace"),
        Change(host="sim", address="node.db.start", kind="pve.vm.start", action="replace"),
        Change(host="sim", address="node.old.create", kind="pve.ct.create", action="destroy"),
        Change(host="sim", address="node.web.create", kind="pve.vm.create", action="update"),
        Change(
            path=("node.root-pve.delegate",),
            host="root-pve",
            address="node.edge.create",
            kind="pve.vm.create",
            action="destroy",
        ),
        Change(
            host="sim", address="image.debian-12.ensure", kind="pve.image.ensure", action="destroy"
        ),
    ]
    lines = at_risk(changes)
    assert len(lines) == 3
    assert lines[0].startswith("vm db:") and "replaced" in lines[0]
    assert lines[1].startswith("ct old:") and "destroyed" in lines[1]
    assert lines[2].startswith("vm edge on root-pve:")


def test_a_saved_plan_remembers_its_site_config_relative_to_itself(
    site: Path, tmp_path: Path
) -> None:
    plans = tmp_path / "repo" / "plans"
    plans.mkdir(parents=True)
    code, _, err = run_cli(
        ["plan", "-M", "n1-push", "-H", "sim", "--site-config", str(site), "-o", "plans/x.json"],
        cwd=tmp_path / "repo",
    )
    assert code == 0, err
    from pveplan.planner._planfile import read_plan_file

    header = read_plan_file(plans / "x.json").header
    assert header.site_config == "../../site-config"
    assert (plans / header.site_config).resolve() == site.resolve()
