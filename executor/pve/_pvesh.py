"""`PveshTransport`: PVE requests as `pvesh` argument vectors on the host's command channel.

`pvesh VERB PATH --param value ... --output-format json`, an argv list (never a shell
string): GET is `get`, POST `create`, PUT `set`, DELETE `delete`; parameters in a stable
order, booleans as 0/1 (`_params.flags`). pve-api.md's pitfalls of the CLI are handled
here once: a task-returning call runs the task to its end and echoes the task log before the
UPID, so only the last line is JSON; a synchronous error is the first lines of stderr (with
pvesh's usage text after them) and a non-zero exit. `pvesh` exits 0 even when the task
failed: that is for the task following every transport shares (`_transport.follow_task`).
"""

from __future__ import annotations

import contextlib
import json
import secrets
from typing import Any

import trio

from ..channels import Channel, ChannelError, CommandResult
from ._params import flags
from ._requests import Method, PveRequest
from ._transport import PveError

PVESH_VERBS: dict[Method, str] = {"GET": "get", "POST": "create", "PUT": "set", "DELETE": "delete"}


def pvesh_argv(request: PveRequest) -> list[str]:
    """The `pvesh` command line that makes `request` (pure)."""
    verb = PVESH_VERBS[request.method]
    return ["pvesh", verb, request.filled_path(), *flags(request.params), "--output-format", "json"]


CT_KEYS = "ssh-public-keys"


def pct_create_argv(request: PveRequest, keys_file: str) -> list[str]:
    """`pct create VMID OSTEMPLATE --ssh-public-keys FILE ...` for a container's create
    request (pure): how PVE users pass root's keys on the host, from a file that pct
    reads, so that no key is on a command line (`ps`, audit logs). `pvesh` has no such
    mapping: it would take the keys themselves as the argument."""
    params = dict(request.params)
    vmid, template = params.pop("vmid"), params.pop("ostemplate")
    params.pop(CT_KEYS, None)
    return ["pct", "create", str(vmid), str(template), *flags(params), f"--{CT_KEYS}", keys_file]


async def run_pct_create(channel: Channel, request: PveRequest, *, timeout: float) -> None:
    """Run a container's create by `pct` (`pct_create_argv`): its keys written first to
    a private file (0600) on the host, removed whatever the outcome. pct runs the create
    task to its end and exits non-zero when it failed."""
    keys = str(request.params.get(CT_KEYS) or "")
    path = f"/tmp/pveplan-ct-{request.params['vmid']}-{secrets.token_hex(8)}.pub"
    try:
        await channel.put_file(path, (keys.strip() + "\n").encode(), 0o600)
        result = await channel.run(pct_create_argv(request, path), timeout=timeout)
    except ChannelError as exc:
        raise PveError(str(exc)) from None
    finally:
        with trio.CancelScope(shield=True), contextlib.suppress(ChannelError):
            await channel.run(["rm", "-f", path], timeout=30)  # else a public key is left
    if result.exit_status != 0:
        raise PveError(f"pct create {request.params['vmid']}: {_error_text(result)}")


class PveshTransport:
    """`pvesh` over `channel` (SSH to the host, or local); one command per request."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    async def call(self, request: PveRequest, *, timeout: float) -> Any:
        argv = pvesh_argv(request)
        verb, path = argv[1], argv[2]
        try:
            result = await self.channel.run(argv, timeout=timeout)
        except ChannelError as exc:
            raise PveError(str(exc)) from None
        if result.exit_status != 0:
            raise PveError(f"{verb} {path}: {_error_text(result)}")
        return _data(result.stdout.decode(errors="replace"), verb, path)


def _data(stdout: str, verb: str, path: str) -> Any:
    """The JSON data at the end of pvesh's output.

    Task-returning calls print the task log first, and a `set` that allocates a disk prints
    the allocation; the data is the last line. A `set`/`delete` may print no data at all.
    """
    lines = stdout.strip().splitlines()
    if not lines:
        return None
    try:
        return json.loads(lines[-1])
    except ValueError:
        if verb in ("set", "delete"):
            return None
        raise PveError(f"{verb} {path}: unexpected output {lines[-1][:200]!r}") from None


def _error_text(result: CommandResult) -> str:
    """PVE's message: stderr without the usage text pvesh appends to 400 errors."""
    text = result.stderr.decode(errors="replace").strip()
    lines = [line for line in text.splitlines() if line.strip()]
    kept: list[str] = []
    for line in lines:
        if line.startswith(("USAGE:", "Usage:")):
            break
        kept.append(line.strip())
    return " ".join(kept[:4]) or f"exit status {result.exit_status}"
