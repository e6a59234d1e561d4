"""homestak's run reports on the simulator: every node with iac-driver's status, in create order.

iac-driver registers every node of the manifest before it starts (`pending`), reports a
node `completed`, `failed` or `destroyed` when its turn comes, lists the nodes
breadth-first from the roots in manifest order, and writes each run to `reports/`. The
failures are the simulator's injected faults (config.json `faults`).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.cli_runner import run_cli

from .conftest import Lab


def _vm(name: str, vmid: int, parent: str | None = None) -> dict:
    node = {"name": name, "type": "vm", "spec": "base", "preset": "vm-small"}
    node |= {"image": "debian-12", "vmid": vmid}
    return {**node, "parent": parent} if parent else node


def _manifest(lab: Lab, name: str, nodes: list[dict], on_error: str) -> str:
    text = yaml.safe_dump(
        {
            "schema_version": 2,
            "name": name,
            "pattern": "tiered",
            "settings": {"on_error": on_error},
            "nodes": nodes,
        },
        sort_keys=False,
    )
    (lab.site / "manifests" / f"{name}.yaml").write_text(text)
    return name


def _host(name: str, vmid: int) -> dict:
    return {"name": name, "type": "pve", "spec": "pve", "preset": "vm-medium"} | {
        "image": "pve-9",
        "vmid": vmid,
    }


def _statuses(report: dict) -> list[tuple[str, str]]:
    return [(node["name"], node["status"]) for node in report["nodes"]]


def test_a_failed_nested_run_reports_every_node_breadth_first(lab: Lab, tmp_path: Path) -> None:
    # Manifest order differs from name order on purpose: the report follows the manifest.
    name = _manifest(
        lab,
        "rep-nest",
        [
            _host("rep-zhost", 88010),
            _vm("rep-solo", 88011),
            _vm("rep-kid-c", 88023, "rep-zhost"),
            _vm("rep-kid-a", 88021, "rep-zhost"),
            _vm("rep-kid-b", 88022, "rep-zhost"),
        ],
        on_error="stop",
    )
    lab.set_sim_config(
        faults=[{"op": "create", "name": "rep-kid-c", "message": "simulated create failure"}]
    )
    reports = tmp_path / "reports"
    try:
        code, out, err = run_cli(
            lab.args(
                "create", "-M", name, "-H", "sim", "--yes", "--json-output", "-r", str(reports)
            )
        )
    finally:
        lab.set_sim_config(faults=[])
    assert code == 1, out + err
    report = json.loads(out)
    assert report["verb"] == "create" and report["success"] is False
    assert _statuses(report) == [
        ("rep-zhost", "completed"),  # only its child failed
        ("rep-solo", "completed"),
        ("rep-kid-c", "failed"),
        ("rep-kid-a", "pending"),  # the nested level stopped before it was done
        ("rep-kid-b", "pending"),
    ]
    kid_c = report["nodes"][2]
    assert "simulated create failure" in kid_c["error"]
    assert report["error"].startswith("rep-kid-c: ")
    assert report["context"]["rep-zhost_vm_id"] == 88010
    assert report["context"]["rep-zhost_ip"].startswith("127.")
    # the run's report files, named as iac-driver names them
    written = sorted(p.name for p in reports.iterdir())
    assert len(written) == 2 and all(".manifest.create-rep-nest.failed." in n for n in written)
    on_disk = json.loads((reports / next(n for n in written if n.endswith(".json"))).read_text())
    assert _statuses(on_disk) == _statuses(report) and on_disk["host"] == "sim"
    markdown = (reports / next(n for n in written if n.endswith(".md"))).read_text()
    assert "**Status**: FAILED" in markdown and "| rep-kid-a | pending |" in markdown

    # destroy, as a person runs it: the table lists every node, nested ones too
    code, out, err = run_cli(
        lab.args("destroy", "-M", name, "-H", "sim", "--yes", "-r", str(reports))
    )
    assert code == 0, out + err
    header = next(
        i for i, line in enumerate(out.splitlines()) if line.split()[:2] == ["node", "status"]
    )
    rows = [line.split() for line in out.splitlines()[header + 1 : header + 6]]
    assert [(row[-5], row[-4]) for row in rows] == [
        (node, "destroyed")
        for node in ("rep-zhost", "rep-solo", "rep-kid-c", "rep-kid-a", "rep-kid-b")
    ], out
    assert lab.vms(name) == []
    (written,) = reports.glob("*.manifest.destroy-rep-nest.passed.json")
    report = json.loads(written.read_text())
    assert report["verb"] == "destroy" and report["success"] is True
    assert {status for _, status in _statuses(report)} == {"destroyed"} and len(
        report["nodes"]
    ) == 5


def test_the_test_verb_reports_a_rolled_back_host_destroyed(lab: Lab, tmp_path: Path) -> None:
    name = _manifest(
        lab,
        "rep-roll",
        [_host("rep-roll-host", 88110), _vm("rep-roll-leaf", 88121, "rep-roll-host")],
        on_error="rollback",
    )
    lab.set_sim_config(
        faults=[{"op": "start", "name": "rep-roll-leaf", "message": "simulated start failure"}]
    )
    reports = tmp_path / "reports"
    try:
        code, out, err = run_cli(
            lab.args("test", "-M", name, "-H", "sim", "--yes", "--json-output", "-r", str(reports))
        )
    finally:
        lab.set_sim_config(faults=[])
    assert code == 1, out + err
    report = json.loads(out)
    assert report["verb"] == "test" and report["success"] is False
    assert _statuses(report) == [("rep-roll-host", "destroyed"), ("rep-roll-leaf", "failed")]
    assert [(p["name"], p["status"]) for p in report["phases"]] == [
        ("create", "failed"),
        ("destroy", "passed"),  # cleanup_on_failure
    ]
    assert lab.vms(name) == []
    # iac-driver's test report file: the manifest's name as its subject
    names = sorted(p.name for p in reports.iterdir())
    assert [n.split(".", 1)[1] for n in names] == [
        "manifest.rep-roll.failed.json",
        "manifest.rep-roll.failed.md",
    ]
    on_disk = json.loads((reports / names[0]).read_text())
    assert on_disk["phases"][0]["message"] == "Failed node(s): rep-roll-leaf"
