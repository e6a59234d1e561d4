"""Each run's report on disk, as iac-driver writes it: one JSON and one markdown file.

iac-driver's `TestReport` writes `YYYYMMDD-HHMMSS.manifest.<subject>.<passed|failed>.json`
and `.md` for every `test` run and every scenario (the subject: the manifest's name, or the
scenario's). Its directory moved: `reports/` in iac-driver's checkout (the working
directory of `./run.sh`), then `$HOMESTAK_ROOT/logs/` (v0.58). pveplan writes a report for
`create` and `destroy` too (subject `create-NAME`, `destroy-NAME`), and chooses the
directory as documented in docs/cli.md ("Run reports"): `-r/--report-dir DIR`, else
$PVEPLAN_REPORT_DIR, else `$HOMESTAK_ROOT/logs` when HOMESTAK_ROOT is set, else
`reports/` in the working directory.

`emit_report` is the one call a command makes at its end (verbs and scenarios alike): it
prints the `--json-output` JSON or the table, writes the files, and returns the exit code.
"""

from __future__ import annotations

import argparse
import json
import socket
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._fmt import write_atomic

if TYPE_CHECKING:
    from . import Console
    from ._homestak_report import NodeResult, Phase

COMPAT_HINT = "see docs/homestak-compat.md#reports"
_EMOJI = {"passed": "✅", "failed": "❌", "skipped": "⏭️"}


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """`-r/--report-dir DIR`, iac-driver's flag, on every command that writes a report."""
    parser.add_argument(
        "-r",
        "--report-dir",
        metavar="DIR",
        help="where the run's report files go (default: $PVEPLAN_REPORT_DIR, else "
        "$HOMESTAK_ROOT/logs when HOMESTAK_ROOT is set, else ./reports)",
    )


def report_dir(args: argparse.Namespace, console: Console) -> tuple[Path, bool]:
    """The directory of this run's report files, and whether it is the working directory's
    `reports/` fallback (where pveplan departs from iac-driver's newest default)."""
    chosen = getattr(args, "report_dir", None) or console.env.get("PVEPLAN_REPORT_DIR")
    if chosen:
        return _absolute(Path(chosen), console), False
    root = console.env.get("HOMESTAK_ROOT")
    if root:
        return _absolute(Path(root), console) / "logs", False
    return console.cwd / "reports", True


def _absolute(path: Path, console: Console) -> Path:
    return path if path.is_absolute() else console.cwd / path


def subject_of(verb: str, manifest: str) -> str:
    """The subject of a verb's report file: the manifest's name for `test` (iac-driver's
    `manifest-test-NAME` shortened, as it does), `VERB-NAME` for the others."""
    return manifest if verb == "test" else f"{verb}-{manifest}"


def report_filename(started: datetime, subject: str, success: bool, ext: str) -> str:
    """`YYYYMMDD-HHMMSS.manifest.<subject>.<passed|failed>.<ext>` (iac-driver's name; a
    `/` in the subject becomes `-`, an empty subject is `unknown`)."""
    stamp = started.strftime("%Y%m%d-%H%M%S")
    if subject.startswith("manifest-test-"):
        subject = subject[len("manifest-test-") :]
    subject = subject.replace("/", "-").replace(":", "-") or "unknown"
    return f"{stamp}.manifest.{subject}.{'passed' if success else 'failed'}.{ext}"


def file_report(
    report: dict[str, Any],
    *,
    host: str,
    started: float,
    finished: float,
    phases: Sequence[Phase] = (),
    title: str | None = None,
) -> dict[str, Any]:
    """The JSON file: the `--json-output` report with iac-driver's file fields (host,
    hostname, started_at, finished_at, duration) and each phase's description and message."""
    data = {
        "scenario": report.get("scenario") or title or f"manifest-{report.get('verb')}",
        "host": host,
        "hostname": socket.gethostname(),
        "started_at": datetime.fromtimestamp(started).isoformat(),
        "finished_at": datetime.fromtimestamp(finished).isoformat(),
        "duration": round(finished - started, 3),
        **report,
    }
    if phases:
        data["phases"] = [
            {
                "name": p.name,
                "description": p.description or p.name,
                "status": p.status,
                "message": p.message,
                "duration": round(p.duration, 3),
            }
            for p in phases
        ]
    return data


