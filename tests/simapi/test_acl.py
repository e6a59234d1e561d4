"""Roles, ACLs and effective permissions as pve-access-control resolves them (sim/_acl.py)."""

from __future__ import annotations

from typing import Any

import pytest

from pveplan.sim._acl import (
    ALL_PRIVILEGES,
    BUILTIN_ROLES,
    PRIVGROUPS,
    check,
    permission_tree,
    permissions,
)
from pveplan.sim._errors import ApiError

NODE = "pve"


def state(acl: list[dict[str, Any]], *, roles: dict[str, list[str]] | None = None,
          tokens: dict[str, int] | None = None) -> dict[str, Any]:  # fmt: skip
    """A state with user ops@pve, these ACL entries and tokens (full id -> privsep)."""
    return {
        "access": {NODE: {"users": {"ops@pve": {"enable": 1}}, "roles": roles or {}, "acl": acl}},
        "tokens": {
            NODE: {full: {"privsep": sep, "value": "x"} for full, sep in (tokens or {}).items()}
        },
    }


def entry(path: str, ugid: str, roleid: str, *, propagate: int = 1) -> dict[str, Any]:
    kind = "token" if "!" in ugid else "user"
    return {"path": path, "type": kind, "ugid": ugid, "roleid": roleid, "propagate": propagate}


def test_builtin_roles_follow_the_privilege_groups() -> None:
    assert BUILTIN_ROLES["Administrator"] == ALL_PRIVILEGES
    assert BUILTIN_ROLES["NoAccess"] == frozenset()
    assert "VM.Allocate" in BUILTIN_ROLES["PVEVMAdmin"]
    assert "VM.Allocate" not in BUILTIN_ROLES["PVEVMUser"]
    assert {"VM.PowerMgmt", "VM.Audit", "VM.Console"} <= BUILTIN_ROLES["PVEVMUser"]
    assert BUILTIN_ROLES["PVEAuditor"] == {p for g in PRIVGROUPS.values() for p in g["audit"]}
    assert BUILTIN_ROLES["PVETemplateUser"] == {"VM.Clone", "VM.Audit"}
    # PVEAdmin has everything but the root-only privileges (Sys.Modify, Realm.Allocate, ...)
    root_only = {p for g in PRIVGROUPS.values() for p in g["root"]}
    assert BUILTIN_ROLES["PVEAdmin"] == ALL_PRIVILEGES - root_only
    assert "Sys.Modify" in root_only and "VM.Monitor" not in ALL_PRIVILEGES  # gone in PVE 9
    assert {"PVEDatastoreUser", "PVESDNUser", "PVEMappingUser", "PVEPoolAdmin"} <= set(
        BUILTIN_ROLES
    )
    assert "PVESysUser" not in BUILTIN_ROLES  # a group without user privileges has no User role


def test_root_has_every_privilege_everywhere() -> None:
    assert set(permissions(state([]), NODE, "root@pam", "/vms/100")) == ALL_PRIVILEGES


def test_acl_propagates_and_the_most_specific_path_wins() -> None:
    s = state([entry("/", "ops@pve", "PVEAuditor"), entry("/vms/100", "ops@pve", "PVEVMAdmin")])
    assert "VM.Allocate" in permissions(s, NODE, "ops@pve", "/vms/100")
    assert "VM.Allocate" not in permissions(s, NODE, "ops@pve", "/vms/101")
    assert "VM.Audit" in permissions(s, NODE, "ops@pve", "/vms/101")  # from `/`, propagated
    # at /vms/100 the user's entry there replaces the inherited one: no Sys.Audit from `/`
    assert "Sys.Audit" not in permissions(s, NODE, "ops@pve", "/vms/100")


def test_an_entry_without_propagate_applies_to_its_path_only() -> None:
    s = state([entry("/vms", "ops@pve", "PVEVMAdmin", propagate=0)])
    assert permissions(s, NODE, "ops@pve", "/vms")["VM.Allocate"] == 0
    assert permissions(s, NODE, "ops@pve", "/vms/100") == {}


