"""Drift of nested levels at `plan` and `status` time, on the simulator: an operator changes
the VMs of a nested PVE host by hand (with that host's own `qm`); `plan` shows each drift
under its host with its live and wanted values, `status` names them, `apply` converges and
a second `plan` shows no changes. Each level is probed by its own executor with one listing
of its own host, counted in the simulator's call log. A stopped nested host makes its
children unreachable (named), a warning in `plan`, never a crash."""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest
import yaml

from tests.cli_runner import run_cli

from .conftest import Lab
from .test_nested import write_yaml

pytestmark = pytest.mark.slow

BASE = 89300


def two_children(name: str) -> str:
    """A pve VM on the sim with two VMs of its own, `db` and `edge`."""
    child = {"type": "vm", "spec": "base", "preset": "vm-small", "image": "debian-12"}
    nodes = [
        {"name": "pve1", "type": "pve", "spec": "pve", "preset": "vm-medium", "image": "pve-9"}
        | {"vmid": BASE},
        {"name": "db", **child, "memory": 1024, "vmid": BASE + 1, "parent": "pve1"},
        {"name": "edge", **child, "memory": 1024, "vmid": BASE + 2, "parent": "pve1"},
    ]
    return yaml.safe_dump(
        {"schema_version": 2, "name": name, "pattern": "tiered", "nodes": nodes}, sort_keys=False
    )


def cli(lab: Lab, *argv: str) -> tuple[int, str, str]:
    return run_cli(lab.args(*argv))


def pve_calls(lab: Lab, since: int) -> list[dict]:
    return [json.loads(line) for line in lab.sim.calls.read_text().splitlines()[since:]]


def listings(calls: list[dict]) -> Counter:
    """Per simulated PVE host, the calls that list its VMs (pvesh or the HTTPS API)."""
    found: Counter = Counter()
    for call in calls:
        said = call.get("path", "") if call["tool"] == "api" else " ".join(call.get("argv", []))
        if "/cluster/resources" in said:
            found[call["node"]] += 1
    return found


def test_nested_drift_is_planned_reported_and_converged(lab: Lab, tmp_path) -> None:
    name = write_yaml(lab, "nest-drift", two_children("nest-drift"))
    code, out, err = cli(lab, "apply", "-M", name, "-H", "sim", "--yes")
    assert code == 0, out + err
    qm = str(lab.sim.host_dir("pve1") / "bin" / "qm")  # an operator on the nested host
    subprocess.run([qm, "set", str(BASE + 1), "--memory", "4096"], check=True, capture_output=True)
    subprocess.run([qm, "stop", str(BASE + 2)], check=True, capture_output=True)

    since = len(lab.sim.calls.read_text().splitlines())
    code, out, err = cli(lab, "plan", "-M", name, "-H", "sim", "--detailed-exitcode")
    assert code == 2, out + err
    lines = out.splitlines()
    under = lines.index("  pve1 ›")
    assert "    ~ vm db  memory: 4096 (live) -> 1024 (manifest)" in "\n".join(lines[under:]), out
    assert "~ vm edge  status: stopped (live) -> running (manifest)" in out, out
    assert "2 drifted." in out, out
    calls = pve_calls(lab, since)
    assert listings(calls) == {"sim": 1, "pve1": 1}, calls
    assert len(calls) == 2, "a probe only lists: one call per host, at every level"

    code, out, err = cli(lab, "plan", "-M", name, "-H", "sim", "--refresh=false")
    assert code == 0 and "Drift" not in out, out + err
    saved = tmp_path / "nested.json"
    code, out, err = cli(lab, "plan", "-M", name, "-H", "sim", "-o", str(saved))
    assert code == 0, out + err
    recorded = json.loads(saved.read_text())["plan"]["drift"]  # hashed with the plan
    assert [(d["path"], d["node"], d["field"], d["live"]) for d in recorded] == [
        (["pve1"], "db", "memory", "4096"),
        (["pve1"], "edge", "status", "stopped"),
    ]

    code, out, err = cli(lab, "status", "-M", name, "-H", "sim", "--detailed-exitcode")
    assert code == 2, out + err
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line[:1].isalpha()}
    assert rows["db"][2] == "pve1" and rows["db"][-1] == "drifted", out
    assert rows["edge"][4] == "stopped" and rows["edge"][-1] == "drifted", out
    assert rows["pve1"][-2:] == ["in", "sync"], out
    code, out, err = cli(lab, "status", "-M", name, "-H", "sim", "--json")
    assert code == 0, out + err
    report = json.loads(out)
    assert {n["name"]: n["state"] for n in report["nodes"]} == {
        "pve1": "in_sync",
        "db": "drift",
        "edge": "drift",
    }
    assert report["nested"] == [{"path": ["pve1"], "state": "probed", "reason": None}]

    code, out, err = cli(lab, "apply", "-M", name, "-H", "sim", "--yes")
    assert code == 0, out + err
    code, out, err = cli(lab, "plan", "-M", name, "-H", "sim", "--detailed-exitcode")
    assert code == 0 and "No changes." in out and "Drift" not in out, out + err
    code, out, err = cli(lab, "status", "-M", name, "-H", "sim", "--detailed-exitcode")
    assert code == 0 and "3 node(s): 3 in sync." in out, out + err

    # The nested host itself stopped: its children cannot be seen, and say why.
    top = str(lab.sim.host_dir("sim") / "bin" / "qm")
    subprocess.run([top, "stop", str(BASE)], check=True, capture_output=True)
    code, out, err = cli(lab, "status", "-M", name, "-H", "sim", "--detailed-exitcode")
    assert code == 1, out + err
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line[:1].isalpha()}
    assert rows["db"][-1] == rows["edge"][-1] == "unreachable", out
    assert rows["pve1"][-1] == "drifted", out
    assert "nested host pve1 did not answer" in out + err
    assert "Unreachable: db, edge." in out
    assert "Traceback" not in err
    code, out, err = cli(lab, "plan", "-M", name, "-H", "sim", "--detailed-exitcode")
    assert code == 2, out + err  # the stopped host is the top level's drift
    assert "warning: nested host pve1 did not answer" in err, err
    assert "~ pve pve1  status: stopped (live) -> running (manifest)" in out, out
    code, out, err = cli(lab, "destroy", "-M", name, "-H", "sim", "--yes")
    assert code == 0, out + err


