"""Drift in every plan, on the simulator: an operator changes a VM by hand with `qm` (as on a
real host), `plan` shows the drift with its live and wanted values, `apply` converges it,
and a second `plan` shows no changes. The probe costs one listing per host, counted in the
simulator's call log."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.cli_runner import run_cli

from .conftest import Lab
from .test_apply import specless

pytestmark = pytest.mark.slow


def qm(lab: Lab, *argv: str) -> None:
    """`qm` on the simulated host, as an operator would run it there."""
    tool = str(lab.sim.host_dir("sim") / "bin" / "qm")
    subprocess.run([tool, *argv], check=True, capture_output=True)


def plan(lab: Lab, name: str, *extra: str) -> tuple[int, str]:
    code, out, err = run_cli(
        lab.args("plan", "-M", name, "-H", "sim", "--detailed-exitcode", *extra)
    )
    assert code in (0, 2), out + err
    return code, out


def apply(lab: Lab, name: str, *extra: str) -> tuple[str, str]:
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes", *extra))
    assert code == 0, out + err
    return out, err


def vm(lab: Lab, name: str, node: str = "w-1") -> dict:
    return next(v for v in lab.vms(name) if v["config"]["name"] == node)


def applied(lab: Lab, name: str, base: int, count: int = 1) -> str:
    name = lab.manifest(name, specless(name, count, base))
    apply(lab, name)
    assert plan(lab, name) == (0, plan(lab, name)[1])
    return name


def converges(lab: Lab, name: str) -> str:
    """apply, then a plan that finds nothing; apply's output."""
    out, _ = apply(lab, name)
    code, again = plan(lab, name)
    assert code == 0 and "No changes." in again and "Drift" not in again, again
    return out


def destroy(lab: Lab, name: str) -> None:
    assert run_cli(lab.args("destroy", "-M", name, "-H", "sim", "--yes"))[0] == 0


def test_memory_changed_by_hand(lab: Lab) -> None:
    name = applied(lab, "drift-mem", 88100)
    qm(lab, "set", "88101", "--memory", "4096")
    code, out = plan(lab, name)
    assert code == 2
    assert "~ vm w-1  memory: 4096 (live) -> 1024 (manifest)" in out
    assert "1 drifted" in out
    code, out, _ = run_cli(lab.args("plan", "-M", name, "-H", "sim", "--json"))
    report = json.loads(out)
    assert report["summary"]["drift"] == 1
    assert [(d["node"], d["field"], d["live"], d["wanted"]) for d in report["drift"]] == [
        ("w-1", "memory", "4096", "1024")
    ]
    converges(lab, name)
    assert str(vm(lab, name)["config"]["memory"]) == "1024"
    destroy(lab, name)


def test_vm_stopped_by_hand(lab: Lab) -> None:
    name = applied(lab, "drift-stop", 88200)
    qm(lab, "stop", "88201")
    code, out = plan(lab, name)
    assert code == 2 and "~ vm w-1  status: stopped (live) -> running (manifest)" in out
    converges(lab, name)
    assert vm(lab, name)["status"] == "running"
    destroy(lab, name)


def test_vm_destroyed_by_hand(lab: Lab) -> None:
    name = applied(lab, "drift-gone", 88300)
    before = vm(lab, name)["config"]["vmgenid"]
    qm(lab, "stop", "88301")
    qm(lab, "destroy", "88301")
    code, out = plan(lab, name)
    assert code == 2 and "+ vm w-1  (missing on host: destroyed outside pveplan)" in out
    converges(lab, name)
    again = vm(lab, name)
    assert again["vmid"] == 88301 and again["status"] == "running"
    assert again["config"]["vmgenid"] != before  # made anew, not imagined
    destroy(lab, name)


def test_disk_grown_by_hand_is_reported_never_shrunk(lab: Lab) -> None:
    name = applied(lab, "drift-disk", 88400)
    qm(lab, "resize", "88401", "scsi0", "+2G")
    code, out = plan(lab, name)
    assert code == 2 and "! vm w-1  disk: 10G (live) -> 8G (manifest)" in out
    assert "PVE cannot shrink a disk" in out and "set disk = 10" in out
    _, err = apply(lab, name)
    assert "not converged" in err and "disk: 10G (live)" in err
    assert "size=10G" in vm(lab, name)["config"]["scsi0"]  # untouched: PVE has no shrink
    # What the message says to do (the data goes with the VM): then nothing differs.
    qm(lab, "stop", "88401")
    qm(lab, "destroy", "88401")
    converges(lab, name)
    assert "size=8G" in vm(lab, name)["config"]["scsi0"]
    destroy(lab, name)


def test_tag_removed_by_hand(lab: Lab) -> None:
    name = applied(lab, "drift-tag", 88500)
    qm(lab, "set", "88501", "--tags", "pveplan-drift-tag;mine")
    code, out = plan(lab, name)
    assert code == 2 and "~ vm w-1  tags: mine;pveplan-drift-tag (live)" in out, out
    assert "pveplan removed outside pveplan" in out
    converges(lab, name)
    tags = str(vm(lab, name)["config"]["tags"]).split(";")
    assert {"pveplan", "pveplan-drift-tag", "mine"} <= set(tags)  # the operator's kept
    destroy(lab, name)


