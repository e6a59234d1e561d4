"""The simulated API's router: one invocation's context, and the route table.

Every simulated PVE method is a handler registered with `@route(METHOD, TEMPLATE)` by the
module of its concern (`_nodes`, `_storage`, `_tasks`, `_vms`, `_vmconfig`, `_drives`,
`_power`); `pvesh`, `qm` and `pveum` all reach them through `call_api`/`call_route`,
which check the node and verify the parameters against `_schema` first, as PVE's API
server does before any handler runs. The table is filled as those modules are imported
(`_pvecli` imports them all), so nothing here knows the methods.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pveplan.sim._acl import ROOT
from pveplan.sim._errors import NoHandler, fail, param_error
from pveplan.sim._params import check_iface, check_storage_id, validate
from pveplan.sim._perms import authorize, filter_result
from pveplan.sim._schema import PARAMS, VM_OPTIONS
from pveplan.sim._state import SimRoot, read_state


@dataclass
class Ctx:
    """One invocation: which simulator, which host node the command runs on, and who asks
    (`root@pam` on the command line; the API token's `user@realm!token` over HTTPS)."""

    root: SimRoot
    node: str
    user: str = ROOT
    cwd: Path | None = None
    """The command's working directory, for relative paths (None: this process's): the
    daemon runs an SSH session's host tools in-process, where the session's is not its own."""

    def host_path(self, path: str) -> Path:
        """A path on this simulated host: absolute paths live under `hosts/NODE/`."""
        host = self.root.host_dir(self.node)
        if not path.startswith("/"):
            return self.cwd / path if self.cwd is not None else Path(path).absolute()
        if Path(path).is_relative_to(self.root.path):
            return Path(path)
        return host / path.lstrip("/")


Handler = Callable[[Ctx, dict[str, Any], dict[str, Any]], Any]


@dataclass(frozen=True)
class Route:
    """One API method: `returns_null` methods print nothing (pvesh skips null results)."""

    method: str
    template: str
    regex: re.Pattern[str]
    handler: Handler
    returns_null: bool

    @property
    def table(self) -> dict[str, dict[str, Any]]:
        params = PARAMS[f"{self.method} {self.template}"]
        qemu = self.template.startswith("/nodes/{node}/qemu")
        if qemu and self.template.endswith(("/qemu", "/config")) and self.method in ("POST", "PUT"):
            return {**VM_OPTIONS, **params}
        return params


ROUTES: list[Route] = []
CLI_METHODS = {"get": "GET", "create": "POST", "set": "PUT", "delete": "DELETE"}


def route(
    method: str, template: str, *, returns_null: bool = False
) -> Callable[[Handler], Handler]:
    """Register a handler for `method template` (`{name}` matches one path segment)."""
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)

    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(method, template, re.compile(f"^{pattern}$"), handler, returns_null))
        return handler

    return register


def find_route(cmd: str, path: str) -> tuple[Route, dict[str, str]]:
    """The route for a pvesh command and path, with its path parameters (URL-decoded)."""
    method = CLI_METHODS.get(cmd, cmd.upper())
    normal = "/" + "/".join(part for part in path.split("/") if part)
    for candidate in ROUTES:
        match = candidate.regex.match(normal)
        if match and candidate.method == method:
            return candidate, {key: unquote(value) for key, value in match.groupdict().items()}
    raise NoHandler(cmd, path)


def check_node(ctx: Ctx, node: str | None) -> None:
    """`{node}` must be this host (or `localhost`); PVE would proxy anything else."""
    if node is None or node in (ctx.node, "localhost"):
        return
    raise fail(
        f"hostname lookup '{node}' failed - failed to get address info for: {node}: "
        "Name or service not known"
    )


def _path_values(path: dict[str, str]) -> dict[str, Any]:
    """Typed path parameters (`vmid` checked like any integer parameter)."""
    values: dict[str, Any] = dict(path)
    if "vmid" in path:
        values.update(
            validate({"vmid": PARAMS["POST /nodes/{node}/qemu"]["vmid"]}, {"vmid": path["vmid"]})
        )
    if "storage" in path and (problem := check_storage_id(path["storage"])):
        raise param_error({"storage": f"invalid format - {problem}\n"})
    if "iface" in path and (problem := check_iface(path["iface"])):
        raise param_error({"iface": f"invalid format - {problem}\n"})
    return values


def call_route(ctx: Ctx, found: Route, path: dict[str, str], raw: dict[str, str]) -> Any:
    """Run one API method: node check, permission check (for anyone but root@pam),
    parameter verification, then the handler."""
    check_node(ctx, path.get("node"))
    key = f"{found.method} {found.template}"
    if ctx.user != ROOT:
        authorize(read_state(ctx.root), ctx.node, ctx.user, key, {**raw, **path})
    params = validate(found.table, raw)
    data = found.handler(ctx, _path_values(path), params)
    if ctx.user != ROOT:
        data = filter_result(read_state(ctx.root), ctx.node, ctx.user, key, data)
    return data


def call_api(ctx: Ctx, cmd: str, path: str, raw: dict[str, str]) -> Any:
    """`pvesh CMD PATH` with already-parsed options (what `qm` and `pveum` build on)."""
    found, path_params = find_route(cmd, path)
    return call_route(ctx, found, path_params, raw)