def test_a_deeper_level_is_probed_through_the_executor_above_it(lab: Lab) -> None:
    """Two nested levels: the driver asks pve1's executor, which asks pve2's; each lists
    its own host once, and the leaf's drift shows under both hosts."""
    from .test_nested import deep

    name = write_yaml(lab, "nest-deep", deep("nest-deep", 2, BASE + 50))
    code, out, err = cli(lab, "apply", "-M", name, "-H", "sim", "--yes")
    assert code == 0, out + err
    qm = str(lab.sim.host_dir("pve2") / "bin" / "qm")
    subprocess.run([qm, "set", str(BASE + 52), "--memory", "4096"], check=True, capture_output=True)

    since = len(lab.sim.calls.read_text().splitlines())
    code, out, err = cli(lab, "plan", "-M", name, "-H", "sim", "--detailed-exitcode")
    assert code == 2, out + err
    assert "  pve1 ›\n    pve2 ›\n      ~ vm leaf  memory: 4096 (live) -> 1024 (manifest)" in out, (
        out
    )
    calls = pve_calls(lab, since)
    assert listings(calls) == {"sim": 1, "pve1": 1, "pve2": 1}, calls
    assert len(calls) == 3, "one listing per host, at every level, and nothing else"
    code, out, err = cli(lab, "status", "-M", name, "-H", "sim", "--json")
    report = json.loads(out)
    assert {n["name"]: (n["host"], n["state"]) for n in report["nodes"]} == {
        "pve1": ("sim", "in_sync"),
        "pve2": ("pve1", "in_sync"),
        "leaf": ("pve2", "drift"),
    }, out + err
    code, out, err = cli(lab, "apply", "-M", name, "-H", "sim", "--yes")
    assert code == 0, out + err
    code, out, err = cli(lab, "plan", "-M", name, "-H", "sim", "--detailed-exitcode")
    assert code == 0 and "No changes." in out, out + err
    code, out, err = cli(lab, "destroy", "-M", name, "-H", "sim", "--yes")
    assert code == 0, out + err
