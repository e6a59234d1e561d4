"""`pveum`'s user, role, token and ACL commands (sim/_pveum.py), over the same routes as the
HTTPS API: a least-privilege token made with pveum as root, then used over the API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pveplan.sim import SimRoot, init_root, read_state
from pveplan.sim._api import Ctx
from pveplan.sim._pvecli import _run_tool
from pveplan.sim._rest import dispatch
from tests.contract.pve_contract import check_call

NODE = "pve"


@pytest.fixture
def ctx(tmp_path: Path) -> Ctx:
    root = SimRoot(tmp_path / "sim")
    init_root(root, [NODE])
    return Ctx(root, NODE)


def pveum(ctx: Ctx, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    assert check_call(["pveum", *argv]) == []  # what PVE's pveum would accept
    code = _run_tool("pveum", ctx, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_least_privilege_token_made_with_pveum(
    ctx: Ctx, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pveum(ctx, capsys, "user", "add", "pveplan@pve", "--comment", "pveplan") == (0, "", "")
    privs = "VM.Allocate,VM.Audit,VM.Config.Disk,VM.PowerMgmt"
    assert pveum(ctx, capsys, "role", "add", "PVEPlan", "--privs", privs)[0] == 0
    code, out, _ = pveum(
        ctx, capsys, "user", "token", "add", "pveplan@pve", "apply", "--output-format", "json"
    )
    made = json.loads(out)
    assert (code, made["info"]) == (0, {"privsep": 1})  # privsep is the default
    assert (
        pveum(ctx, capsys, "acl", "modify", "/", "--roles", "PVEPlan", "--users", "pveplan@pve")[0]
        == 0
    )
    assert (
        pveum(
            ctx,
            capsys,
            "acl",
            "modify",
            "/vms",
            "--roles",
            "PVEPlan",
            "--tokens",
            "pveplan@pve!apply",
        )[0]
        == 0
    )
    code, out, _ = pveum(
        ctx, capsys, "user", "permissions", "pveplan@pve!apply", "--output-format", "json"
    )
    assert json.loads(out) == {"/vms": dict.fromkeys(privs.split(","), 1)}

    token = f"PVEAPIToken=pveplan@pve!apply={made['value']}"

    def call(method: str, path: str, body: bytes = b"") -> int:
        return dispatch(
            ctx.root, NODE, method, f"/api2/json{path}", {"authorization": token}, body
        ).status

    assert call("POST", f"/nodes/{NODE}/qemu", b"vmid=100") == 200
    assert call("PUT", f"/nodes/{NODE}/network") == 403
    assert (
        pveum(
            ctx,
            capsys,
            "acl",
            "delete",
            "/vms",
            "--roles",
            "PVEPlan",
            "--tokens",
            "pveplan@pve!apply",
        )[0]
        == 0
    )
    assert call("POST", f"/nodes/{NODE}/qemu", b"vmid=101") == 403


def test_pveum_errors(ctx: Ctx, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = pveum(ctx, capsys, "user", "add", "x@nowhere")
    assert (code, err) == (255, "domain 'nowhere' does not exist\n")
    assert _run_tool("pveum", ctx, ["user", "add"]) == 255
    assert "not enough arguments" in capsys.readouterr().err
    assert _run_tool("pveum", ctx, ["group", "add", "g"]) == 255
    assert "unknown command 'pveum group add g'" in capsys.readouterr().err
    assert "access" not in read_state(ctx.root) or not read_state(ctx.root)["access"][NODE]["users"]
