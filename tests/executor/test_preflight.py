"""`preflight` and `pveplan preflight`: a host's reachability, certificate, token and the
token's privileges for a plan, checked against a real HTTPS server on 127.0.0.1.

Why: issue 19 asks that a token without `VM.Allocate` be refused before the apply,
naming the privilege and its path, and that a wrong certificate be named with its node
file. The server answers `/version` and `/access/permissions` as PVE does.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pveplan.executor import (
    ApiAccess,
    HostInfo,
    PreflightReport,
    Services,
    SiteHostAccess,
    preflight,
)
from pveplan.executor.pve._privileges import ROLE
from pveplan.planner import Plan, Step
from tests.cli_runner import run_cli

from .pve_https_server import Answer, PveServer, default_answer, ok, serve_pve
from .test_pve_https import OTHER_PIN, SECRET, TOKEN, run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "site-config"


def permissions(granted: dict[str, dict[str, int]]) -> Callable[..., Answer]:
    def answer(method: str, path: str, params: dict[str, str]) -> Answer:
        if path == "/access/permissions":
            return ok(granted)
        return default_answer(method, path, params)

    return answer


def plan(*steps: tuple[str, str, dict[str, Any]]) -> Plan:
    return Plan(
        manifest="m",
        host="pve1",
        hash="p",
        steps=tuple(
            Step(address=a, kind=k, kind_version=1, host="pve1", args=args, hash=a)
            for a, k, args in steps
        ),
    )


CREATE = ("node.web.create", "pve.vm.create", {"vmid": 100, "storage": "local-lvm"})
START = ("node.web.start", "pve.vm.start", {})


def check(url: str, pin: str | None, the_plan: Plan) -> PreflightReport:
    api = ApiAccess(
        endpoint=url, token_secret="api_tokens.pve1", fingerprint=pin, source="nodes/pve1.yaml"
    )
    info = HostInfo(name="pve1", pve_node="pve", ssh_host="127.0.0.1", host_key="", api=api)
    services = Services(
        store=None,  # type: ignore[arg-type]
        workspace="w",
        hosts=SiteHostAccess({"pve1": info}, pool=None),  # type: ignore[arg-type]
        pool=None,  # type: ignore[arg-type]
        driver_key=(b"", ""),
        reveal=lambda name: TOKEN,
    )

    async def body() -> PreflightReport:
        try:
            return await preflight(services, the_plan)
        finally:
            await services.aclose()

    return run(body)


def by_name(report: PreflightReport) -> dict[str, Any]:
    return {c.name: c for c in report.checks}


def test_a_token_without_vm_allocate_is_refused_naming_the_privilege_and_path() -> None:
    lacking = {"/": {p: 1 for p in ROLE if p != "VM.Allocate"}}
    with serve_pve(permissions(lacking)) as server:
        report = check(server.url, server.fingerprint, plan(CREATE, START))
        asked = [s for s in server.seen if s.path == "/access/permissions"]
    assert not report.ok
    assert [n.text() for n in report.missing] == ["VM.Allocate on /vms/100"]
    assert report.missing[0].why == "node.web.create"
    checks = by_name(report)
    assert checks["reachable"].ok and checks["certificate"].ok and checks["token"].ok
    assert "root@pam!pveplan is valid (PVE 9.1.9)" in checks["token"].detail
    assert not checks["privileges"].ok
    # creating a VM writes its cloud-init snippet over SSH: no key pinned, so it says so
    assert "pins no SSH host key" in checks["SSH (cloud-init snippet files)"].detail
    assert asked[0].params == {"userid": "root@pam!pveplan"}


def test_the_documented_role_passes() -> None:
    with serve_pve(permissions({"/": dict.fromkeys(ROLE, 1)})) as server:
        report = check(server.url, server.fingerprint, plan(START))
    assert report.ok, report
    assert report.missing == ()


def test_a_refused_token_fails_the_token_check() -> None:
    with serve_pve(lambda m, p, q: (401, "authentication failure", None)) as server:
        report = check(server.url, server.fingerprint, plan(START))
    checks = by_name(report)
    assert checks["certificate"].ok and not checks["token"].ok
    assert "401 PVE refused API token" in checks["token"].detail


def test_another_certificate_fails_the_certificate_check_naming_the_node_file() -> None:
    with serve_pve() as server:
        report = check(server.url, OTHER_PIN, plan(START))
        assert server.seen == []
    detail = by_name(report)["certificate"].detail
    assert not report.ok and "nodes/pve1.yaml pins api_fingerprint" in detail
    assert server.fingerprint in detail


def test_an_endpoint_nobody_answers_fails_reachability() -> None:
    with serve_pve() as server:
        url = server.url
    report = check(url, OTHER_PIN, plan(START))
    assert [c.name for c in report.checks] == ["reachable"]
    assert report.checks[0].detail.endswith("connection refused")


def _site(tmp_path: Path, server: PveServer) -> Path:
    site = tmp_path / "site-config"
    shutil.copytree(EXAMPLES, site)
    (site / "nodes" / "real.yaml").write_text(
        f'node: pve\napi_endpoint: "{server.url}"\napi_token: real\n'
        f'api_fingerprint: "{server.fingerprint}"\ndatastore: local\n'
    )
    secrets = (site / "secrets.yaml").read_text()
    (site / "secrets.yaml").write_text(
        secrets.replace("api_tokens: {}", f'api_tokens:\n  real: "{TOKEN}"')
    )
    return site


def test_the_command_names_what_is_missing_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PVEPLAN_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    lacking = {"/": {p: 1 for p in ROLE if p not in ("VM.Allocate", "SDN.Use")}}
    with serve_pve(permissions(lacking)) as server:
        site = _site(tmp_path, server)
        code, out, err = run_cli(
            ["preflight", "-M", "n1-push", "-H", "real", "--site-config", str(site)]
        )
    assert code == 1, out + err
    assert "pveplan preflight: n1-push on real, through its HTTPS API" in out
    assert "missing VM.Allocate on /vms/" in out
    assert "missing SDN.Use on /sdn/zones/localnetwork/vmbr0" in out
    assert f"ok   certificate: verified by pinned {server.fingerprint}" in out
    assert "Traceback" not in err and SECRET not in out + err
