"""Simulated `pct`: its subcommands as thin layers over the `/lxc` API methods (as `qm`
is over `/qemu`), plus what only the host can do: `exec` and `pull`, which reach into a
running container through its namespaces, no SSH involved (how pveplan reads a new
container's host key: a channel it already trusts).

`pct exec VMID -- COMMAND...` runs `cat` (reading the container's files) and the Debian
tools the simulator models inside guests (`_guest.TOOLS`) as root in the container.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pveplan.sim._api import Ctx, call_api, find_route
from pveplan.sim._cmdline import parse_options
from pveplan.sim._errors import ApiError, SimError, fail, render_error
from pveplan.sim._lxc import get_ct
from pveplan.sim._state import read_state
from pveplan.sim._stdio import write_stderr, write_stdout
from pveplan.sim._tasks import task_failed

CT_PATH = "/nodes/{node}/lxc/{vmid}"


class PctUsage(SimError):
    """A pct command line rejected before any API method is called."""


def _call(ctx: Ctx, cmd: str, template: str, argv: list[str], count: int) -> tuple[list[str], Any]:
    found, _ = find_route(cmd, template.format(node=ctx.node, vmid=100))
    opts = parse_options(argv, found.table)
    if len(opts.positional) != count:
        raise PctUsage(
            "not enough arguments" if len(opts.positional) < count else "too many arguments"
        )
    fixed = dict(zip(("vmid", "disk", "size"), opts.positional, strict=False))
    path = template.format(node=ctx.node, vmid=fixed.pop("vmid", ""))
    return opts.positional, call_api(ctx, cmd, path, {**opts.params, **fixed})


def _task(ctx: Ctx, upid: Any) -> int:
    return 255 if isinstance(upid, str) and task_failed(ctx, upid) is not None else 0


def pct_list(ctx: Ctx, argv: list[str]) -> int:
    _, cts = _call(ctx, "get", "/nodes/{node}/lxc", argv, 0)
    if cts:
        write_stdout(f"{'VMID':<10} {'Status':<10} {'Lock':<10} {'Name':<20}\n")
        for ct in cts:
            write_stdout(f"{ct['vmid']:<10} {ct['status']:<10} {'':<10} {ct['name']:<20}\n")
    return 0


def pct_status(ctx: Ctx, argv: list[str]) -> int:
    _, status = _call(ctx, "get", CT_PATH + "/status/current", argv, 1)
    write_stdout(f"status: {status['status']}\n")
    return 0


def _power(op: str) -> Callable[[Ctx, list[str]], int]:
    def command(ctx: Ctx, argv: list[str]) -> int:
        _, upid = _call(ctx, "create", CT_PATH + f"/status/{op}", argv, 1)
        return _task(ctx, upid)

    return command


def pct_config(ctx: Ctx, argv: list[str]) -> int:
    _, config = _call(ctx, "get", CT_PATH + "/config", argv, 1)
    for key in sorted(k for k in config if k != "digest"):
        write_stdout(f"{key}: {config[key]}\n")
    return 0


def pct_set(ctx: Ctx, argv: list[str]) -> int:
    _call(ctx, "set", CT_PATH + "/config", argv, 1)
    return 0


def pct_resize(ctx: Ctx, argv: list[str]) -> int:
    _, upid = _call(ctx, "set", CT_PATH + "/resize", argv, 3)
    return _task(ctx, upid)


def pct_destroy(ctx: Ctx, argv: list[str]) -> int:
    _, upid = _call(ctx, "delete", CT_PATH, argv, 1)
    return _task(ctx, upid)


def pct_create(ctx: Ctx, argv: list[str]) -> int:
    """`pct create VMID OSTEMPLATE [OPTIONS]`."""
    found, _ = find_route("create", f"/nodes/{ctx.node}/lxc")
    opts = parse_options(argv, found.table)
    if len(opts.positional) != 2:
        raise PctUsage("not enough arguments" if len(opts.positional) < 2 else "too many arguments")
    vmid, template = opts.positional
    params = {**opts.params, "vmid": vmid, "ostemplate": template}
    if "ssh-public-keys" in params:  # pct's own mapping: the option names a file of keys
        params["ssh-public-keys"] = _keys_file(ctx, str(params["ssh-public-keys"]))
    return _task(ctx, call_api(ctx, "create", f"/nodes/{ctx.node}/lxc", params))


def _keys_file(ctx: Ctx, path: str) -> str:
    """What `pct create --ssh-public-keys FILE` sends: the file's text (PVE's pct reads
    it; the API method takes the keys themselves)."""
    try:
        return ctx.host_path(path).read_text()
    except OSError as exc:
        raise PctUsage(f"unable to open file '{path}' - {exc.strerror}") from None


def _running_ct(ctx: Ctx, vmid: str) -> dict[str, Any]:
    if not vmid.isdigit():
        raise PctUsage(f"invalid vmid '{vmid}'")
    ct = get_ct(read_state(ctx.root), ctx.node, int(vmid))
    if ct["status"] != "running":
        raise fail(f"CT {vmid} not running")
    return ct


def _read_in(ctx: Ctx, ct: dict[str, Any], path: str) -> bytes:
    tree = ctx.root.vm_dir(ctx.node, ct["vmid"])
    target = (tree / path.lstrip("/")).resolve()
    if not target.is_relative_to(tree.resolve()):
        raise FileNotFoundError(path)
    return target.read_bytes()


def pct_exec(ctx: Ctx, argv: list[str]) -> int:
    """`pct exec VMID [-- COMMAND ARGS...]`: in the container, as root."""
    if not argv:
        raise PctUsage("not enough arguments")
    ct = _running_ct(ctx, argv[0])
    command = argv[2:] if argv[1:2] == ["--"] else argv[1:]
    if not command:
        raise PctUsage("missing command")
    if command[0] == "cat":
        code = 0
        for path in command[1:]:
            try:
                os.write(1, _read_in(ctx, ct, path))
            except OSError:
                write_stderr(f"cat: {path}: No such file or directory")
                code = 1
        return code
    from pveplan.sim._guest import main as guest_main

    os.environ["USER"] = "root"
    return guest_main(command[0], command[1:], str(ctx.root.path), ctx.node, ct["vmid"])


def pct_pull(ctx: Ctx, argv: list[str]) -> int:
    """`pct pull VMID PATH DESTINATION`: a container's file to the host."""
    if len(argv) != 3:
        raise PctUsage("not enough arguments" if len(argv) < 3 else "too many arguments")
    ct = _running_ct(ctx, argv[0])
    try:
        data = _read_in(ctx, ct, argv[1])
    except OSError:
        raise fail(f"failed to open {argv[1]} for reading") from None
    ctx.host_path(argv[2]).write_bytes(data)
    return 0


PCT_COMMANDS: dict[str, Callable[[Ctx, list[str]], int]] = {
    "list": pct_list,
    "status": pct_status,
    "start": _power("start"),
    "stop": _power("stop"),
    "shutdown": _power("shutdown"),
    "reboot": _power("reboot"),
    "config": pct_config,
    "set": pct_set,
    "resize": pct_resize,
    "destroy": pct_destroy,
    "create": pct_create,
    "exec": pct_exec,
    "pull": pct_pull,
}


def pct_main(ctx: Ctx, argv: list[str]) -> int:
    """`pct COMMAND ARGS...`."""
    command = argv[0] if argv else ""
    if command not in PCT_COMMANDS:
        write_stderr(
            f"ERROR: unknown command 'pct {command}'" if argv else "ERROR: no command specified"
        )
        write_stderr("USAGE: pct <COMMAND> [ARGS] [OPTIONS]")
        return 255
    try:
        return PCT_COMMANDS[command](ctx, argv[1:])
    except PctUsage as err:
        write_stderr(f"400 {err}\npct {command} <vmid> [OPTIONS]")
        return 255
    except ApiError as err:
        write_stderr(render_error(err))
        return 255
