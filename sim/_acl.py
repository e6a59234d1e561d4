"""Who may do what on a simulated PVE host: privileges, roles, ACLs and permission checks.

PVE's model (pve-access-control `PVE::AccessControl`, `PVE::RPCEnvironment`), kept to what
an API client meets: the built-in roles and their privileges, custom roles, ACL entries for
users and API tokens on paths (`/`, `/vms/100`, `/storage/local`, ...) with `propagate`,
token privilege separation (a `privsep` token has only its own ACLs, cut down to its
user's), and the `check` expressions of the API schema's `permissions`. Groups, pools and
realms other than `pam`/`pve` are not modelled. `root@pam` may do anything, as on PVE, and
it is who the `pvesh`/`qm`/`pveum` surface runs as.

A host's access state is `state["access"][NODE]` (docs/simulator.md): `users` (userid ->
`{"enable": 1, ...}`), `roles` (custom roleid -> privileges) and `acl` (entries
`{"path", "type": "user"|"token", "ugid", "roleid", "propagate"}`); tokens stay in
`state["tokens"][NODE]`. Pure functions of a state snapshot: no files, no locks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pveplan.sim._errors import ApiError

ROOT = "root@pam"

PRIVGROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "VM": {
        "root": (),
        "admin": (
            "VM.Config.Disk",
            "VM.Config.CPU",
            "VM.Config.Memory",
            "VM.Config.Network",
            "VM.Config.HWType",
            "VM.Config.Options",
            "VM.Allocate",
            "VM.Clone",
            "VM.Migrate",
            "VM.Replicate",
            "VM.Snapshot",
            "VM.Snapshot.Rollback",
            "VM.GuestAgent.FileRead",
            "VM.GuestAgent.FileWrite",
            "VM.GuestAgent.FileSystemMgmt",
            "VM.GuestAgent.Unrestricted",
        ),
        "user": (
            "VM.Config.CDROM",
            "VM.Config.Cloudinit",
            "VM.Console",
            "VM.Backup",
            "VM.PowerMgmt",
            "VM.GuestAgent.Audit",
        ),
        "audit": ("VM.Audit",),
    },
    "Sys": {
        "root": ("Sys.PowerMgmt", "Sys.Modify", "Sys.Incoming", "Sys.AccessNetwork"),
        "admin": ("Permissions.Modify", "Sys.Console", "Sys.Syslog"),
        "user": (),
        "audit": ("Sys.Audit",),
    },
    "Datastore": {
        "root": (),
        "admin": ("Datastore.Allocate", "Datastore.AllocateTemplate"),
        "user": ("Datastore.AllocateSpace",),
        "audit": ("Datastore.Audit",),
    },
    "SDN": {
        "root": (),
        "admin": ("SDN.Allocate",),
        "user": ("SDN.Use",),
        "audit": ("SDN.Audit",),
    },
    "User": {
        "root": ("Realm.Allocate",),
        "admin": ("User.Modify", "Group.Allocate", "Realm.AllocateUser"),
        "user": (),
        "audit": (),
    },
    "Pool": {"root": (), "admin": ("Pool.Allocate",), "user": (), "audit": ("Pool.Audit",)},
    "Mapping": {
        "root": (),
        "admin": ("Mapping.Modify",),
        "user": ("Mapping.Use",),
        "audit": ("Mapping.Audit",),
    },
}
"""PVE 9's privileges in pve-access-control's groups: `root` ones only Administrator has."""


def _builtin_roles() -> dict[str, frozenset[str]]:
    """The built-in roles, derived from the groups as pve-access-control derives them."""
    roles: dict[str, set[str]] = {
        "NoAccess": set(),
        "PVEAdmin": set(),
        "PVEAuditor": set(),
        "PVETemplateUser": {"VM.Clone", "VM.Audit"},
    }
    for cat, group in PRIVGROUPS.items():
        roles.setdefault(f"PVE{cat}Admin", set()).update(
            group["admin"] + group["user"] + group["audit"]
        )
        roles["PVEAdmin"].update(group["admin"] + group["user"] + group["audit"])
        if group["user"]:
            roles.setdefault(f"PVE{cat}User", set()).update(group["user"] + group["audit"])
        roles["PVEAuditor"].update(group["audit"])
    roles["Administrator"] = set(ALL_PRIVILEGES)
    return {name: frozenset(privs) for name, privs in roles.items()}


ALL_PRIVILEGES = frozenset(p for group in PRIVGROUPS.values() for ps in group.values() for p in ps)
BUILTIN_ROLES = _builtin_roles()


def access(state: Mapping[str, Any], node: str) -> dict[str, Any]:
    """Host `node`'s users, custom roles and ACL (empty ones if it has none yet)."""
    found = state.get("access", {}).get(node) or {}
    return {
        "users": found.get("users", {}),
        "roles": found.get("roles", {}),
        "acl": found.get("acl", []),
    }


