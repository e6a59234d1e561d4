"""Issue 23's first "must show", on the simulator: the `lab-mix` example, a container
and a VM with two disks and two NICs (one on VLAN 30) on sim, a template and two linked
clones of it on sim2, applies, re-applies with nothing to run, is in sync in `status`,
and destroys, leaving nothing of it on either host. Every PVE call the run made is
checked against the 9.1 schema at the session's end (conftest's contract check).
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from pveplan.sim import read_state
from tests.cli_runner import run_cli

from .conftest import Lab
from .test_apply import counts, resources

pytestmark = pytest.mark.slow

BASE = ("-M", "lab-mix", "-H", "sim")
VMIDS = {"mix-box": 99301, "mix-db": 99302, "mix-tmpl": 99310, "mix-web-1": 99311}
VMIDS["mix-web-2"] = 99312


def _guests(lab: Lab) -> dict[str, dict]:
    """The lab's guests (VMs and containers) on every simulated host, by name."""
    return {g["name"]: g for g in read_state(lab.sim)["vms"].values() if g["name"] in VMIDS}


def _timed(lab: Lab, *words: str) -> tuple[str, float]:
    started = time.monotonic()
    code, out, err = run_cli(lab.args(*words, *BASE, "--yes"))
    assert code == 0, out + err
    return out, time.monotonic() - started


def test_the_mixed_lab_on_two_hosts_applies_reapplies_and_destroys(lab: Lab) -> None:
    out, cold = _timed(lab, "apply")
    assert counts(out)["failed"] == 0
    guests = _guests(lab)
    placed = {name: (g["node"], g["vmid"], g.get("type", "qemu")) for name, g in guests.items()}
    assert placed == {
        "mix-box": ("sim", 99301, "lxc"),
        "mix-db": ("sim", 99302, "qemu"),
        "mix-tmpl": ("sim2", 99310, "qemu"),
        "mix-web-1": ("sim2", 99311, "qemu"),
        "mix-web-2": ("sim2", 99312, "qemu"),
    }
    assert guests["mix-box"]["status"] == "running"
    assert guests["mix-box"]["config"]["rootfs"].endswith("size=4G")
    db = guests["mix-db"]["config"]
    assert "size=8G" in db["scsi0"] and "size=4G" in db["scsi1"]
    assert "tag" not in db["net0"] and "tag=30" in db["net1"] and "mtu=1400" in db["net1"]
    template = guests["mix-tmpl"]
    assert template["config"]["template"] == 1 and template["status"] == "stopped"
    base = "local:99310/base-99310-disk-0.qcow2"
    for name in ("mix-web-1", "mix-web-2"):  # thin children of the template's disk, on sim2
        assert guests[name]["config"]["scsi0"].startswith(f"{base}/{VMIDS[name]}/")
        assert guests[name]["status"] == "running"

    out, warm = _timed(lab, "apply")
    assert counts(out)["ran"] == 0 and counts(out)["cached"] > 0

    code, out, err = run_cli(lab.args("status", *BASE, "--json"))
    assert code == 0, out + err
    states = {n["name"]: (n["type"], n["host"], n["state"]) for n in json.loads(out)["nodes"]}
    assert states == {
        "mix-box": ("ct", "sim", "in_sync"),
        "mix-db": ("vm", "sim", "in_sync"),
        "mix-tmpl": ("template", "sim2", "in_sync"),
        "mix-web-1": ("vm", "sim2", "in_sync"),
        "mix-web-2": ("vm", "sim2", "in_sync"),
    }

    # A clone on sim2 stopped by hand: the refresh sees it (drift) and starts it again.
    qm = str(lab.sim.host_dir("sim2") / "bin" / "qm")
    subprocess.run([qm, "stop", "99311"], check=True, capture_output=True)
    out, _ = _timed(lab, "apply", "--refresh")
    assert "~ vm mix-web-1  status: stopped (live) -> running (manifest)" in out, out
    assert counts(out)["ran"] == 1 and _guests(lab)["mix-web-1"]["status"] == "running"

    out, gone = _timed(lab, "destroy")
    done = [line for line in out.splitlines() if ".destroy (" in line]
    assert len(done) == 5 and "node.mix-tmpl.destroy" in done[-1], out  # after its clones
    assert _guests(lab) == {}
    for host in ("sim", "sim2"):  # nothing of the lab's guests left on either host's disk
        for vmid in VMIDS.values():
            assert not lab.sim.vm_dir(host, vmid).exists(), (host, vmid)
    assert resources(lab, "lab-mix@sim") == {}
    print(f"lab-mix: cold apply {cold:.1f}s, re-apply {warm:.1f}s, destroy {gone:.1f}s")
