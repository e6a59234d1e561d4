"""Simulated `qm`: its subcommands, as thin layers over the same API methods pvesh calls.

`qm` differs from pvesh only at the edges: positional vmids, its usage lines on
parameter errors, waiting for the tasks it starts, its own output formats.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from pveplan.sim._api import Ctx, call_api, find_route
from pveplan.sim._cmdline import Options, cell, json_pretty, parse_options
from pveplan.sim._errors import ApiError, SimError, fail, param_error, render_error
from pveplan.sim._params import GIB, MIB
from pveplan.sim._stdio import write_stderr, write_stdout
from pveplan.sim._tasks import task_failed
from pveplan.sim._vms import list_vms


class QmUsage(SimError):
    """A qm command line PVE's CLIHandler rejects before calling any API method."""


def _qm_call(ctx: Ctx, cmd: str, template: str, opts: Options, **fixed: str) -> Any:
    """Call the API method behind a qm command (path fields and fixed parameters filled)."""
    path = template.format(
        node=ctx.node, **{k: v for k, v in fixed.items() if "{" + k + "}" in template}
    )
    params = {**opts.params, **{k: v for k, v in fixed.items() if "{" + k + "}" not in template}}
    return call_api(ctx, cmd, path, params)


def _qm_options(
    ctx: Ctx,
    cmd: str,
    template: str,
    argv: list[str],
    count: int,
    extra: dict[str, dict[str, Any]] | None = None,
) -> tuple[list[str], Options]:
    """qm's positional arguments (exactly `count`) and options, parsed per the API method."""
    found, _ = find_route(cmd, template.format(node=ctx.node, vmid=100, snapname="snap"))
    opts = parse_options(argv, {**found.table, **(extra or {})})
    if len(opts.positional) < count:
        raise QmUsage("not enough arguments")
    if len(opts.positional) > count:
        raise QmUsage("too many arguments")
    return opts.positional, opts


def _sshkeys_from_file(ctx: Ctx, opts: Options) -> None:
    """qm reads `--sshkeys FILE` and URL-encodes it (the API wants the encoded text)."""
    if "sshkeys" not in opts.params:
        return
    name = opts.params["sshkeys"]
    try:
        text = ctx.host_path(name).read_text()
    except OSError as err:
        raise fail(f"unable to open file '{name}' - {err.strerror}") from err
    opts.params["sshkeys"] = quote(text, safe="")


def _wait_task(ctx: Ctx, upid: str) -> int:
    """qm blocks until the task ends: exit 255 when the worker failed (already on stderr)."""
    return 255 if task_failed(ctx, upid) is not None else 0


VM_PATH = "/nodes/{node}/qemu/{vmid}"


def qm_list(ctx: Ctx, argv: list[str]) -> int:
    """`qm list`: PVE's printf columns, nothing at all when there are no VMs."""
    _qm_options(ctx, "get", "/nodes/{node}/qemu", argv, 0)
    vms = sorted(list_vms(ctx, {}, {}), key=lambda vm: vm["vmid"])
    if vms:
        write_stdout(
            f"{'VMID':>10} {'NAME':<20} {'STATUS':<10} {'MEM(MB)':<10} {'BOOTDISK(GB)':>12} {'PID':<10}\n"
        )
    for vm in vms:
        memory, disk, pid = vm["maxmem"] // MIB, vm["maxdisk"] / GIB, vm.get("pid", 0)
        write_stdout(
            f"{vm['vmid']:>10} {vm['name']:<20} {vm['status']:<10} {memory:<10} {disk:>12.2f} {pid:<10}\n"
        )
    return 0


def qm_status(ctx: Ctx, argv: list[str]) -> int:
    verbose_flag = {"verbose": {"type": "boolean"}}
    (vmid,), opts = _qm_options(ctx, "get", VM_PATH + "/status/current", argv, 1, verbose_flag)
    verbose = opts.params.pop("verbose", "0") not in ("0", "")
    status = _qm_call(ctx, "get", VM_PATH + "/status/current", opts, vmid=vmid)
    if not verbose:
        write_stdout(f"status: {status['status']}\n")
        return 0
    write_stdout("".join(f"{key}: {cell(status[key])}\n" for key in sorted(status)))
    return 0


