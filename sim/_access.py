"""The access methods of a simulated host: users, roles, ACLs, effective permissions;
and registering a site's configured API token for a simulated host.

The model (roles, privileges, how ACLs resolve) is `_acl`'s; these are PVE's
`/access/...` methods over it, as pve-access-control answers them, and the parameter tables
of those methods (added to `_schema.PARAMS`, which the router validates against).
"""

from __future__ import annotations

import re
from typing import Any

from pveplan.sim._acl import (
    ALL_PRIVILEGES,
    BUILTIN_ROLES,
    ROOT,
    access,
    access_for_update,
    normalize_path,
    permission_tree,
    permissions,
    user_exists,
)
from pveplan.sim._api import Ctx, route
from pveplan.sim._errors import SimError, fail, param_error
from pveplan.sim._params import SPLIT_LIST_RE, TOKENID_RE, USERID_RE
from pveplan.sim._schema import PARAMS
from pveplan.sim._state import SimRoot, locked_state, read_state

ROLEID_RE = re.compile(r"^[A-Za-z0-9.\-_]+$")
REALMS = ("pam", "pve")
"""The realms every simulated host has (PVE's defaults); no others are modelled."""

_STRING = {"type": "string"}
_BOOLEAN = {"type": "boolean"}
PARAMS.update(
    {
        "GET /access/roles": {},
        "POST /access/roles": {
            "roleid": {"type": "string", "required": True},
            "privs": _STRING,
        },
        "GET /access/acl": {},
        "PUT /access/acl": {
            "path": {"type": "string", "required": True},
            "roles": {"type": "string", "required": True},
            "users": _STRING,
            "groups": _STRING,
            "tokens": _STRING,
            "propagate": _BOOLEAN,
            "delete": _BOOLEAN,
        },
        "GET /access/users": {"enabled": _BOOLEAN, "full": _BOOLEAN},
        "POST /access/users": {
            "userid": {"type": "string", "maxLength": 64, "required": True},
            "comment": {"type": "string", "maxLength": 2048},
            "email": {"type": "string", "maxLength": 254},
            "enable": _BOOLEAN,
            "expire": {"type": "integer", "minimum": 0},
            "firstname": {"type": "string", "maxLength": 1024},
            "lastname": {"type": "string", "maxLength": 1024},
            "groups": _STRING,
            "keys": _STRING,
            "password": {"type": "string", "minLength": 8, "maxLength": 64},
        },
        "GET /access/permissions": {"path": _STRING, "userid": _STRING},
    }
)


def _split(text: str | None) -> list[str]:
    return [item for item in SPLIT_LIST_RE.split(text or "") if item]


# --- roles -------------------------------------------------------------------------------


