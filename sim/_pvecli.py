"""Simulated `pvesh`, `qm`, `pveum` and `pveversion` of a PVE 9.1 host: the entry point.

pveplan's driver talks to real PVE hosts through these commands over SSH, so the
simulator answers the same argument vectors with the same stdout, stderr and exit codes
(pve-api.md is the reference): synchronous parameter errors as `400 Parameter
verification failed.` plus `param: message` lines, other failures as a bare message, and
task-returning calls that run synchronously, echo the task log and print the UPID even
when the worker failed. Every command is a separate process, so all state lives in the
root's `state.json` (see docs/simulator.md).

This module is what a launcher runs (`python -m pveplan.sim._pvecli TOOL ROOT NODE
ARGS...`, or the scripts `sim._setup` writes into `hosts/NODE/bin/`): it sleeps the
configured latency, dispatches to the tool and records the call. `pvesh` is a thin
reader of the API routes; `qm` lives in `_qm`; `pveversion` is no API call, so it is
neither delayed nor recorded. Importing the route modules here is what registers them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pveplan.sim import (  # noqa: F401  (imported for their @route registrations)
    _access,
    _clone,
    _drives,
    _lxc,
    _nodes,
    _power,
    _snapshots,
    _storage,
    _storagecfg,
    _tasks,
    _vmconfig,
    _vms,
)
from pveplan.sim._api import CLI_METHODS, Ctx, Route, call_route, find_route
from pveplan.sim._cmdline import Options, parse_options, render
from pveplan.sim._errors import ApiError, NoHandler, render_error
from pveplan.sim._pct import pct_main
from pveplan.sim._pveum import pveum_main
from pveplan.sim._qm import qm_main
from pveplan.sim._setup import KERNEL_RELEASE, PVE_VERSION
from pveplan.sim._state import SimRoot, append_record, read_config
from pveplan.sim._stdio import write_stderr, write_stdout
from pveplan.sim._vms import QEMU_VERSION

# --- pvesh -----------------------------------------------------------------------------


def _print_result(found: Route, data: Any, opts: Options, fmt: str) -> None:
    if found.returns_null or opts.output.get("quiet") not in (None, "0"):
        return
    if fmt == "yaml":
        import yaml

        write_stdout(yaml.safe_dump(data, sort_keys=True, default_flow_style=False))
        return
    write_stdout(render(data, fmt))


def pvesh_main(ctx: Ctx, argv: list[str]) -> int:
    """`pvesh get|create|set|delete PATH [OPTIONS]`."""
    if not argv or argv[0] not in CLI_METHODS:
        write_stderr(
            f"ERROR: unknown command 'pvesh {argv[0]}'" if argv else "ERROR: no command specified"
        )
        write_stderr("USAGE: pvesh <COMMAND> [ARGS] [OPTIONS]")
        return 255
    if len(argv) < 2:
        raise ApiError(400, "not enough arguments")
    found, path = find_route(argv[0], argv[1])
    opts = parse_options(argv[2:], found.table)
    if opts.positional:
        raise ApiError(400, "too many arguments")
    fmt = opts.output_format  # checked before any work is done
    data = call_route(ctx, found, path, opts.params)
    _print_result(found, data, opts, fmt)
    return 0


# --- pveversion ---------------------------------------------------------------------------


def pveversion_main(ctx: Ctx, argv: list[str]) -> int:
    """`pveversion [-v|--verbose]`: the manager's version line, or the package list."""
    unknown = [arg for arg in argv if arg not in ("-v", "--verbose")]
    if unknown:
        write_stderr(f"Unknown option: {unknown[0].lstrip('-')}\n400 unable to parse option")
        write_stderr("pveversion [OPTIONS]")
        return 255
    release, version, repoid = PVE_VERSION["release"], PVE_VERSION["version"], PVE_VERSION["repoid"]
    if not argv:
        write_stdout(f"pve-manager/{version}/{repoid} (running kernel: {KERNEL_RELEASE})\n")
        return 0
    write_stdout(
        f"proxmox-ve: {release}.0 (running kernel: {KERNEL_RELEASE})\n"
        f"pve-manager: {version} (running version: {version}/{repoid})\n"
        f"qemu-server: {release}.2\n"
        f"pve-qemu-kvm: {QEMU_VERSION}-1\n"
    )
    return 0


# --- entry points ------------------------------------------------------------------------

TOOLS: dict[str, Callable[[Ctx, list[str]], int]] = {
    "pvesh": pvesh_main,
    "qm": qm_main,
    "pct": pct_main,
    "pveum": pveum_main,
}
LOCAL_TOOLS: dict[str, Callable[[Ctx, list[str]], int]] = {"pveversion": pveversion_main}
"""Host commands that read local files only: no API call, so no latency and no record."""


def _run_tool(tool: str, ctx: Ctx, argv: list[str]) -> int:
    try:
        return TOOLS[tool](ctx, argv)
    except NoHandler as err:
        write_stderr(err.message)
        return 1
    except ApiError as err:
        write_stderr(render_error(err))
        return 255


def main(tool: str, argv: list[str], root: str, node: str, *, cwd: Path | None = None) -> int:
    """Run simulated `tool` (pvesh, qm or pveum) on host `node` of simulator `root`.

    Sleeps the configured latency first (a real API call is never instant) and records
    the call in `calls.jsonl`, whatever its outcome. `cwd` is the command's working
    directory when it is not this process's (the daemon runs it in-process, `_inproc`).
    """
    sim = SimRoot(root)
    if tool in LOCAL_TOOLS:
        return LOCAL_TOOLS[tool](Ctx(sim, node, cwd=cwd), list(argv))
    code = 1
    try:
        if latency := float(read_config(sim).get("latency") or 0):
            time.sleep(latency)  # not sleep(0): on a busy machine that still gives up the CPU
        code = _run_tool(tool, Ctx(sim, node, cwd=cwd), list(argv))
        return code
    finally:
        append_record(sim.calls, {"tool": tool, "argv": list(argv), "node": node, "exit": code})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[4:], sys.argv[2], sys.argv[3]))