def access_for_update(state: dict[str, Any], node: str) -> dict[str, Any]:
    """Like `access`, but the dict inside `state`, to change in place."""
    found = state.setdefault("access", {}).setdefault(node, {})
    for key, empty in (("users", {}), ("roles", {}), ("acl", [])):
        found.setdefault(key, empty)
    return found


def role_privileges(state: Mapping[str, Any], node: str, roleid: str) -> frozenset[str]:
    if roleid in BUILTIN_ROLES:
        return BUILTIN_ROLES[roleid]
    return frozenset(access(state, node)["roles"].get(roleid, ()))


def user_exists(state: Mapping[str, Any], node: str, userid: str) -> bool:
    return userid == ROOT or userid in access(state, node)["users"]


def _ancestors(path: str) -> list[str]:
    """`/vms/100` -> [`/`, `/vms`, `/vms/100`]."""
    parts = [part for part in path.split("/") if part]
    return ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def normalize_path(path: str) -> str:
    return _ancestors(path)[-1]


def _roles(acl: Iterable[Mapping[str, Any]], kind: str, ugid: str, path: str) -> dict[str, int]:
    """The roles `ugid` has on `path` (roleid -> propagate): the most specific ACL path with
    an entry for it wins, an ancestor's entry counting only if it propagates (PVE's `roles`)."""
    entries = [e for e in acl if e["type"] == kind and e["ugid"] == ugid]
    roles: dict[str, int] = {}
    for level in _ancestors(path):
        final = level == path
        found = {
            e["roleid"]: int(e["propagate"])
            for e in entries
            if e["path"] == level and (final or e["propagate"])
        }
        if found:
            roles = found
    return roles


def _privileges(state: Mapping[str, Any], node: str, roles: dict[str, int]) -> dict[str, int]:
    if "NoAccess" in roles:
        return {}
    privs: dict[str, int] = {}
    for roleid, propagate in roles.items():
        for priv in role_privileges(state, node, roleid):
            privs[priv] = max(privs.get(priv, 0), propagate)
    return privs


def permissions(state: Mapping[str, Any], node: str, who: str, path: str) -> dict[str, int]:
    """The privileges `who` (a userid, or `user@realm!token`) has on `path`, each with
    whether it propagates; PVE's `RPCEnvironment::permissions`."""
    path = normalize_path(path)
    user, _, token = who.partition("!")
    if user == ROOT and not token:
        return dict.fromkeys(ALL_PRIVILEGES, 1)
    host = access(state, node)
    if user == ROOT:
        user_privs = dict.fromkeys(ALL_PRIVILEGES, 1)
    elif not int(host["users"].get(user, {}).get("enable", 0)):
        return {}  # no such user, or disabled
    else:
        user_privs = _privileges(state, node, _roles(host["acl"], "user", user, path))
    if not token:
        return user_privs
    info = state.get("tokens", {}).get(node, {}).get(who)
    if info is None:
        return {}
    if not int(info.get("privsep", 1)):
        return user_privs
    own = _privileges(state, node, _roles(host["acl"], "token", who, path))
    return {p: min(v, user_privs[p]) for p, v in own.items() if p in user_privs}