def _qm_power(op: str) -> Callable[[Ctx, list[str]], int]:
    def command(ctx: Ctx, argv: list[str]) -> int:
        template = VM_PATH + f"/status/{op}"
        (vmid,), opts = _qm_options(ctx, "create", template, argv, 1)
        return _wait_task(ctx, _qm_call(ctx, "create", template, opts, vmid=vmid))

    command.__doc__ = f"`qm {op} VMID`: blocks until the task ends."
    return command


def qm_destroy(ctx: Ctx, argv: list[str]) -> int:
    (vmid,), opts = _qm_options(ctx, "delete", VM_PATH, argv, 1)
    return _wait_task(ctx, _qm_call(ctx, "delete", VM_PATH, opts, vmid=vmid))


def qm_config(ctx: Ctx, argv: list[str]) -> int:
    """`qm config VMID`: sorted `key: value` lines, without the digest."""
    (vmid,), opts = _qm_options(ctx, "get", VM_PATH + "/config", argv, 1)
    config = _qm_call(ctx, "get", VM_PATH + "/config", opts, vmid=vmid)
    write_stdout("".join(f"{key}: {config[key]}\n" for key in sorted(config) if key != "digest"))
    return 0


def qm_create(ctx: Ctx, argv: list[str]) -> int:
    (vmid,), opts = _qm_options(ctx, "create", "/nodes/{node}/qemu", argv, 1)
    _sshkeys_from_file(ctx, opts)
    return _wait_task(ctx, _qm_call(ctx, "create", "/nodes/{node}/qemu", opts, vmid=vmid))


def qm_set(ctx: Ctx, argv: list[str]) -> int:
    (vmid,), opts = _qm_options(ctx, "set", VM_PATH + "/config", argv, 1)
    _sshkeys_from_file(ctx, opts)
    _qm_call(ctx, "set", VM_PATH + "/config", opts, vmid=vmid)
    return 0


def qm_resize(ctx: Ctx, argv: list[str]) -> int:
    (vmid, disk, size), opts = _qm_options(ctx, "set", VM_PATH + "/resize", argv, 3)
    return _wait_task(
        ctx, _qm_call(ctx, "set", VM_PATH + "/resize", opts, vmid=vmid, disk=disk, size=size)
    )


def qm_template(ctx: Ctx, argv: list[str]) -> int:
    """`qm template VMID [--disk D]`: blocks until the task ends."""
    (vmid,), opts = _qm_options(ctx, "create", VM_PATH + "/template", argv, 1)
    return _wait_task(ctx, _qm_call(ctx, "create", VM_PATH + "/template", opts, vmid=vmid))


def qm_clone(ctx: Ctx, argv: list[str]) -> int:
    """`qm clone VMID NEWID [--name N] [--full 0|1] ...`: blocks until the task ends."""
    (vmid, newid), opts = _qm_options(ctx, "create", VM_PATH + "/clone", argv, 2)
    return _wait_task(
        ctx, _qm_call(ctx, "create", VM_PATH + "/clone", opts, vmid=vmid, newid=newid)
    )


SNAPSHOT_PATH = VM_PATH + "/snapshot"


def qm_snapshot(ctx: Ctx, argv: list[str]) -> int:
    """`qm snapshot VMID SNAPNAME [--description D] [--vmstate 0|1]`: waits for the task."""
    (vmid, snapname), opts = _qm_options(ctx, "create", SNAPSHOT_PATH, argv, 2)
    return _wait_task(
        ctx, _qm_call(ctx, "create", SNAPSHOT_PATH, opts, vmid=vmid, snapname=snapname)
    )


def qm_delsnapshot(ctx: Ctx, argv: list[str]) -> int:
    """`qm delsnapshot VMID SNAPNAME [--force 0|1]`: waits for the task."""
    template = SNAPSHOT_PATH + "/{snapname}"
    (vmid, snapname), opts = _qm_options(ctx, "delete", template, argv, 2)
    return _wait_task(ctx, _qm_call(ctx, "delete", template, opts, vmid=vmid, snapname=snapname))