def test_probe_is_one_listing_per_host_whatever_the_vm_count(lab: Lab) -> None:
    name = applied(lab, "drift-count", 88600, count=4)
    for refresh in ((), ("--refresh=false",)):
        since = len(lab.sim.calls.read_text().splitlines())
        assert plan(lab, name, *refresh)[0] == 0
        calls = [json.loads(line) for line in lab.sim.calls.read_text().splitlines()[since:]]
        made = [" ".join([c["tool"], *c.get("argv", [])[:2]]) for c in calls]
        if refresh:
            assert made == [], "an offline plan never reaches for the host"
        else:
            assert made == ["pvesh get /cluster/resources"], made
    destroy(lab, name)


def test_saved_plan_applies_the_drift_it_recorded(lab: Lab, tmp_path) -> None:
    name = applied(lab, "drift-saved", 88700)
    qm(lab, "set", "88701", "--memory", "2048")
    saved = tmp_path / "drift.json"
    code, out, err = run_cli(lab.args("plan", "-M", name, "-H", "sim", "-o", str(saved)))
    assert code == 0, out + err
    recorded = json.loads(saved.read_text())["plan"]["drift"]
    assert [(d["field"], d["live"], d["wanted"]) for d in recorded] == [("memory", "2048", "1024")]
    offline = tmp_path / "offline.json"
    run_cli(lab.args("plan", "-M", name, "-H", "sim", "--refresh=false", "-o", str(offline)))
    assert "drift" not in json.loads(offline.read_text())["plan"]
    code, out, err = run_cli(lab.args("apply", str(saved), "--yes"))
    assert code == 0, out + err
    assert str(vm(lab, name)["config"]["memory"]) == "1024"
    # An offline plan trusts the store; applied with bare --refresh, every cached step is
    # probed, and the create step's probe sees the memory changed by hand too.
    qm(lab, "set", "88701", "--memory", "3072")
    offline = tmp_path / "offline2.json"
    run_cli(lab.args("plan", "-M", name, "-H", "sim", "--refresh=false", "-o", str(offline)))
    code, out, err = run_cli(lab.args("apply", str(offline), "--yes"))
    assert code == 0 and str(vm(lab, name)["config"]["memory"]) == "3072", out + err
    run_cli(lab.args("plan", "-M", name, "-H", "sim", "--refresh=false", "-o", str(offline)))
    code, out, err = run_cli(lab.args("apply", str(offline), "--yes", "--refresh"))
    assert code == 0 and str(vm(lab, name)["config"]["memory"]) == "1024", out + err
    destroy(lab, name)


def test_status_names_each_node_live_state_against_the_store(lab: Lab) -> None:
    name = applied(lab, "drift-status", 88800, count=3)
    qm(lab, "set", "88801", "--memory", "2048")
    qm(lab, "stop", "88802")
    qm(lab, "destroy", "88802")
    since = len(lab.sim.calls.read_text().splitlines())
    code, out, err = run_cli(lab.args("status", "-M", name, "-H", "sim", "--detailed-exitcode"))
    assert code == 2, out + err
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("w-")}
    assert rows["w-1"][-1] == "drifted" and rows["w-1"][4] == "running"
    assert "memory: 2048 (live) -> 1024 (manifest)" in out
    assert rows["w-2"][-2:] == ["missing", "missing"]
    assert rows["w-3"][-2:] == ["in", "sync"]
    assert "3 node(s): 1 in sync, 1 drifted, 1 missing." in out
    made = lab.sim.calls.read_text().splitlines()[since:]
    assert len(made) == 1, "status changes nothing: one listing, no other call"
    code, out, err = run_cli(lab.args("status", "-M", name, "-H", "sim", "--json"))
    assert code == 0, out + err
    report = json.loads(out)
    assert report["summary"]["missing"] == 1 and report["reachable"] is True
    assert {n["name"]: n["state"] for n in report["nodes"]} == {
        "w-1": "drift",
        "w-2": "missing",
        "w-3": "in_sync",
    }
    converges(lab, name)
    code, out, err = run_cli(lab.args("status", "-M", name, "-H", "sim", "--detailed-exitcode"))
    assert code == 0 and "3 node(s): 3 in sync." in out, out + err
    destroy(lab, name)


def test_a_nested_level_probes_its_own_vms_and_converges_them_on_apply(lab: Lab) -> None:
    from pveplan.sim import read_state

    from .test_nested import deep, level_counts, write_yaml

    name = write_yaml(lab, "drift-nest", deep("drift-nest", 1, 88900))
    apply(lab, name)

    def leaf() -> dict:
        vms = read_state(lab.sim)["vms"].values()
        return next(v for v in vms if v["vmid"] == 88901 and v["node"] == "pve1")

    tool = str(lab.sim.host_dir("pve1") / "bin" / "qm")  # an operator on the nested host
    subprocess.run([tool, "set", "88901", "--memory", "4096"], check=True, capture_output=True)
    out, _ = apply(lab, name, "-v")
    assert "drift: ~ vm leaf  memory: 4096 (live) -> 1024 (manifest)" in out, out
    assert str(leaf()["config"]["memory"]) == "1024"
    apply(lab, name)
    levels = level_counts(lab, f"{name}@sim")
    assert levels["pve1"]["finished"] == 0, levels  # converged: nothing left to do there
    subprocess.run([tool, "set", "88901", "--memory", "4096"], check=True, capture_output=True)
    apply(lab, name, "--refresh=false")  # trusts every level's store
    assert str(leaf()["config"]["memory"]) == "4096"
    destroy(lab, name)
