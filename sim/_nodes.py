"""Node- and cluster-level methods: versions, nodes, nextid, cluster resources,
a host's network configuration (pending changes, reload, revert) and API tokens.

The network methods are the API over `_network`, which owns the interfaces model.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

from pveplan.sim import _network
from pveplan.sim._acl import user_exists
from pveplan.sim._api import Ctx, route
from pveplan.sim._errors import fail, param_error
from pveplan.sim._params import GIB, TOKENID_RE, USERID_RE
from pveplan.sim._resources import guest_resources
from pveplan.sim._setup import PVE_VERSION
from pveplan.sim._state import locked_state, read_state
from pveplan.sim._storagecfg import node_storages
from pveplan.sim._tasks import Task, run_task

NEXTID_RANGE = (100, 1_000_000)


# --- cluster, nodes, version ----------------------------------------------------------


@route("GET", "/version")
def version(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    return dict(PVE_VERSION)


@route("GET", "/nodes/{node}/version")
def node_version(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    return dict(PVE_VERSION)


def _uptime() -> int:
    try:
        return int(float(Path("/proc/uptime").read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return 0


def _node_entry(node: str) -> dict[str, Any]:
    digest = hashlib.sha256(node.encode()).hexdigest().upper()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, 64, 2))
    return {
        "node": node,
        "id": f"node/{node}",
        "type": "node",
        "status": "online",
        "cpu": 0.0123,
        "maxcpu": 8,
        "mem": 2 * GIB,
        "maxmem": 32 * GIB,
        "disk": 4 * GIB,
        "maxdisk": 100 * GIB,
        "uptime": _uptime(),
        "level": "",
        "ssl_fingerprint": fingerprint,
    }


@route("GET", "/nodes")
def nodes(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    return [_node_entry(ctx.node)]


@route("GET", "/cluster/nextid")
def nextid(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
    """A free vmid as a JSON *string*, as real PVE returns it."""
    taken = {vm["vmid"] for vm in read_state(ctx.root)["vms"].values() if vm["node"] == ctx.node}
    if "vmid" in params:
        if params["vmid"] in taken:
            raise param_error({"vmid": f"VM {params['vmid']} already exists"})
        return str(params["vmid"])
    low, high = NEXTID_RANGE
    for vmid in range(low, high):
        if vmid not in taken:
            return str(vmid)
    raise fail(f"unable to get any free VMID in range [{low}, {high - 1}]")


def _storage_resource(ctx: Ctx, storage: str, sdef: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"storage/{ctx.node}/{storage}",
        "type": "storage",
        "storage": storage,
        "node": ctx.node,
        "status": "available",
        "plugintype": sdef["type"],
        "content": ",".join(sorted(sdef["content"])),
        "shared": 0,
        "disk": 4 * GIB,
        "maxdisk": 100 * GIB,
    }


@route("GET", "/cluster/resources")
def cluster_resources(
    ctx: Ctx, path: dict[str, Any], params: dict[str, Any]
) -> list[dict[str, Any]]:
    """This node's cluster: each simulated host is a one-node cluster of its own."""
    state = read_state(ctx.root)
    wanted = params.get("type")
    resources: list[dict[str, Any]] = []
    if wanted in (None, "vm"):
        resources += guest_resources(state, ctx.node)  # sorted by vmid
    if wanted in (None, "node"):
        resources.append({**_node_entry(ctx.node), "cgroup-mode": 2})
    if wanted in (None, "storage"):
        storages = node_storages(state, ctx.node)
        resources += [_storage_resource(ctx, s, storages[s]) for s in sorted(storages)]
    return resources


# --- host networking ------------------------------------------------------------------


@route("GET", "/nodes/{node}/network")
def list_network(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    """The interfaces as PVE reads them: pending changes included, `active` when up."""
    network = _network.node_network(read_state(ctx.root), ctx.node)
    return _network.list_interfaces(network, params.get("type"))


@route("GET", "/nodes/{node}/network/{iface}")
def get_interface(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    network = _network.node_network(read_state(ctx.root), ctx.node)
    entry = _network.interfaces(network).get(path["iface"])
    if entry is None:
        raise param_error({"iface": "interface does not exist"})
    return entry


@route("POST", "/nodes/{node}/network", returns_null=True)
def create_interface(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> None:
    """A new interface, pending until the network is reloaded (PVE's interfaces.new)."""
    with locked_state(ctx.root) as state:
        network = _network.node_network(state, ctx.node)
        errors = _network.create_interface(network, params["iface"], params)
        if errors:
            raise param_error(errors)


@route("PUT", "/nodes/{node}/network")
def reload_network(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
    """Apply the pending changes: a `srvreload` task, after which `auto` interfaces are up."""

    def worker(task: Task) -> None:
        with locked_state(ctx.root) as state:
            _network.apply_pending(_network.node_network(state, ctx.node))

    return run_task(ctx, "srvreload", "networking", worker)


@route("DELETE", "/nodes/{node}/network", returns_null=True)
def revert_network(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> None:
    with locked_state(ctx.root) as state:
        _network.revert(_network.node_network(state, ctx.node))


# --- API tokens --------------------------------------------------------------------------


@route("POST", "/access/users/{userid}/token/{tokenid}")
def add_token(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Create an API token; its secret is shown this once."""
    userid, tokenid = path["userid"], path["tokenid"]
    errors = {}
    if not USERID_RE.match(userid) or len(userid) > 64:
        errors["userid"] = "invalid format - value does not look like a valid user ID\n"
    if not TOKENID_RE.match(tokenid):
        errors["tokenid"] = "value does not match the regex pattern"
    if errors:
        raise param_error(errors)
    full = f"{userid}!{tokenid}"
    value = str(uuid.uuid4())
    with locked_state(ctx.root) as state:
        if not user_exists(state, ctx.node, userid):
            raise fail(f"no such user ('{userid}')")
        tokens = state["tokens"].setdefault(ctx.node, {})
        if full in tokens:
            raise param_error({"tokenid": "Token already exists."})
        tokens[full] = {"privsep": params.get("privsep", 1), "value": value}
        if params.get("expire"):
            tokens[full]["expire"] = params["expire"]
    # The CLI hands the handler strings, and PVE echoes them: `"privsep":"0"` (default 1).
    info: dict[str, Any] = {"privsep": str(params["privsep"]) if "privsep" in params else 1}
    info.update({key: params[key] for key in ("comment", "expire") if key in params})
    return {"full-tokenid": full, "info": info, "value": value}
