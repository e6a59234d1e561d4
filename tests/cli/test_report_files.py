"""Run reports on disk (cli/_report_files.py): where they go, their names, their content.

iac-driver's `TestReport` (its tests/test_cli.py and reporting/report.py) writes
`YYYYMMDD-HHMMSS.manifest.<subject>.<passed|failed>.json|md`, the subject being the
manifest's name for `manifest test` (`manifest-test-` dropped) or the scenario's; the
JSON holds scenario, host, hostname, success, started_at, finished_at, duration and
phases; the markdown a title, host, PASSED/FAILED, date, duration and a phases table.
"""

from __future__ import annotations

import argparse
import io
import json
from datetime import datetime
from pathlib import Path

import pytest

from pveplan.cli import Console
from pveplan.cli._homestak_report import NodeResult, Phase, scenario_report, verb_report
from pveplan.cli._report_files import (
    emit_report,
    emit_scenario_report,
    render_markdown,
    report_dir,
    report_filename,
    subject_of,
    write_report,
)

STARTED = datetime(2026, 3, 22, 20, 26, 58).timestamp()


def console(tmp_path: Path, **env: str) -> Console:
    return Console(out=io.StringIO(), err=io.StringIO(), env=env, cwd=tmp_path)


def args(**flags: object) -> argparse.Namespace:
    return argparse.Namespace(**{"report_dir": None, "json_output": False, **flags})


NODES = [
    NodeResult(name="hv", status="completed", vm_id=110, ip="127.0.0.10", duration=3.5),
    NodeResult(name="kid", status="failed", vm_id=121, path=("hv",), error="boom | bad\nline"),
    NodeResult(name="kid-2", status="pending", vm_id=122, path=("hv",)),
]


def test_the_report_directory_flag_then_env_then_homestak_root_then_reports(tmp_path: Path) -> None:
    here = console(tmp_path)
    assert report_dir(args(), here) == (tmp_path / "reports", True)
    rooted = console(tmp_path, HOMESTAK_ROOT="/srv/homestak")
    assert report_dir(args(), rooted) == (Path("/srv/homestak/logs"), False)
    env = console(tmp_path, HOMESTAK_ROOT="/srv/homestak", PVEPLAN_REPORT_DIR="ci/out")
    assert report_dir(args(), env) == (tmp_path / "ci" / "out", False)
    assert report_dir(args(report_dir="/tmp/r"), env) == (Path("/tmp/r"), False)


def test_file_names_are_iac_drivers() -> None:
    when = datetime.fromtimestamp(STARTED)
    assert (
        report_filename(when, "n1-push", True, "json")
        == "20260322-202658.manifest.n1-push.passed.json"
    )
    assert (
        report_filename(when, "manifest-test-n2", False, "md")
        == "20260322-202658.manifest.n2.failed.md"
    )
    assert report_filename(when, "a/b", True, "md") == "20260322-202658.manifest.a-b.passed.md"
    assert report_filename(when, "", True, "json") == "20260322-202658.manifest.unknown.passed.json"
    assert [subject_of(v, "lab") for v in ("test", "create", "destroy")] == [
        "lab",
        "create-lab",
        "destroy-lab",
    ]


def test_a_run_writes_json_and_markdown_and_a_second_in_the_same_second_does_not_overwrite(
    tmp_path: Path,
) -> None:
    data = {"verb": "create", "success": False, "nodes": [n.as_json() for n in NODES]}
    first = write_report(tmp_path / "r", data, subject="create-lab", started=STARTED)
    second = write_report(tmp_path / "r", data, subject="create-lab", started=STARTED)
    assert [p.name for p in first] == [
        "20260322-202658.manifest.create-lab.failed.json",
        "20260322-202658.manifest.create-lab.failed.md",
    ]
    assert [p.name for p in second] == [
        "20260322-202658-2.manifest.create-lab.failed.json",
        "20260322-202658-2.manifest.create-lab.failed.md",
    ]
    assert json.loads(first[0].read_text()) == data


def test_the_markdown_has_iac_drivers_header_phases_and_the_nodes() -> None:
    phases = [
        {"name": "create", "status": "failed", "duration": 4.0, "message": "Failed node(s): kid"},
        {"name": "destroy", "status": "passed", "duration": 1.0, "message": ""},
    ]
    data = {
        "scenario": "manifest-test-lab",
        "host": "sim",
        "success": False,
        "started_at": "2026-03-22T20:26:58",
        "duration": 5.04,
        "phases": phases,
        "nodes": [n.as_json() for n in NODES],
        "error": "kid: boom",
    }
    text = render_markdown(data, "manifest-test-lab")
    assert text.startswith("# manifest-test-lab\n")
    for line in (
        "**Host**: sim",
        "**Status**: FAILED",
        "**Date**: 2026-03-22 20:26:58",
        "**Duration**: 5.0s",
        "| Phase | Status | Duration | Message |",
        "| create | ❌ failed | 4.0s | Failed node(s): kid |",
        "| destroy | ✅ passed | 1.0s |  |",
        "| hv | completed | 110 | 127.0.0.10 | 3.5s |  |",
        "| kid | failed | 121 | - | - | boom \\| bad line |",  # one cell, one line
        "| kid-2 | pending | 122 | - | - |  |",
    ):
        assert line in text.splitlines(), line