@route("GET", "/access/roles")
def list_roles(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    state = read_state(ctx.root)
    roles = [
        {"roleid": name, "privs": ",".join(sorted(privs)), "special": 1}
        for name, privs in BUILTIN_ROLES.items()
    ]
    for name, privs in access(state, ctx.node)["roles"].items():
        roles.append({"roleid": name, "privs": ",".join(sorted(privs))})
    return sorted(roles, key=lambda role: role["roleid"])


@route("POST", "/access/roles", returns_null=True)
def create_role(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> None:
    roleid = params["roleid"]
    if not ROLEID_RE.match(roleid):
        raise param_error({"roleid": "invalid format - role name contains invalid characters\n"})
    privs = _split(params.get("privs"))
    unknown = next((priv for priv in privs if priv not in ALL_PRIVILEGES), None)
    if unknown is not None:
        raise param_error({"privs": f"invalid format - invalid privilege '{unknown}'\n"})
    with locked_state(ctx.root) as state:
        host = access_for_update(state, ctx.node)
        if roleid in BUILTIN_ROLES or roleid in host["roles"]:
            raise fail(f"role '{roleid}' already exists")
        host["roles"][roleid] = sorted(set(privs))


# --- users -------------------------------------------------------------------------------


@route("GET", "/access/users")
def list_users(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    state = read_state(ctx.root)
    users = {ROOT: {"enable": 1, "expire": 0}, **access(state, ctx.node)["users"]}
    tokens = state.get("tokens", {}).get(ctx.node, {})
    result = []
    for userid, info in sorted(users.items()):
        entry = {"userid": userid, "enable": info.get("enable", 1), "expire": info.get("expire", 0)}
        entry.update({k: info[k] for k in ("comment", "email") if k in info})
        if params.get("full"):
            entry["tokens"] = [
                {"tokenid": full.partition("!")[2], "privsep": int(token.get("privsep", 1))}
                for full, token in sorted(tokens.items())
                if full.partition("!")[0] == userid
            ]
        if params.get("enabled") is None or entry["enable"] == params["enabled"]:
            result.append(entry)
    return result


@route("POST", "/access/users", returns_null=True)
def create_user(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> None:
    userid = params["userid"]
    if not USERID_RE.match(userid):
        raise param_error({"userid": "invalid format - value does not look like a valid user ID\n"})
    realm = userid.rpartition("@")[2]
    if realm not in REALMS:
        raise fail(f"domain '{realm}' does not exist")
    with locked_state(ctx.root) as state:
        host = access_for_update(state, ctx.node)
        if userid == ROOT or userid in host["users"]:
            raise fail(f"create user failed: user '{userid}' already exists")
        info = {"enable": params.get("enable", 1), "expire": params.get("expire", 0)}
        info.update({k: params[k] for k in ("comment", "email") if k in params})
        host["users"][userid] = info


# --- ACLs --------------------------------------------------------------------------------


@route("GET", "/access/acl")
def list_acl(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    entries = access(read_state(ctx.root), ctx.node)["acl"]
    return [dict(entry) for entry in entries]


def _check_acl_subjects(state: dict[str, Any], node: str, params: dict[str, Any]) -> None:
    for roleid in _split(params["roles"]):
        if roleid not in BUILTIN_ROLES and roleid not in access(state, node)["roles"]:
            raise fail(f"role '{roleid}' does not exist")
    for userid in _split(params.get("users")):
        if not user_exists(state, node, userid):
            raise fail(f"user '{userid}' does not exist")
    for full in _split(params.get("tokens")):
        userid, _, tokenid = full.partition("!")
        if full not in state.get("tokens", {}).get(node, {}):
            raise fail(f"no such token '{tokenid}' for user '{userid}'")
    if _split(params.get("groups")):
        raise fail("group does not exist")  # groups are not modelled


@route("PUT", "/access/acl", returns_null=True)
def update_acl(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> None:
    """Add (or with `delete`, remove) each role for each user and token on `path`."""
    if not params["path"].startswith("/"):
        raise param_error({"path": f"invalid ACL path '{params['path']}'"})
    acl_path = normalize_path(params["path"])
    propagate = params.get("propagate", 1)
    subjects = [("user", u) for u in _split(params.get("users"))]
    subjects += [("token", t) for t in _split(params.get("tokens"))]
    with locked_state(ctx.root) as state:
        _check_acl_subjects(state, ctx.node, params)
        host = access_for_update(state, ctx.node)
        for kind, ugid in subjects:
            for roleid in _split(params["roles"]):
                same = {"path": acl_path, "type": kind, "ugid": ugid, "roleid": roleid}
                host["acl"] = [e for e in host["acl"] if {k: e[k] for k in same} != same]
                if not params.get("delete"):
                    host["acl"].append({**same, "propagate": propagate})


# --- effective permissions ---------------------------------------------------------------


@route("GET", "/access/permissions")
def get_permissions(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """path -> {privilege: propagate} for the caller (or `userid`), as PVE dumps them."""
    state = read_state(ctx.root)
    who = params.get("userid") or ctx.user
    if "path" in params:
        privs = permissions(state, ctx.node, who, params["path"])
        return {params["path"]: privs}
    return permission_tree(state, ctx.node, who)


# --- a site's configured token -----------------------------------------------------------

TOKEN_RE = re.compile(r"^([^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+)!([A-Za-z][A-Za-z0-9.\-_]+)=(\S+)$")


def parse_token(text: str) -> tuple[str, str, str]:
    """`user@realm!tokenid=secret` (PVE's `PVEAPIToken=` value) -> (userid, tokenid, secret)."""
    match = TOKEN_RE.match(text.strip())
    if match is None or not TOKENID_RE.match(match[2]):
        raise SimError("an API token is written user@realm!tokenid=secret")
    return match[1], match[2], match[3]


def register_token(root: SimRoot | str, node: str, token: str) -> str:
    """Make `token` (`user@realm!tokenid=secret`) valid on simulated host `node`.

    A token the host does not have yet is made as an administrator would for pveplan: its
    user gets Administrator on `/` and the token is not privilege-separated. A token the
    host already has keeps its privilege separation, its user and their ACLs (what an
    operator set up, as on a real host); only its secret becomes the one given. Idempotent.
    Returns the full token id."""
    userid, tokenid, secret = parse_token(token)
    sim = root if isinstance(root, SimRoot) else SimRoot(root)
    full = f"{userid}!{tokenid}"
    with locked_state(sim) as state:
        tokens = state.setdefault("tokens", {}).setdefault(node, {})
        known = tokens.get(full)
        if known is not None:
            tokens[full] = {**known, "value": secret}
            return full
        tokens[full] = {"privsep": 0, "value": secret}
        if userid != ROOT:
            host = access_for_update(state, node)
            host["users"].setdefault(userid, {"enable": 1, "expire": 0})
            grant = {"path": "/", "type": "user", "ugid": userid, "roleid": "Administrator"}
            if not any({k: e[k] for k in grant} == grant for e in host["acl"]):
                host["acl"].append({**grant, "propagate": 1})
    return full
