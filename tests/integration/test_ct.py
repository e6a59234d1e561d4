"""Containers (type ct) against the simulator: a VM and a container apply, re-apply with
nothing to run, are reachable over SSH with their pinned host keys, and destroy."""

from __future__ import annotations

import json
import subprocess

from pveplan.sim import read_state
from tests.cli_runner import run_cli

from .conftest import Lab
from .test_apply import counts, resources


def _guests(lab: Lab) -> dict[str, dict]:
    return {g["name"]: g for g in read_state(lab.sim)["vms"].values()}


def test_a_vm_and_a_container_apply_reapply_and_destroy(lab: Lab) -> None:
    code, out, err = run_cli(lab.args("apply", "-M", "ct-lab", "-H", "sim", "--yes"))
    assert code == 0, out + err
    guests = _guests(lab)
    assert guests["box"].get("type") == "lxc" and guests["box"]["status"] == "running"
    assert guests["web"].get("type") is None and guests["web"]["status"] == "running"
    config = guests["box"]["config"]
    assert config["rootfs"].endswith("size=8G")
    assert (config["cores"], config["memory"], config["swap"]) == (1, 512, 256)
    assert config["features"] == "nesting=1" and config["unprivileged"] == 1
    # The spec reached the container over SSH (as root, with its host key pinned).
    tree = lab.sim.vm_dir("sim", 99102)
    key = (tree / "etc" / "ssh" / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    results = resources(lab, "ct-lab@sim")
    assert results["node.box.create"]["vm_id"] == 99102
    assert (tree / "home" / "homestak").is_dir()  # base spec's user, made by config.push
    assert key[0] == "ssh-ed25519"
    # Root's keys reached the container from a file pct read, never on a command line.
    calls = [json.loads(line) for line in lab.sim.calls.read_text().splitlines()]
    (create,) = [c["argv"] for c in calls if c.get("tool") == "pct" and c["argv"][:1] == ["create"]]
    keys_file = create[create.index("--ssh-public-keys") + 1]
    assert keys_file.startswith("/tmp/")
    ran = [json.loads(line)["command"] for line in lab.sim.processes.read_text().splitlines()]
    assert any(c.startswith("rm -f") and keys_file in c for c in ran)  # removed after
    assert not any("ssh-" in word for c in calls for word in c.get("argv", []) if " " in word)

    code, out, err = run_cli(lab.args("apply", "-M", "ct-lab", "-H", "sim", "--yes"))
    assert code == 0 and counts(out)["ran"] == 0, out + err

    code, out, err = run_cli(lab.args("status", "-M", "ct-lab", "-H", "sim", "--json"))
    assert code == 0, out + err
    states = {n["name"]: (n["type"], n["state"]) for n in json.loads(out)["nodes"]}
    assert states == {"web": ("vm", "in_sync"), "box": ("ct", "in_sync")}

    code, out, err = run_cli(lab.args("output", "-M", "ct-lab", "-H", "sim", "--json"))
    assert code == 0, out + err
    box = next(n for n in json.loads(out)["nodes"] if n["name"] == "box")
    assert (box["type"], box["vmid"], box["user"]) == ("ct", 99102, "root")
    assert box["host_key"] == " ".join(key)

    # Stopped by hand (pct on the host): the refresh sees it and starts it again.
    pct = str(lab.sim.host_dir("sim") / "bin" / "pct")
    subprocess.run([pct, "stop", "99102"], check=True, capture_output=True)
    code, out, err = run_cli(lab.args("apply", "-M", "ct-lab", "-H", "sim", "--yes", "--refresh"))
    assert code == 0, out + err
    assert "~ ct box  status: stopped (live) -> running (manifest)" in out
    assert _guests(lab)["box"]["status"] == "running"

    code, out, err = run_cli(lab.args("destroy", "-M", "ct-lab", "-H", "sim", "--yes"))
    assert code == 0, out + err
    assert _guests(lab) == {}
    assert resources(lab, "ct-lab@sim") == {}


def test_a_container_the_store_forgot_is_found_by_its_tag_and_destroyed(lab: Lab) -> None:
    code, out, err = run_cli(lab.args("apply", "-M", "ct-lab", "-H", "sim", "--yes"))
    assert code == 0, out + err
    for path in lab.store.glob("store.sqlite*"):
        path.unlink()
    code, out, err = run_cli(lab.args("destroy", "-M", "ct-lab", "-H", "sim", "--yes"))
    assert code == 0, out + err
    assert _guests(lab) == {}


NESTED = """\
schema_version: 2
name: ct-nested
pattern: tiered
nodes:
  - name: hv
    type: pve
    spec: pve
    preset: vm-medium
    image: pve-9
    vmid: 99201
  - name: inner
    type: ct
    spec: base
    template: debian-13-standard
    vmid: 99202
    disk: 4
    parent: hv
"""


def test_a_container_inside_a_nested_pve_host_applies_reapplies_and_destroys(lab: Lab) -> None:
    (lab.site / "manifests" / "ct-nested.yaml").write_text(NESTED)
    code, out, err = run_cli(lab.args("apply", "-M", "ct-nested", "-H", "sim", "--yes"))
    assert code == 0, out + err
    guests = _guests(lab)
    assert (guests["inner"]["node"], guests["inner"].get("type")) == ("hv", "lxc")
    assert guests["inner"]["status"] == "running"
    assert (lab.sim.vm_dir("hv", 99202) / "home" / "homestak").is_dir()  # configured

    code, out, err = run_cli(lab.args("apply", "-M", "ct-nested", "-H", "sim", "--yes"))
    assert code == 0 and counts(out)["ran"] == 0, out + err

    code, out, err = run_cli(lab.args("output", "-M", "ct-nested", "-H", "sim", "--json"))
    assert code == 0, out + err
    inner = next(n for n in json.loads(out)["nodes"] if n["name"] == "inner")
    assert inner["type"] == "ct" and inner["host_key"].startswith("ssh-ed25519 ")

    code, out, err = run_cli(lab.args("destroy", "-M", "ct-nested", "-H", "sim", "--yes"))
    assert code == 0, out + err
    assert _guests(lab) == {}
