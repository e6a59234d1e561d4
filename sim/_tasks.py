"""PVE tasks: UPIDs, running a worker as a task, and the task status and log methods.

A task-returning method runs its worker synchronously (every command is one process),
records the task in the state with its log and exit status, and returns the UPID; the
caller polls `/nodes/NODE/tasks/UPID/status` as on a real host, and finds it stopped.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pveplan.sim._api import Ctx, route
from pveplan.sim._errors import ApiError, TaskError, fail, param_error
from pveplan.sim._state import locked_state, read_state
from pveplan.sim._stdio import write_stderr, write_stdout

CLI_USER = "root@pam"


UPID_RE = re.compile(
    r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):"
    r"([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$"
)


def _process_start() -> int:
    """This process's start time in clock ticks since boot (PVE's `pstart`)."""
    try:
        stat = Path("/proc/self/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


_WORKERS = itertools.count()
"""PVE forks a worker per task, so each UPID has a pid of its own; the daemon runs many tasks
(HTTPS requests) in one process, so the n-th task of a process gets pid + n."""


def make_upid(node: str, wtype: str, wid: str, user: str = CLI_USER) -> str:
    """`UPID:node:PID:PSTART:STARTTIME:type:id:user:` with uppercase hex fields."""
    return (
        f"UPID:{node}:{os.getpid() + next(_WORKERS):08X}:{_process_start():08X}:{int(time.time()):08X}:"
        f"{wtype}:{wid}:{user}:"
    )


@dataclass
class Task:
    """A running worker's log: lines go to stdout as they happen, as in PVE's CLI."""

    upid: str
    lines: list[str] = field(default_factory=list)
    warnings: int = 0

    def log(self, line: str) -> None:
        self.lines.append(line)
        write_stdout(line + "\n")

    def warn(self, line: str) -> None:
        self.warnings += 1
        self.log(f"WARN: {line}")


def _save_task(ctx: Ctx, task: Task, wtype: str, wid: str, exitstatus: str | None) -> None:
    match = UPID_RE.match(task.upid)
    assert match is not None
    record = {
        "node": ctx.node,
        "type": wtype,
        "id": wid,
        "user": ctx.user,
        "pid": int(match[3], 16),
        "pstart": int(match[4], 16),
        "starttime": int(match[5], 16),
        "status": "running" if exitstatus is None else "stopped",
        "log": list(task.lines),
    }
    if exitstatus is not None:
        record["exitstatus"] = exitstatus
    with locked_state(ctx.root) as state:
        state["tasks"][task.upid] = record


def run_task(ctx: Ctx, wtype: str, wid: str, worker: Callable[[Task], None]) -> str:
    """Run `worker` as a PVE task, synchronously as the CLI does, and return its UPID.

    A worker failure does not fail the call: its message goes to stderr and becomes the
    task's exitstatus (and the `TASK ERROR:` last log line), exactly like real PVE.
    """
    task = Task(make_upid(ctx.node, wtype, wid, ctx.user))
    _save_task(ctx, task, wtype, wid, None)
    try:
        worker(task)
        exitstatus = f"WARNINGS: {task.warnings}" if task.warnings else "OK"
        last = f"TASK {exitstatus}"
    except (TaskError, ApiError) as err:
        exitstatus = err.message.rstrip("\n")
        last = f"TASK ERROR: {exitstatus}"
        write_stderr(exitstatus)
    task.lines.append(last)
    _save_task(ctx, task, wtype, wid, exitstatus)
    return task.upid


def task_failed(ctx: Ctx, upid: str) -> str | None:
    """The error of a finished task, or None when it succeeded (`OK`/`WARNINGS: N`)."""
    status = read_state(ctx.root)["tasks"].get(upid, {}).get("exitstatus", "")
    return None if status == "OK" or status.startswith("WARNINGS: ") else status


def _find_task(ctx: Ctx, upid: str) -> dict[str, Any]:
    if not UPID_RE.match(upid):
        raise param_error({"upid": "unable to parse worker upid"})
    task = read_state(ctx.root)["tasks"].get(upid)
    if task is None or task["node"] != ctx.node:
        raise fail("no such task")
    return task


@route("GET", "/nodes/{node}/tasks/{upid}/status")
def task_status(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    task = _find_task(ctx, path["upid"])
    user, _, token = task["user"].partition("!")
    result = {
        key: task[key] for key in ("node", "pid", "pstart", "starttime", "type", "id", "status")
    }
    result.update(upid=path["upid"], user=user)
    if token:
        result["tokenid"] = token
    if task["status"] == "stopped":
        result["exitstatus"] = task["exitstatus"]
    return result


@route("GET", "/nodes/{node}/tasks/{upid}/log")
def task_log(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    lines = _find_task(ctx, path["upid"])["log"] or ["no content"]
    start, limit = params.get("start", 0), params.get("limit", 50)
    chosen = lines[start:] if limit == 0 else lines[start : start + limit]
    return [{"n": start + index + 1, "t": text} for index, text in enumerate(chosen)]
