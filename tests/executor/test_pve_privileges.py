"""The privilege table preflight checks tokens against, held to PVE 9.1's API schema.

Why: `preflight` names a missing privilege before an apply fails on it, and the role in
docs/transports.md is built from the same table; a wrong entry would either refuse a
token that works or pass one that PVE refuses. Each request pveplan sends is checked
against the `permissions` the schema gives its method; `granted` is held to how PVE
computes effective privileges (most specific path, propagation).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pveplan.executor.pve._privileges import (
    CREATE_CONFIG,
    CT_CREATE_CONFIG,
    KIND_REQUESTS,
    REQUEST_NEEDS,
    ROLE,
    granted,
    least_privilege_token,
    missing,
    needs,
)

from .test_pve_requests import CASES

SCHEMA = Path(__file__).resolve().parents[1] / "fixtures" / "pve" / "apidata-pve9.1.json"


def _methods() -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}

    def walk(nodes: list[dict[str, Any]]) -> None:
        for node in nodes:
            for method, info in node.get("info", {}).items():
                found[(method, node["path"])] = info
            walk(node.get("children", []))

    walk(json.loads(SCHEMA.read_text()))
    return found


METHODS = _methods()


def _schema_key(key: tuple[str, str]) -> list[tuple[str, str]]:
    method, path = key
    if "{action}" in path:
        return [
            (method, path.replace("{action}", a))
            for a in ("start", "stop", "shutdown", "reboot", "reset")
            if not (a == "reset" and "/lxc/" in path)  # a container has no reset
        ]
    return [key]


@pytest.mark.parametrize("key", sorted(REQUEST_NEEDS), ids=" ".join)
def test_each_entry_is_what_the_schema_checks(key: tuple[str, str]) -> None:
    for schema_key in _schema_key(key):
        permissions = METHODS[schema_key]["permissions"]
        ours = {(p, path) for check in REQUEST_NEEDS[key] for o in check for p, path in o}
        check = permissions.get("check")
        if check is None:  # described only (create): every privilege it names is ours
            text = permissions["description"]
            for privilege in ("VM.Allocate", "Datastore.AllocateSpace", "SDN.Use"):
                # pct create's text leaves out the bridge's SDN.Use, which it checks too
                assert privilege in text or "/lxc" in key[1]
                assert any(p == privilege for p, _ in ours)
            configs = CT_CREATE_CONFIG if "/lxc" in key[1] else CREATE_CONFIG
            assert {p for p, _ in ours} >= {*configs}
            continue
        flat = json.dumps(check)
        for privilege, path in ours:
            assert privilege in flat, (privilege, check)
            assert path in flat, (path, check)


def test_every_request_a_kind_makes_is_one_pveplan_sends() -> None:
    sent = {(r.method, r.path) for rs in CASES.values() for r in rs}
    for kind, requests in KIND_REQUESTS.items():
        for key in requests:
            assert all(k in sent for k in _schema_key(key)), (kind, key)


def test_requests_without_an_entry_need_no_privilege() -> None:
    """Any request pveplan sends over the API that the table leaves out is open to every
    authenticated user (or is only sent over SSH, by root)."""
    ssh_only = {  # run as root over SSH, on hosts pveplan installs
        "/nodes/{node}/network",
        "/access/users/{userid}/token/{tokenid}",
        "/access/roles",
        "/access/users",
        "/access/acl",
    }
    covered = {k for key in REQUEST_NEEDS for k in _schema_key(key)}
    for request in (r for rs in CASES.values() for r in rs):
        key = (request.method, request.path)
        if key in covered or request.path in ssh_only:
            continue
        assert METHODS[key]["permissions"].get("user") == "all", key


def test_the_most_specific_path_decides_and_ancestors_count_only_where_they_propagate() -> None:
    perms = {"/": {"Sys.Audit": 1}, "/vms": {"VM.Audit": 1, "VM.Allocate": 0}, "/vms/7": {}}
    assert granted(perms, "VM.Audit", "/vms/100")
    assert granted(perms, "VM.Allocate", "/vms")  # exact path: propagation does not matter
    assert not granted(perms, "VM.Allocate", "/vms/100")  # not propagated
    assert not granted(perms, "VM.Audit", "/vms/7")  # the more specific entry decides
    assert granted(perms, "Sys.Audit", "/storage/local")
    assert not granted({}, "VM.Audit", "/vms/1")


STEPS = [
    ("image.debian", "pve.image.ensure", {"storage": "local"}),
    ("node.web.create", "pve.vm.create", {"vmid": 100, "storage": "local-lvm", "bridge": "vmbr1"}),
    ("node.db.create", "pve.vm.create", {"vmid": None, "storage": "local-lvm"}),
    ("node.web.start", "pve.vm.start", {}),
    ("node.web.wait_ip", "pve.vm.wait_ip", {}),
    ("node.old.destroy", "pve.vm.destroy", {"vmid": 101}),
]


def test_a_plan_s_needs_name_each_path_from_its_steps() -> None:
    texts = {need.text(): need.why for need in needs(STEPS, "pve")}
    assert texts["VM.Allocate on /vms/100"] == "node.web.create"
    assert texts["VM.Allocate on /vms"] == "node.db.create"  # its vmid is chosen at run time
    assert texts["Datastore.AllocateSpace on /storage/local-lvm"] == "node.web.create"
    assert texts["SDN.Use on /sdn/zones/localnetwork/vmbr1"] == "node.web.create"
    assert texts["SDN.Use on /sdn/zones/localnetwork/vmbr0"] == "node.db.create"
    assert "Datastore.AllocateTemplate on /storage/local" in texts
    assert "Sys.Audit on / and Sys.Modify on / or Sys.AccessNetwork on /nodes/pve" in texts


def test_the_documented_role_on_the_root_covers_every_need() -> None:
    role_everywhere = {"/": dict.fromkeys(ROLE, 1)}
    assert missing(role_everywhere, needs(STEPS, "pve")) == []
    without = {"/": {p: 1 for p in ROLE if p != "VM.Allocate"}}
    assert {n.text() for n in missing(without, needs(STEPS, "pve"))} == {
        "VM.Allocate on /vms/100",
        "VM.Allocate on /vms",
        "VM.Allocate on /vms/101",
    }


def test_the_least_privilege_token_is_made_as_the_docs_say() -> None:
    made = least_privilege_token("pveplan@pve", "apply")
    role = made[0]
    assert role.params == {"roleid": "PVEPlan", "privs": ",".join(ROLE)}
    assert made[3].params == {"privsep": True}
    acl = [r.params for r in made if r.path == "/access/acl"]
    assert acl == [
        {"path": "/", "roles": "PVEPlan", "users": "pveplan@pve", "propagate": True},
        {"path": "/", "roles": "PVEPlan", "tokens": "pveplan@pve!apply", "propagate": True},
    ]
    docs = (Path(__file__).resolve().parents[2] / "docs" / "transports.md").read_text()
    assert f'pveum role add PVEPlan --privs "{" ".join(ROLE)}"' in docs


def test_only_a_plan_with_snapshot_before_asks_for_vm_snapshot() -> None:
    """A token made by an older role (without VM.Snapshot) still applies every plan that
    does not use `snapshot_before`."""
    plain = {n.text() for n in needs(STEPS, "pve")}
    assert not any("VM.Snapshot" in text for text in plain)
    snap = {"vmid": 100, "storage": "local-lvm", "snapshot": {"changes": ["resize"], "keep": False}}
    asked = {n.text() for n in needs([("node.web.create", "pve.vm.create", snap)], "pve")}
    assert "VM.Snapshot on /vms/100" in asked
    role_everywhere = {"/": dict.fromkeys(ROLE, 1)}
    assert (
        missing(role_everywhere, needs([("node.web.create", "pve.vm.create", snap)], "pve")) == []
    )