def test_noaccess_takes_everything_away() -> None:
    s = state([entry("/", "ops@pve", "Administrator"), entry("/vms/100", "ops@pve", "NoAccess")])
    assert permissions(s, NODE, "ops@pve", "/vms/100") == {}
    assert "VM.Allocate" in permissions(s, NODE, "ops@pve", "/vms/101")


def test_a_privsep_token_has_its_own_acls_cut_to_its_users() -> None:
    token = "ops@pve!ci"
    s = state(
        [entry("/", "ops@pve", "PVEVMUser"), entry("/", token, "PVEVMAdmin")],
        tokens={token: 1},
    )
    mine = permissions(s, NODE, token, "/vms/100")
    assert "VM.PowerMgmt" in mine and "VM.Allocate" not in mine  # the user lacks it
    s = state([entry("/", "ops@pve", "PVEVMAdmin")], tokens={token: 1})
    assert permissions(s, NODE, token, "/vms/100") == {}  # no ACL of its own: nothing
    s = state([entry("/", "ops@pve", "PVEVMAdmin")], tokens={token: 0})
    assert "VM.Allocate" in permissions(s, NODE, token, "/vms/100")  # privsep=0: the user's


def test_custom_roles_and_unknown_callers() -> None:
    s = state([entry("/vms", "ops@pve", "Mini")], roles={"Mini": ["VM.Audit"]})
    assert permissions(s, NODE, "ops@pve", "/vms/7") == {"VM.Audit": 1}
    assert permissions(s, NODE, "nobody@pve", "/vms/7") == {}
    assert permissions(s, NODE, "ops@pve!missing", "/vms/7") == {}


def test_permission_tree_lists_paths_with_privileges() -> None:
    s = state(
        [
            entry("/vms", "ops@pve", "PVEVMUser"),
            entry("/storage/local", "ops@pve", "PVEDatastoreUser"),
        ]
    )
    tree = permission_tree(s, NODE, "ops@pve")
    assert set(tree) == {"/vms", "/storage/local"}
    assert tree["/vms"]["VM.PowerMgmt"] == 1


@pytest.mark.parametrize(
    ("rule", "values", "message"),
    [
        (
            ["perm", "/vms/{vmid}", ["VM.Allocate"]],
            {"vmid": "100"},
            "Permission check failed (/vms/100, VM.Allocate)",
        ),
        (
            ["perm", "/vms/{vmid}", ["VM.Config.Disk", "VM.Config.CPU"], "any", 1],
            {"vmid": "7"},
            "Permission check failed (/vms/7, VM.Config.Disk|VM.Config.CPU)",
        ),
        (
            ["or", ["perm", "/", ["Sys.Modify"]], ["perm", "/nodes/pve", ["Sys.AccessNetwork"]]],
            {},
            "Permission check failed",
        ),
        (
            ["perm-modify", "{path}"],
            {"path": "/vms"},
            "Permission check failed (/vms, Permissions.Modify)",
        ),
        (
            ["perm-modify", "{path}"],
            {"path": "/vms/7"},
            "Permission check failed (/vms/7, Permissions.Modify|VM.Allocate)",
        ),
    ],
)
def test_failed_checks_name_path_and_privilege(
    rule: list[Any], values: dict[str, str], message: str
) -> None:
    s = state([entry("/", "ops@pve", "PVEAuditor")])
    with pytest.raises(ApiError) as caught:
        check(s, NODE, "ops@pve", rule, values)
    assert (caught.value.status, caught.value.message) == (403, message)


def test_passing_checks() -> None:
    s = state([entry("/", "ops@pve", "PVEVMAdmin")])
    check(s, NODE, "ops@pve", ["perm", "/vms/{vmid}", ["VM.Allocate"]], {"vmid": "5"})
    check(s, NODE, "ops@pve", ["perm-modify", "{path}"], {"path": "/vms/5"})  # by VM.Allocate
    check(
        s,
        NODE,
        "ops@pve",
        ["or", ["userid-param", "self"], ["perm", "/", ["Sys.Modify"]]],
        {"userid": "ops@pve"},
    )
