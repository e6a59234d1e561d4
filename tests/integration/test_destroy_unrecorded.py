"""Destroy without records, against the simulator (issue 21).

homestak's iac-driver destroys what its state files record; its retired
`nested-pve-destructor` found VMs with one `/cluster/resources` listing filtered by name and
vmid. pveplan, with its store gone, finds a manifest's VMs on the host by their tag and by
a node's name at its pinned vmid, and never takes a VM of another name at that vmid.
`--dry-run` lists what would go and changes nothing.
"""

from __future__ import annotations

import json
import subprocess

from pveplan.sim import read_state
from tests.cli_runner import run_cli

from .conftest import Lab
from .test_apply import specless

BASE = 98600


def qm(lab: Lab, *argv: str) -> None:
    subprocess.run(
        [str(lab.sim.host_dir("sim") / "bin" / "qm"), *argv], check=True, capture_output=True
    )


def listings(lab: Lab) -> int:
    """How many VM listings of the host the simulator has answered so far."""
    if not lab.sim.calls.exists():
        return 0
    text = lab.sim.calls.read_text()
    return sum(
        1
        for line in text.splitlines()
        if "/cluster/resources" in line and '"vm"' in line and "type" in line
    )


def on_host(lab: Lab) -> dict[int, str]:
    vms = read_state(lab.sim)["vms"].values()
    return {v["vmid"]: v["config"].get("name") for v in vms if BASE < v["vmid"] < BASE + 10}


def test_destroy_finds_unrecorded_vms_by_name_and_vmid_and_spares_a_foreign_one(
    lab: Lab,
) -> None:
    name = lab.manifest("unrecorded", specless("unrecorded", 2, BASE))
    site = ["-M", name, "-H", "sim"]
    code, out, err = run_cli(lab.args("apply", *site, "--yes"))
    assert code == 0, out + err
    # w-1 as iac-driver would have left it: no pveplan tags, found by name+vmid only.
    qm(lab, "set", str(BASE + 1), "--delete", "tags")
    # vmid BASE+3 belongs to somebody else's VM, which the manifest now names by mistake.
    qm(lab, "create", str(BASE + 3), "--name", "payroll-db")
    lab.manifest(name, specless("unrecorded", 3, BASE))
    for path in lab.store.glob("store.sqlite*"):
        path.unlink()
    before = on_host(lab)
    assert before == {BASE + 1: "w-1", BASE + 2: "w-2", BASE + 3: "payroll-db"}

    listed = listings(lab)
    code, out, err = run_cli(lab.args("destroy", *site, "--dry-run", "--json-output"))
    assert code == 0, out + err
    assert listings(lab) == listed + 1, "one listing of the host, not one call per VM"
    report = json.loads(out)
    assert report["verb"] == "destroy" and report["dry_run"] is True
    nodes = {n["name"]: n for n in report["nodes"]}
    assert [n["status"] for n in report["nodes"]] == ["pending"] * 3
    assert (nodes["w-1"]["found_by"], nodes["w-1"]["vm_id"]) == ("name+vmid", BASE + 1)
    assert (nodes["w-2"]["found_by"], nodes["w-2"]["vm_id"]) == ("tag", BASE + 2)
    assert nodes["w-3"]["found_by"] is None and nodes["w-3"]["would_destroy"] is False
    assert "payroll-db" in err and "never destroyed" in err
    assert on_host(lab) == before

    code, out, err = run_cli(lab.args("destroy", *site, "--dry-run"))
    assert code == 0, out + err
    assert f"{BASE + 1} w-1: found by name and vmid" in out
    assert f"{BASE + 2} w-2: found by its pveplan tag" in out
    assert "left alone" in out and "payroll-db" in out
    assert "docs/homestak-compat.md#destroy" in err
    assert on_host(lab) == before
    assert not any(lab.store.glob("store.sqlite*")), "a dry run creates no store"

    code, out, err = run_cli(lab.args("destroy", *site, "--yes", "--json-output"))
    assert code == 0, out + err
    assert on_host(lab) == {BASE + 3: "payroll-db"}, "the foreign VM survives"
    assert "docs/homestak-compat.md#destroy" in err and "payroll-db" in err
    nodes = {n["name"]: n for n in json.loads(out)["nodes"]}
    assert sorted(nodes) == ["w-1", "w-2", "w-3"], "every node of the manifest is reported"
    assert nodes["w-1"]["found_by"] == "name+vmid" and nodes["w-2"]["found_by"] == "tag"
    assert nodes["w-3"]["status"] == "pending" and "payroll-db" in nodes["w-3"]["error"]
    qm(lab, "destroy", str(BASE + 3))


def test_the_text_report_says_why_each_unrecorded_vm_was_taken(lab: Lab) -> None:
    name = lab.manifest("rediscover", specless("rediscover", 3, BASE + 4))
    site = ["-M", name, "-H", "sim"]
    assert run_cli(lab.args("apply", *site, "--yes"))[0] == 0
    qm(lab, "set", str(BASE + 5), "--delete", "tags")
    for path in lab.store.glob("store.sqlite*"):
        path.unlink()
    code, out, err = run_cli(lab.args("destroy", *site, "--yes"))
    assert code == 0, out + err
    assert f"{BASE + 5} w-1: found by name and vmid" in out
    assert f"{BASE + 6} w-2: found by its pveplan tag" in out
    assert "docs/homestak-compat.md#destroy" in err
    assert on_host(lab) == {}
    # With the records there, --discover still destroys everything (recorded or not).
    assert run_cli(lab.args("apply", *site, "--yes"))[0] == 0
    code, out, err = run_cli(lab.args("destroy", *site, "--discover", "--yes", "--json-output"))
    assert code == 0, out + err
    assert on_host(lab) == {}
    nodes = json.loads(out)["nodes"]
    assert [(n["name"], n["found_by"]) for n in nodes] == [
        ("w-1", "record"),
        ("w-2", "record"),
        ("w-3", "record"),
    ]


def test_a_nested_hosts_guests_go_with_it_when_the_store_is_gone(lab: Lab) -> None:
    """The nested host cannot be asked (its host key was in the lost store): its VM is
    found on the target host, and the guests on its disks are destroyed with it."""
    from .test_nested import deep, write_yaml

    name = write_yaml(lab, "nestedleft", deep("nestedleft", 1, BASE + 10))
    site = ["-M", name, "-H", "sim"]
    code, out, err = run_cli(lab.args("apply", *site, "--yes"))
    assert code == 0, out + err
    guests = [v for v in read_state(lab.sim)["vms"].values() if v["node"] == "pve1"]
    assert [v["vmid"] for v in guests] == [BASE + 11]
    for path in lab.store.glob("store.sqlite*"):
        path.unlink()

    code, out, err = run_cli(lab.args("destroy", *site, "--dry-run", "--json-output"))
    assert code == 0, out + err
    nodes = {n["name"]: n for n in json.loads(out)["nodes"]}
    assert nodes["pve1"]["found_by"] == "tag" and nodes["leaf"]["found_by"] == "parent"
    assert nodes["leaf"]["would_destroy"] is True and "inside pve1" in nodes["leaf"]["note"]

    code, out, err = run_cli(lab.args("destroy", *site, "--yes", "--json-output"))
    assert code == 0, out + err
    nodes = {n["name"]: n for n in json.loads(out)["nodes"]}
    assert {nodes["pve1"]["status"], nodes["leaf"]["status"]} == {"destroyed"}
    assert nodes["leaf"]["found_by"] == "parent"
    state = read_state(lab.sim)
    assert on_host(lab) == {}
    assert [v for v in state["vms"].values() if v["node"] == "pve1"] == []
