"""Drift of what only a VM's config carries, on the simulator: an operator changes the NIC's
bridge, onboot and the cloud-init user and keys of applied VMs by hand with `qm set`. The
default `plan` (one listing per host) cannot see them, as documented; `plan --refresh=full`
reads each applied VM's config (one call per VM, counted) and shows each with its live and
wanted values; `apply --refresh=full` sets them back in place (same VM: same vmid, same
vmgenid, no destroy), and a second full plan shows no changes."""

from __future__ import annotations

import json

import pytest

from pveplan.executor._keys import generate_ed25519
from tests.cli_runner import run_cli

from .conftest import Lab
from .test_apply import specless
from .test_drift import apply, destroy, plan, qm

pytestmark = pytest.mark.slow

BASE = 88950


def calls_since(lab: Lab, since: int) -> list[str]:
    lines = lab.sim.calls.read_text().splitlines()[since:]
    return [" ".join([c["tool"], *c.get("argv", [])[:2]]) for c in map(json.loads, lines)]


def config(lab: Lab, vmid: int) -> dict:
    return next(v for v in lab.vms() if v["vmid"] == vmid)


def test_config_changed_by_hand_is_seen_and_set_back_by_a_full_refresh(lab: Lab, tmp_path) -> None:
    name = lab.manifest("drift-cfg", specless("drift-cfg", 2, BASE, extra="onboot = true"))
    apply(lab, name)
    qm(lab, "create", str(BASE + 9), "--name", "stranger")  # not ours: its config is not read
    w1, w2 = BASE + 1, BASE + 2
    assert str(config(lab, w1)["config"]["onboot"]) == "1"
    code, out = plan(lab, name, "--refresh=full")
    assert code == 0 and "No changes." in out, out  # made as the manifest says: no drift
    before = {vmid: config(lab, vmid)["config"]["vmgenid"] for vmid in (w1, w2)}
    mac = config(lab, w1)["config"]["net0"].split(",")[0].split("=")[1]
    qm(lab, "set", str(w1), "--net0", f"virtio={mac},bridge=vmbr1,firewall=1")
    qm(lab, "set", str(w1), "--onboot", "0")
    other = lab.sim.host_dir("sim") / "root" / "other.pub"  # a file on the host, for qm
    other_key = generate_ed25519("x@y")[1]
    other.write_text(other_key + "\n")
    qm(lab, "set", str(w2), "--ciuser", "mallory", "--sshkeys", "/root/other.pub")

    # The default probe is one listing: it does not see config-only options (documented).
    since = len(lab.sim.calls.read_text().splitlines())
    code, out = plan(lab, name)
    assert code == 0 and "No changes." in out, out
    assert calls_since(lab, since) == ["pvesh get /cluster/resources"]

    # A full refresh: the listing, then one config read per applied VM.
    since = len(lab.sim.calls.read_text().splitlines())
    code, out = plan(lab, name, "--refresh=full")
    made = calls_since(lab, since)
    assert made[0] == "pvesh get /cluster/resources"
    assert sorted(made[1:]) == sorted(
        f"pvesh get /nodes/sim/qemu/{vmid}/config" for vmid in (w1, w2)
    ), made
    assert code == 2, out
    assert "~ vm w-1  bridge: vmbr1 (live) -> vmbr0 (manifest)" in out
    assert "~ vm w-1  onboot: 0 (live) -> 1 (manifest)" in out
    assert "~ vm w-1  firewall: 1 (live) -> 0 (manifest)" in out  # the NIC says none
    assert "~ vm w-2  ciuser: mallory (live) -> homestak (manifest)" in out
    assert "next boot" in out
    keys = next(line for line in out.splitlines() if "w-2  sshkeys:" in line)
    assert "SHA256:" in keys and "x@y" in keys
    assert other_key.split()[1] not in out  # fingerprints, never a key blob
    code, out, _ = run_cli(lab.args("plan", "-M", name, "-H", "sim", "--refresh=full", "--json"))
    drift = {(d["node"], d["field"]): (d["live"], d["wanted"]) for d in json.loads(out)["drift"]}
    assert set(drift) == {
        ("w-1", "bridge"),
        ("w-1", "firewall"),
        ("w-1", "onboot"),
        ("w-2", "ciuser"),
        ("w-2", "sshkeys"),
    }

    # status --refresh=full names the same drift, changing nothing.
    code, out, err = run_cli(
        lab.args("status", "-M", name, "-H", "sim", "--refresh=full", "--detailed-exitcode")
    )
    assert code == 2 and "2 drifted" in out and "bridge: vmbr1 (live)" in out, out + err

    # apply --refresh=full sets them back in place: same VMs, nothing destroyed.
    since = len(lab.sim.calls.read_text().splitlines())
    apply(lab, name, "--refresh=full")
    made = calls_since(lab, since)
    assert not any(call.startswith("pvesh delete") for call in made), made
    assert f"pvesh set /nodes/sim/qemu/{w2}/cloudinit" in made  # the drive regenerated
    after = {vmid: config(lab, vmid) for vmid in (w1, w2)}
    assert {vmid: vm["config"]["vmgenid"] for vmid, vm in after.items()} == before
    # The NIC as the manifest writes it (no firewall), its MAC kept.
    assert after[w1]["config"]["net0"] == f"virtio={mac},bridge=vmbr0"
    assert str(after[w1]["config"]["onboot"]) == "1"
    assert after[w2]["config"]["ciuser"] == "homestak"
    assert after[w2]["cloudinit_drive"]["ciuser"] == "homestak"
    assert "x%40y" not in after[w2]["config"]["sshkeys"]

    code, out = plan(lab, name, "--refresh=full")
    assert code == 0 and "No changes." in out and "Drift" not in out, out
    destroy(lab, name)
    qm(lab, "destroy", str(BASE + 9))


def test_a_saved_full_plan_applies_the_config_drift_it_recorded(lab: Lab, tmp_path) -> None:
    name = lab.manifest("drift-cfg-saved", specless("drift-cfg-saved", 1, BASE + 10))
    apply(lab, name)
    vmid = BASE + 11
    qm(lab, "set", str(vmid), "--ciuser", "mallory")
    saved = tmp_path / "full.json"
    code, out, err = run_cli(
        lab.args("plan", "-M", name, "-H", "sim", "--refresh=full", "-o", str(saved))
    )
    assert code == 0, out + err
    recorded = json.loads(saved.read_text())["plan"]["drift"]
    assert [(d["field"], d["live"], d["wanted"]) for d in recorded] == [
        ("ciuser", "mallory", "homestak")
    ]
    code, out, err = run_cli(lab.args("apply", str(saved), "--yes"))
    assert code == 0, out + err
    assert config(lab, vmid)["config"]["ciuser"] == "homestak"
    code, out = plan(lab, name, "--refresh=full")
    assert code == 0 and "No changes." in out, out
    destroy(lab, name)
