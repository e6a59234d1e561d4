"""HTTPS API requests answered by `sim/_rest.dispatch` against a simulator root, no daemon:
the envelope, status codes, token auth, permission checks, tasks, and the access methods."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from pveplan.sim import SimError, SimRoot, _runcmd, init_root, read_state, register_token
from pveplan.sim._rest import Answer, dispatch
from tests.contract.pve_contract import check_recorded_request

NODE = "pve"
TOKEN = "ops@pve!pveplan=0b9ab2c4-5e1e-4d2c-9c7b-3f1de9d0a001"


class Api:
    """Requests to host `pve` of a fresh simulator root, as one token."""

    def __init__(self, root: SimRoot, token: str | None = TOKEN) -> None:
        self.root, self.token = root, token

    def as_token(self, token: str | None) -> Api:
        return Api(self.root, token)

    def call(self, method: str, path: str, params: dict[str, Any] | None = None,
             *, json_body: bool = False, headers: dict[str, str] | None = None) -> Answer:  # fmt: skip
        head = dict(headers or {})
        if self.token is not None:
            head.setdefault("authorization", f"PVEAPIToken={self.token}")
        target, body = f"/api2/json{path}", b""
        if params and method in ("GET", "DELETE"):
            target += "?" + urlencode(params)
        elif params and json_body:
            body, head["content-type"] = json.dumps(params).encode(), "application/json"
        elif params:
            body = urlencode(params).encode()
            head["content-type"] = "application/x-www-form-urlencoded"
        return dispatch(self.root, NODE, method, target, head, body)

    def data(self, method: str, path: str, params: dict[str, Any] | None = None) -> Any:
        answer = self.call(method, path, params)
        assert answer.status == 200, (answer.status, answer.reason, answer.body)
        assert answer.body is not None
        return answer.body["data"]

    def token_of(self, userid: str, tokenid: str, *, privsep: int = 1) -> str:
        made = self.data("POST", f"/access/users/{userid}/token/{tokenid}", {"privsep": privsep})
        return f"{made['full-tokenid']}={made['value']}"


@pytest.fixture
def api(tmp_path: Path) -> Api:
    root = SimRoot(tmp_path / "sim")
    init_root(root, [NODE])
    register_token(root, NODE, TOKEN)
    return Api(root)


def test_envelope_and_a_create_task_round_trip(api: Api) -> None:
    assert api.data("GET", "/version")["release"] == "9.1"
    upid = api.data("POST", f"/nodes/{NODE}/qemu", {"vmid": 100, "name": "web", "memory": "512"})
    assert upid.startswith(f"UPID:{NODE}:") and upid.endswith(":qmcreate:100:ops@pve!pveplan:")
    status = api.data("GET", f"/nodes/{NODE}/tasks/{upid}/status")
    assert status["status"] == "stopped" and status["exitstatus"] == "OK"
    assert (status["user"], status["tokenid"]) == ("ops@pve", "pveplan")
    assert api.data("GET", f"/nodes/{NODE}/qemu/100/config")["name"] == "web"
    # the same state as pvesh: the VM is there, created as that token
    assert read_state(api.root)["vms"][f"{NODE}/100"]["config"]["name"] == "web"


def test_tasks_in_one_process_have_their_own_upids(api: Api) -> None:
    api.data("POST", f"/nodes/{NODE}/qemu", {"vmid": 100})
    upids = {api.data("POST", f"/nodes/{NODE}/qemu/100/status/stop") for _ in range(3)}
    assert len(upids) == 3
    tasks = read_state(api.root)["tasks"]
    assert all(tasks[upid]["exitstatus"] == "OK" for upid in upids)


def test_json_bodies_and_localhost(api: Api) -> None:
    answer = api.call("POST", "/nodes/localhost/qemu", {"vmid": 101, "agent": True}, json_body=True)
    assert answer.status == 200
    assert api.data("GET", "/nodes/localhost/qemu/101/config")["agent"] == "1"


def test_parameter_errors_are_400_with_errors(api: Api) -> None:
    answer = api.call("POST", f"/nodes/{NODE}/qemu", {"vmid": 99, "bogus": 1})
    assert answer.status == 400 and answer.reason == "Parameter verification failed."
    assert answer.body == {
        "data": None,
        "message": "Parameter verification failed.\n",
        "errors": {
            "vmid": "value must have a minimum value of 100",
            "bogus": "property is not defined in schema and the schema does not allow additional properties",
        },
    }


def test_failures_are_500_with_the_message(api: Api) -> None:
    answer = api.call("GET", f"/nodes/{NODE}/qemu/555/config")
    message = f"Configuration file 'nodes/{NODE}/qemu-server/555.conf' does not exist"
    assert (answer.status, answer.reason) == (500, message)
    assert answer.body == {"data": None, "message": message + "\n"}


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nodes/pve/nothing"), ("PATCH", "/version"), ("DELETE", "/version")],
)
def test_unknown_paths_and_methods_are_501(api: Api, method: str, path: str) -> None:
    answer = api.call(method, path)
    assert answer.status == 501
    assert answer.reason == f"Method '{method} {path}' not implemented"


def test_other_formats_are_501(api: Api) -> None:
    answer = dispatch(api.root, NODE, "GET", "/api2/extjs/version", {}, b"")
    assert answer.status == 501


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "No ticket"),
        ("PVEAPIToken=ops@pve!pveplan=wrong", "authentication failure"),
        (
            "PVEAPIToken=ops@pve!other=0b9ab2c4-5e1e-4d2c-9c7b-3f1de9d0a001",
            "authentication failure",
        ),
        ("PVEAPIToken=nobody@pve!pveplan=x", "authentication failure"),
        ("Bearer abc", "No ticket"),
    ],
)
def test_missing_or_bad_tokens_are_401(api: Api, header: str | None, reason: str) -> None:
    headers = {} if header is None else {"authorization": header}
    answer = api.as_token(None).call("GET", "/version", headers=headers)
    assert (answer.status, answer.reason, answer.body) == (401, reason, None)


def test_a_privsep_token_without_vm_allocate_is_refused_with_pves_message(api: Api) -> None:
    limited = api.as_token(api.token_of("ops@pve", "limited"))
    answer = limited.call("POST", f"/nodes/{NODE}/qemu", {"vmid": 100})
    message = "Permission check failed (/vms/100, VM.Allocate)"
    assert (answer.status, answer.reason) == (403, message)
    assert answer.body == {"data": None, "message": message + "\n"}
    assert f"{NODE}/100" not in read_state(api.root)["vms"]
    assert limited.data("GET", "/access/permissions") == {}
    # granted on /vms through a custom role, it may
    api.data("POST", "/access/roles", {"roleid": "Deploy", "privs": "VM.Allocate,VM.Audit"})
    api.data("PUT", "/access/acl", {"path": "/vms", "roles": "Deploy", "tokens": "ops@pve!limited"})
    assert limited.data("GET", "/access/permissions") == {"/vms": {"VM.Allocate": 1, "VM.Audit": 1}}
    assert limited.data("POST", f"/nodes/{NODE}/qemu", {"vmid": 100}).startswith("UPID:")
    # ... but not anything else
    answer = limited.call("PUT", f"/nodes/{NODE}/network")
    assert (answer.status, answer.reason) == (
        403,
        f"Permission check failed (/nodes/{NODE}, Sys.Modify)",
    )


def test_lists_show_only_what_the_token_may_audit(api: Api) -> None:
    for vmid in (100, 200):
        api.data("POST", f"/nodes/{NODE}/qemu", {"vmid": vmid})
    limited = api.as_token(api.token_of("ops@pve", "ro"))
    api.data(
        "PUT", "/access/acl", {"path": "/vms/200", "roles": "PVEAuditor", "tokens": "ops@pve!ro"}
    )
    assert [vm["vmid"] for vm in limited.data("GET", f"/nodes/{NODE}/qemu")] == [200]
    resources = limited.data("GET", "/cluster/resources", {"type": "vm"})
    assert [vm["vmid"] for vm in resources] == [200]
    assert {vm["vmid"] for vm in api.data("GET", f"/nodes/{NODE}/qemu")} == {100, 200}


def test_tasks_are_their_owners(api: Api) -> None:
    upid = api.data("POST", f"/nodes/{NODE}/qemu", {"vmid": 100})
    other = api.as_token(api.token_of("ops@pve", "other"))
    answer = other.call("GET", f"/nodes/{NODE}/tasks/{upid}/status")
    assert (answer.status, answer.reason) == (
        403,
        f"Permission check failed (/nodes/{NODE}, Sys.Audit)",
    )


def test_users_roles_and_acls(api: Api) -> None:
    api.data("POST", "/access/users", {"userid": "ci@pve", "comment": "CI"})
    assert "ci@pve" in [u["userid"] for u in api.data("GET", "/access/users")]
    answer = api.call("POST", "/access/users", {"userid": "ci@pve"})
    assert (answer.status, answer.reason) == (
        500,
        "create user failed: user 'ci@pve' already exists",
    )
    answer = api.call("POST", "/access/roles", {"roleid": "Bad", "privs": "VM.Monitor"})
    assert answer.status == 400 and answer.body and "privs" in answer.body["errors"]
    answer = api.call("PUT", "/access/acl", {"path": "/", "roles": "Nope", "users": "ci@pve"})
    assert (answer.status, answer.reason) == (500, "role 'Nope' does not exist")
    api.data(
        "PUT",
        "/access/acl",
        {"path": "/vms/", "roles": "PVEVMUser", "users": "ci@pve", "propagate": 0},
    )
    acl = api.data("GET", "/access/acl")
    assert {
        "path": "/vms",
        "type": "user",
        "ugid": "ci@pve",
        "roleid": "PVEVMUser",
        "propagate": 0,
    } in acl
    ci = api.as_token(api.token_of("ci@pve", "tk", privsep=0))
    assert set(ci.data("GET", "/access/permissions")) == {"/vms"}
    api.data(
        "PUT", "/access/acl", {"path": "/vms", "roles": "PVEVMUser", "users": "ci@pve", "delete": 1}
    )
    assert ci.data("GET", "/access/permissions") == {}
    roles = {r["roleid"]: r for r in api.data("GET", "/access/roles")}
    assert (
        "VM.Allocate" in roles["PVEVMAdmin"]["privs"].split(",")
        and roles["PVEVMAdmin"]["special"] == 1
    )


def test_tokens_made_by_the_api_and_a_disabled_user(api: Api) -> None:
    api.data("POST", "/access/users", {"userid": "off@pve", "enable": 0})
    token = api.token_of("off@pve", "tk", privsep=0)
    answer = api.as_token(token).call("GET", "/version")
    assert (answer.status, answer.reason) == (401, "authentication failure")
    answer = api.call("POST", "/access/users/ghost@pve/token/tk")
    assert (answer.status, answer.reason) == (500, "no such user ('ghost@pve')")


def test_register_token_is_idempotent_and_checks_its_form(api: Api) -> None:
    register_token(api.root, NODE, TOKEN)
    register_token(api.root, NODE, "ops@pve!pveplan=new-secret")
    assert api.as_token("ops@pve!pveplan=new-secret").data("GET", "/version")
    assert api.call("GET", "/version").status == 401
    assert len(read_state(api.root)["access"][NODE]["acl"]) == 1
    with pytest.raises(SimError, match="user@realm!tokenid=secret"):
        register_token(api.root, NODE, "ops@pve=secret")


def test_requests_are_recorded_and_conform_to_the_schema(api: Api) -> None:
    api.data("POST", f"/nodes/{NODE}/qemu", {"vmid": 100, "cores": 2})
    api.data("GET", f"/nodes/{NODE}/qemu/100/config")
    api.data("GET", "/access/permissions", {"path": "/vms"})
    records = [json.loads(line) for line in api.root.calls.read_text().splitlines()]
    assert [r["tool"] for r in records] == ["api"] * 3
    for record in records:
        assert record["user"] == "ops@pve!pveplan" and record["status"] == 200
        assert check_recorded_request(record) == []


def test_runners_the_daemon_started_are_reaped() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    _runcmd._RUNNERS.append(child)
    child.wait(timeout=30)
    _runcmd.reap_runners()
    assert child not in _runcmd._RUNNERS