def render_markdown(data: dict[str, Any], title: str) -> str:
    """The markdown file: title, host, status, date, duration, then the phases and nodes."""
    started = data.get("started_at") or ""
    lines = [
        f"# {title}",
        "",
        f"**Host**: {data.get('host', '-')}",
        f"**Status**: {'PASSED' if data.get('success') else 'FAILED'}",
        f"**Date**: {started.replace('T', ' ')[:19] or 'N/A'}",
        f"**Duration**: {float(data.get('duration') or 0.0):.1f}s",
    ]
    if data.get("error"):
        lines.append(f"**Error**: {_cell(str(data['error']))}")
    if data.get("phases"):
        lines += ["", "## Phases", "", "| Phase | Status | Duration | Message |"]
        lines.append("|-------|--------|----------|---------|")
        for p in data["phases"]:
            emoji = _EMOJI.get(p["status"], "❓")
            lines.append(
                f"| {p['name']} | {emoji} {p['status']} | {float(p['duration']):.1f}s "
                f"| {_cell(p.get('message') or '')} |"
            )
    if data.get("nodes"):
        lines += ["", "## Nodes", "", "| Node | Status | VM ID | IP | Duration | Error |"]
        lines.append("|------|--------|-------|----|----------|-------|")
        for n in data["nodes"]:
            duration = "-" if n["duration"] is None else f"{float(n['duration']):.1f}s"
            lines.append(
                f"| {n['name']} | {n['status']} | {_or_dash(n['vm_id'])} | {_or_dash(n['ip'])} "
                f"| {duration} | {_cell(n['error'] or '')} |"
            )
    lines += ["", "---", f"Generated: {datetime.now().isoformat(timespec='seconds')}", ""]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """One table cell: no line breaks, no column separators."""
    return " ".join(text.split()).replace("|", "\\|")


def _or_dash(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def write_report(
    folder: Path,
    data: dict[str, Any],
    *,
    subject: str,
    started: float,
) -> tuple[Path, Path]:
    """Write `data` as JSON and markdown under `folder` (made if missing); the two paths.
    A name taken already (two runs of one subject in the same second) gets `-2`, `-3`."""
    when = datetime.fromtimestamp(started)
    success = bool(data.get("success"))
    folder.mkdir(parents=True, exist_ok=True)
    base = report_filename(when, subject, success, "json")
    stamp = when.strftime("%Y%m%d-%H%M%S")
    number = 1
    while (folder / base).exists() or (folder / base.replace(".json", ".md")).exists():
        number += 1
        base = report_filename(when, subject, success, "json").replace(
            stamp, f"{stamp}-{number}", 1
        )
    json_path = folder / base
    md_path = folder / (base[: -len(".json")] + ".md")
    write_atomic(json_path, json.dumps(data, indent=2, sort_keys=False) + "\n")
    write_atomic(md_path, render_markdown(data, str(data.get("scenario") or subject)))
    return json_path, md_path


def emit_report(
    args: argparse.Namespace,
    console: Console,
    report: dict[str, Any],
    *,
    host: str,
    subject: str,
    started: float,
    phases: Sequence[Phase] = (),
    nodes: Sequence[NodeResult] = (),
    write: bool = True,
    title: str | None = None,
) -> int:
    """End a run: print `report` (as JSON on stdout with --json-output, else the node table),
    write its files (unless `write` is False: a dry run), return 0 on success, else 1.

    `report` is `verb_report(...)` or `scenario_report(...)`; `phases` adds their details
    to the files; `nodes` are the table's rows (their place in the tree shown); `title`
    names a verb's run in the files (iac-driver's `manifest-test-NAME`).
    """
    from ._homestak_report import node_table, phase_table

    finished = time.time()
    if getattr(args, "json_output", False):
        console.print(json.dumps(report, indent=2))
    elif nodes:
        console.print(node_table(nodes))
    elif phases:
        console.print(phase_table(phases))
    if write:
        folder, fallback = report_dir(args, console)
        data = file_report(
            report, host=host, started=started, finished=finished, phases=phases, title=title
        )
        try:
            json_path, _ = write_report(folder, data, subject=subject, started=started)
        except OSError as exc:
            console.error(
                f"error: cannot write the run's report to {folder}: {exc.strerror or exc}; "
                "choose a writable directory with -r/--report-dir DIR"
            )
            return 1
        console.error(f"Report written to {json_path} (and .md).")
        if fallback:
            console.error(
                "hint: iac-driver (v0.58+) writes reports to $HOMESTAK_ROOT/logs; pveplan "
                "writes them to ./reports unless HOMESTAK_ROOT, $PVEPLAN_REPORT_DIR or "
                f"-r DIR says otherwise ({COMPAT_HINT})"
            )
    return 0 if report.get("success") else 1


def emit_scenario_report(
    args: argparse.Namespace,
    console: Console,
    scenario: str,
    *,
    host: str,
    started: float,
    phases: Sequence[Phase],
    success: bool | None = None,
    context: dict[str, Any] | None = None,
    error: str | None = None,
) -> int:
    """End a scenario run (`pve-setup`, ...) as iac-driver does: its phases printed (JSON
    with --json-output), the files written under the scenario's name; the exit code.
    `success` defaults to "no phase failed"; `args` needs `json_output` and `report_dir`
    (`add_report_options`), missing ones count as unset."""
    from ._homestak_report import scenario_report

    if success is None:
        success = all(phase.status != "failed" for phase in phases)
    report = scenario_report(
        scenario, success, time.time() - started, phases, context=context, error=error
    )
    return emit_report(
        args, console, report, host=host, subject=scenario, started=started, phases=phases
    )
