"""`snapshot_before` on the simulator: growing a disk of a VM that asks for it takes a
snapshot before the resize and removes it once the run succeeded (the host's call log shows
the order); with `keep` the snapshot stays; a change that grows nothing takes none."""

from __future__ import annotations

import json

import pytest

from tests.cli_runner import run_cli

from .conftest import Lab
from .test_api_transport import ApiLab, api_lab, env  # noqa: F401 (fixtures)
from .test_apply import counts

pytestmark = pytest.mark.slow

SNAPS = """
manifest "snaps" {{
  node "db" {{
    type = "vm"
    preset = "vm-xsmall"
    image = "debian-13"
    vmid = 99073
    disks = [{{ size = 8 }}, {{ size = {second} }}]
    snapshot_before = {policy}
    cores = {cores}
  }}
}}
"""


def _calls(lab: Lab) -> list[list[str]]:
    path = lab.store / "sim" / "calls.jsonl"
    if not path.exists():
        return []
    return [[r["tool"], *r.get("argv", [])] for r in map(json.loads, path.read_text().splitlines())]


def _snapshot_calls(calls: list[list[str]]) -> list[tuple[str, str]]:
    """(verb, last path segment) of each snapshot or resize call of VM 99073, in order."""
    out = []
    for argv in calls:
        path = next((a for a in argv if a.startswith("/nodes/")), "")
        if "/qemu/99073/" in path and ("snapshot" in path or path.endswith("/resize")):
            out.append((argv[1], path.split("/qemu/99073/", 1)[1]))
    return out


def _apply(lab: Lab, name: str) -> str:
    code, out, err = run_cli(lab.args("apply", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    assert counts(out)["failed"] == 0
    return out


def test_a_grow_is_snapshotted_first_and_the_snapshot_removed_or_kept(lab: Lab) -> None:
    name = lab.manifest("snaps", SNAPS.format(second=4, policy='["resize"]', cores=1))
    _apply(lab, name)
    (vm,) = lab.vms(name)
    assert vm.get("snapshots", {}) == {}  # a new VM: nothing to guard

    # a change that grows nothing takes no snapshot
    since = len(_calls(lab))
    lab.manifest("snaps", SNAPS.format(second=4, policy='["resize"]', cores=2))
    _apply(lab, name)
    assert _snapshot_calls(_calls(lab)[since:]) == []

    # a grow: the plan says so, the snapshot is taken before the resize, removed after
    lab.manifest("snaps", SNAPS.format(second=6, policy='["resize"]', cores=2))
    code, out, err = run_cli(lab.args("plan", "-M", name, "-H", "sim"))
    assert code == 0, out + err
    assert "snapshot pveplan-" in out and "before the disk grows" in out
    snapname = out.split("snapshot pveplan-", 1)[1].split()[0]
    since = len(_calls(lab))
    _apply(lab, name)
    assert _snapshot_calls(_calls(lab)[since:]) == [
        ("get", "snapshot"),
        ("create", "snapshot"),
        ("set", "resize"),
        ("delete", f"snapshot/pveplan-{snapname}"),
    ]
    (vm,) = lab.vms(name)
    assert vm.get("snapshots", {}) == {} and "parent" not in vm["config"]

    # with keep, the snapshot stays after the run, named as the plan said
    keep = '{ changes = ["resize"], keep = true }'
    lab.manifest("snaps", SNAPS.format(second=7, policy=keep, cores=2))
    code, out, err = run_cli(lab.args("plan", "-M", name, "-H", "sim"))
    assert "(kept)" in out, out + err
    kept = "pveplan-" + out.split("snapshot pveplan-", 1)[1].split()[0]
    _apply(lab, name)
    (vm,) = lab.vms(name)
    assert list(vm["snapshots"]) == [kept] and vm["config"]["parent"] == kept
    assert "size=6G" in vm["snapshots"][kept]["scsi1"]  # the disk as it was before

    code, out, err = run_cli(lab.args("destroy", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    assert lab.vms(name) == []  # PVE destroys a VM's snapshots with it


def test_the_same_over_the_https_api(env: ApiLab) -> None:  # noqa: F811 (a fixture)
    """Over PVE's API: POST .../snapshot before PUT .../resize, DELETE .../snapshot/NAME after."""
    from pveplan.sim import read_state

    manifest = env.site / "manifests" / "snaps.pvp"
    manifest.write_text(SNAPS.format(second=4, policy='["resize"]', cores=1))
    assert env.cli("apply", "-M", "snaps", "-H", "sim", "--yes")[0] == 0
    manifest.write_text(SNAPS.format(second=6, policy='["resize"]', cores=1))
    since = len(env.api_calls())
    code, out, err = env.cli("apply", "-M", "snaps", "-H", "sim", "--yes")
    assert code == 0, out + err
    calls = [  # recorded as the schema's path template, with its parameters
        (c["method"], c["path"].split("/qemu/{vmid}/", 1)[1], c["path_params"])
        for c in env.api_calls()[since:]
        if c["path"].startswith("/nodes/{node}/qemu/{vmid}/")
        and c["path_params"].get("vmid") in (99073, "99073")
        and ("snapshot" in c["path"] or c["path"].endswith("/resize"))
    ]
    assert [(m, p) for m, p, _ in calls] == [
        ("GET", "snapshot"),
        ("POST", "snapshot"),
        ("PUT", "resize"),
        ("DELETE", "snapshot/{snapname}"),
    ]
    assert calls[-1][2]["snapname"].startswith("pveplan-")
    vm = next(v for v in read_state(env.sim)["vms"].values() if v["vmid"] == 99073)
    assert vm.get("snapshots", {}) == {} and "size=6G" in vm["config"]["scsi1"]
    assert env.cli("destroy", "-M", "snaps", "-H", "sim", "--yes")[0] == 0