def qm_listsnapshot(ctx: Ctx, argv: list[str]) -> int:
    """`qm listsnapshot VMID`: PVE's tree, each child indented under its parent, the VM
    as it is (`current`) last."""
    (vmid,), opts = _qm_options(ctx, "get", SNAPSHOT_PATH, argv, 1)
    entries = _qm_call(ctx, "get", SNAPSHOT_PATH, opts, vmid=vmid)
    children: dict[str | None, list[dict[str, Any]]] = {}
    for entry in entries:
        children.setdefault(entry.get("parent"), []).append(entry)

    def walk(parent: str | None, depth: int) -> None:
        for entry in sorted(children.get(parent, []), key=lambda e: e.get("snaptime", 1 << 62)):
            when = entry.get("snaptime")
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)) if when else ""
            name = f"{'    ' * depth}`-> {entry['name']}"
            write_stdout(f"{name:<38} {stamp:<20} {entry.get('description', '')}\n")
            walk(entry["name"], depth + 1)

    walk(None, 0)
    return 0


AGENT_COMMANDS = ("network-get-interfaces", "ping")


def qm_guest(ctx: Ctx, argv: list[str]) -> int:
    """`qm guest cmd VMID COMMAND`: the bare `result`, pretty-printed."""
    if not argv or argv[0] != "cmd":
        raise QmUsage(f"unknown command 'qm guest {argv[0] if argv else ''}'".rstrip())
    return qm_agent(ctx, argv[1:])


def qm_agent(ctx: Ctx, argv: list[str]) -> int:
    """`qm agent VMID COMMAND` (the older spelling of `qm guest cmd`)."""
    if len(argv) != 2:
        raise QmUsage("not enough arguments" if len(argv) < 2 else "too many arguments")
    vmid, command = argv
    if command not in AGENT_COMMANDS:
        choices = ", ".join(AGENT_COMMANDS)
        raise param_error(
            {"command": f"value '{command}' does not have a value in the enumeration '{choices}'"}
        )
    cmd = "create" if command == "ping" else "get"
    result = call_api(ctx, cmd, f"/nodes/{ctx.node}/qemu/{vmid}/agent/{command}", {})
    if command != "ping":
        write_stdout(json_pretty(result["result"]) + "\n")
    return 0


QM_COMMANDS: dict[str, Callable[[Ctx, list[str]], int]] = {
    "list": qm_list,
    "status": qm_status,
    "start": _qm_power("start"),
    "stop": _qm_power("stop"),
    "shutdown": _qm_power("shutdown"),
    "reboot": _qm_power("reboot"),
    "reset": _qm_power("reset"),
    "destroy": qm_destroy,
    "config": qm_config,
    "create": qm_create,
    "set": qm_set,
    "resize": qm_resize,
    "template": qm_template,
    "clone": qm_clone,
    "snapshot": qm_snapshot,
    "delsnapshot": qm_delsnapshot,
    "listsnapshot": qm_listsnapshot,
    "guest": qm_guest,
    "agent": qm_agent,
}
QM_USAGE = {
    "list": "qm list  [OPTIONS]",
    "resize": "qm resize <vmid> <disk> <size> [OPTIONS]",
    "clone": "qm clone <vmid> <newid> [OPTIONS]",
    "snapshot": "qm snapshot <vmid> <snapname> [OPTIONS]",
    "delsnapshot": "qm delsnapshot <vmid> <snapname> [OPTIONS]",
    "guest": "qm guest cmd <vmid> <command>",
    "agent": "qm agent <vmid> <command>",
}


def _qm_usage(command: str) -> str:
    return QM_USAGE.get(command, f"qm {command} <vmid> [OPTIONS]")


def qm_main(ctx: Ctx, argv: list[str]) -> int:
    """`qm COMMAND ARGS...`: parameter errors add the command's usage, like CLIHandler."""
    command = argv[0] if argv else ""
    if command not in QM_COMMANDS:
        write_stderr(
            f"ERROR: unknown command 'qm {command}'" if argv else "ERROR: no command specified"
        )
        write_stderr("USAGE: qm <COMMAND> [ARGS] [OPTIONS]")
        return 255
    try:
        return QM_COMMANDS[command](ctx, argv[1:])
    except QmUsage as err:
        write_stderr(f"400 {err}\n{_qm_usage(command)}")
        return 255
    except ApiError as err:
        usage = _qm_usage(command) + "\n" if err.status == 400 else ""
        write_stderr(render_error(err) + usage)
        return 255