DUMP_PATHS = ("/", "/access", "/access/groups", "/nodes", "/pool", "/sdn", "/storage", "/vms")
"""The paths `GET /access/permissions` always looks at, besides every ACL path."""


def permission_tree(state: Mapping[str, Any], node: str, who: str) -> dict[str, dict[str, int]]:
    """`GET /access/permissions`: path -> {privilege: propagate} for every path with any."""
    paths = set(DUMP_PATHS) | {e["path"] for e in access(state, node)["acl"]}
    tree = {path: permissions(state, node, who, path) for path in sorted(paths)}
    return {path: privs for path, privs in tree.items() if privs}


# --- the schema's `check` expressions ----------------------------------------------------


PERM_MODIFY_ALSO = {
    "/storage/": "Datastore.Allocate",
    "/vms/": "VM.Allocate",
    "/pool/": "Pool.Allocate",
}
"""Who allocates an object may also grant on it: check_perm_modify's extra privileges."""


def denied(detail: str | None = None) -> ApiError:
    """PVE's `raise_perm_exc`: 403, with `(path, privilege)` when the check names them."""
    return ApiError(403, "Permission check failed" + (f" ({detail})" if detail else ""))


class Checker:
    """Evaluates one request's permission `check` (the schema's form) for one caller."""

    def __init__(self, state: Mapping[str, Any], node: str, who: str, values: Mapping[str, Any]):
        self.state, self.node, self.who, self.values = state, node, who, values

    def has(self, path: str, privs: Iterable[str], *, any_of: bool = False) -> str | None:
        """None when the caller has the privileges on `path`, else the 403's detail."""
        privs = list(privs)
        mine = permissions(self.state, self.node, self.who, path)
        if any_of:
            return None if any(p in mine for p in privs) else f"{path}, {'|'.join(privs)}"
        missing = next((p for p in privs if p not in mine), None)
        return None if missing is None else f"{path}, {missing}"

    def fill(self, template: str) -> str:
        """`/vms/{vmid}` with the request's values (`{path}` is the `path` parameter)."""
        for key, value in self.values.items():
            template = template.replace("{" + key + "}", str(value))
        return normalize_path(template)

    def problem(self, check: list[Any]) -> tuple[bool, str | None]:
        """(denied?, the detail to name) for one `check` expression."""
        op = check[0]
        if op == "perm":
            options = list(check[3:])
            if "require_param" in options:  # only a request with that parameter passes
                wanted = options[options.index("require_param") + 1]
                if self.values.get(wanted) in (None, ""):
                    return True, None
            detail = self.has(self.fill(check[1]), check[2], any_of="any" in check[3:])
            return detail is not None, detail
        if op == "and":
            for sub in check[1:]:
                failed, detail = self.problem(sub)
                if failed:
                    return True, detail
            return False, None
        if op == "or":
            results = [self.problem(sub) for sub in check[1:]]
            return (all(failed for failed, _ in results), None)
        if op == "perm-modify":  # RPCEnvironment::check_perm_modify
            path = self.fill(check[1])
            privs = ["Permissions.Modify"]
            for prefix, priv in PERM_MODIFY_ALSO.items():
                if path.startswith(prefix):
                    privs.append(priv)
            detail = self.has(path, privs, any_of=len(privs) > 1)
            return detail is not None, detail
        if op == "userid-param":
            user = str(self.values.get("userid", ""))
            if check[1] == "self":
                return user != self.who.partition("!")[0], None
            realm = user.rpartition("@")[2]
            detail = self.has(f"/access/realm/{realm}", [check[1]])
            return detail is not None, detail
        if op == "userid-group":
            detail = self.has("/access/groups", check[1])
            return detail is not None, detail
        return True, None  # a check the simulator does not know: refuse, never allow


def check(
    state: Mapping[str, Any], node: str, who: str, rule: list[Any], values: Mapping[str, Any]
) -> None:
    """Raise PVE's 403 unless `who` passes `rule` (a schema `check`) for these values."""
    failed, detail = Checker(state, node, who, values).problem(rule)
    if failed:
        raise denied(detail)