def test_emit_report_prints_json_or_the_table_and_writes_the_files(tmp_path: Path) -> None:
    report = verb_report("create", False, 2.0, NODES)
    out = console(tmp_path)
    code = emit_report(
        args(json_output=True, report_dir=str(tmp_path / "r")),
        out,
        report,
        host="sim",
        subject="create-lab",
        started=STARTED,
        nodes=NODES,
        title="manifest-create-lab",
    )
    assert code == 1
    assert json.loads(out.out.getvalue()) == report  # stdout holds the JSON alone
    written = sorted((tmp_path / "r").iterdir())
    on_disk = json.loads(written[0].read_text())
    assert on_disk["nodes"] == report["nodes"] and on_disk["host"] == "sim"
    assert (
        on_disk["scenario"] == "manifest-create-lab"
        and on_disk["started_at"] == "2026-03-22T20:26:58"
    )
    assert {"hostname", "finished_at", "duration"} <= set(on_disk)
    assert "Report written to" in out.err.getvalue() and "hint:" not in out.err.getvalue()

    human = console(tmp_path)
    assert (
        emit_report(args(), human, report, host="sim", subject="x", started=STARTED, nodes=NODES)
        == 1
    )
    table = human.out.getvalue().splitlines()
    assert table[0].split() == ["node", "status", "vmid", "address", "duration"]
    assert table[2].split()[:3] == ["hv", "›", "kid"] and "failed" in table[2]
    assert (tmp_path / "reports").is_dir()  # the fallback: ./reports, with the compat hint
    assert "docs/homestak-compat.md#reports" in human.err.getvalue()


def test_a_scenario_report_goes_through_the_same_call_with_its_phases(tmp_path: Path) -> None:
    phases = [Phase(name="ensure_pve", status="passed", duration=3.0, description="Install PVE")]
    report = scenario_report("pve-setup", True, 3.0, phases, context={"node_ip": "10.0.0.5"})
    out = console(tmp_path)
    code = emit_report(
        args(json_output=True, report_dir=str(tmp_path)),
        out,
        report,
        host="father",
        subject="pve-setup",
        started=STARTED,
        phases=phases,
    )
    assert code == 0
    assert json.loads(out.out.getvalue())["phases"] == [
        {"name": "ensure_pve", "status": "passed", "duration": 3.0}
    ]
    (json_file,) = tmp_path.glob("*.manifest.pve-setup.passed.json")
    on_disk = json.loads(json_file.read_text())
    assert on_disk["scenario"] == "pve-setup"
    assert on_disk["phases"] == [
        {
            "name": "ensure_pve",
            "description": "Install PVE",
            "status": "passed",
            "message": "",
            "duration": 3.0,
        }
    ]
    assert "| ensure_pve | ✅ passed | 3.0s |  |" in json_file.with_suffix(".md").read_text()


def test_a_dry_run_writes_nothing(tmp_path: Path) -> None:
    out = console(tmp_path)
    report = verb_report("create", True, 0.0, NODES)
    assert (
        emit_report(args(), out, report, host="sim", subject="x", started=STARTED, write=False) == 0
    )
    assert not (tmp_path / "reports").exists()


def test_an_unwritable_report_directory_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = console(tmp_path)
    report = verb_report("create", True, 0.0, NODES)
    code = emit_report(
        args(report_dir=str(blocker / "r")), out, report, host="sim", subject="x", started=STARTED
    )
    assert code == 1
    error = out.err.getvalue()
    assert error.startswith(f"error: cannot write the run's report to {blocker / 'r'}")
    assert "-r/--report-dir" in error and "Traceback" not in error


@pytest.mark.parametrize("verb", ["create", "destroy", "test"])
def test_the_verbs_take_report_dir(verb: str) -> None:
    from pveplan.cli._app import build_parser

    parsed = build_parser().parse_args([verb, "-M", "lab", "-H", "sim", "-r", "out"])
    assert parsed.report_dir == "out"
    parsed = build_parser().parse_args([verb, "-M", "lab", "-H", "sim", "--report-dir", "x"])
    assert parsed.report_dir == "x"


def test_a_scenario_ends_with_one_call_its_phases_as_a_table_or_json(tmp_path: Path) -> None:
    phases = [
        Phase(name="ensure_pve", status="passed", duration=3.0),
        Phase(name="configure", status="failed", duration=1.5, message="apt failed"),
    ]
    human = console(tmp_path)
    flags = args(report_dir=str(tmp_path / "r"))
    code = emit_scenario_report(
        flags, human, "pve-setup", host="father", started=STARTED, phases=phases
    )
    assert code == 1
    lines = [line.split() for line in human.out.getvalue().splitlines()]
    assert lines == [
        ["phase", "status", "duration", "message"],
        ["ensure_pve", "passed", "3.0s"],
        ["configure", "failed", "1.5s", "apt", "failed"],
    ]
    assert len(list((tmp_path / "r").glob("*.manifest.pve-setup.failed.*"))) == 2
    machine = console(tmp_path)
    flags = args(report_dir=str(tmp_path / "r"), json_output=True)
    emit_scenario_report(
        flags, machine, "pve-setup", host="father", started=STARTED, phases=phases[:1]
    )
    report = json.loads(machine.out.getvalue())
    assert report["scenario"] == "pve-setup" and report["success"] is True
    assert report["error"] is None and report["context"] == {}
