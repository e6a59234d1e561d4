"""The simulated hosts' HTTPS API through the real daemon: TLS pinned by fingerprint, token
auth, PVE's status codes, the same state and tasks as pvesh (sim/_https.py, sim/_rest.py)."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from cryptography import x509

from pveplan.sim import (
    ApiEndpoint,
    SimError,
    SimRoot,
    api_endpoint,
    daemon_info,
    ensure_simulator,
    init_root,
    read_state,
    register_token,
    stop_daemon,
    write_config,
)
from pveplan.sim._setup import add_host_node
from pveplan.sim._state import locked_state
from tests.contract.pve_contract import check_recorded_request
from tests.executor import NODE as EXECUTOR_NODE
from tests.executor import make_sim, stop_sim, wait_until
from tests.sim import PUBLIC_KEY, Sim

NODE = "pve"
TOKEN = "ops@pve!pveplan=5f1c1f0e-8d44-4c55-a0a4-0c3f0e2b9d11"


class PinMismatch(Exception):
    pass


def connect(endpoint: ApiEndpoint) -> http.client.HTTPSConnection:
    """A connection that trusts the server only if its certificate has the pinned SHA-256
    (what pveplan's transport does with a node file's fingerprint)."""
    url = urlsplit(endpoint.url)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the pin below is the verification
    conn = http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=10)
    conn.connect()
    der = conn.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
    seen = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    if seen != endpoint.fingerprint:
        conn.close()
        raise PinMismatch(seen)
    return conn


def request(
    conn: http.client.HTTPSConnection,
    method: str,
    path: str,
    params: dict[str, Any] | None = None,
    *,
    token: str | None = TOKEN,
) -> tuple[int, str, Any]:
    headers = {} if token is None else {"Authorization": f"PVEAPIToken={token}"}
    target, body = f"/api2/json{path}", None
    if params and method in ("GET", "DELETE"):
        target += "?" + urlencode(params)
    elif params:
        body = urlencode(params)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, target, body=body, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    return response.status, response.reason, json.loads(raw) if raw else None


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimRoot]:
    sim = SimRoot(tmp_path_factory.mktemp("https") / "sim")
    try:
        ensure_simulator(sim.path, [NODE], PUBLIC_KEY, api_tokens={NODE: TOKEN})
        yield sim
    finally:
        stop_daemon(sim)


@pytest.fixture
def conn(root: SimRoot) -> Iterator[http.client.HTTPSConnection]:
    connection = connect(api_endpoint(root, NODE))
    yield connection
    connection.close()


def test_each_host_serves_on_its_address_with_its_own_certificate(root: SimRoot) -> None:
    endpoint = api_endpoint(root, NODE)
    address = read_state(root)["nodes"][NODE]["address"]
    assert urlsplit(endpoint.url).hostname == address
    cert = x509.load_pem_x509_certificate(
        (root.host_dir(NODE) / "etc/pve/local/pve-ssl.pem").read_bytes()
    )
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert NODE in names.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == [address]
    assert len(endpoint.fingerprint.split(":")) == 32 and endpoint.fingerprint.isupper()
    with pytest.raises(PinMismatch):
        connect(ApiEndpoint(endpoint.url, "00:" * 31 + "00"))


def test_tokens_good_bad_missing(conn: http.client.HTTPSConnection) -> None:
    status, _, body = request(conn, "GET", "/version")
    assert status == 200 and body["data"]["release"] == "9.1"
    assert request(conn, "GET", "/version", token=None)[:2] == (401, "No ticket")
    bad = request(conn, "GET", "/version", token="ops@pve!pveplan=wrong")
    assert bad == (401, "authentication failure", None)
    assert request(conn, "GET", "/version")[0] == 200  # the connection is kept alive


def test_unknown_path_is_501(conn: http.client.HTTPSConnection) -> None:
    status, reason, body = request(conn, "GET", "/nodes/pve/nothing")
    assert (status, reason, body) == (
        501,
        "Method 'GET /nodes/pve/nothing' not implemented",
        {"data": None},
    )


def test_create_vm_and_follow_its_task(root: SimRoot, conn: http.client.HTTPSConnection) -> None:
    status, _, body = request(conn, "POST", f"/nodes/{NODE}/qemu", {"vmid": 100, "name": "web"})
    assert status == 200
    upid = body["data"]
    assert upid.split(":")[5:8] == ["qmcreate", "100", "ops@pve!pveplan"]
    status, _, body = request(conn, "GET", f"/nodes/{NODE}/tasks/{upid}/status")
    assert status == 200 and body["data"]["exitstatus"] == "OK"
    # the same VM pvesh sees, on the same host
    assert _at(root).pvesh("get", f"/nodes/{NODE}/qemu/100/config")["name"] == "web"
    status, reason, body = request(conn, "POST", f"/nodes/{NODE}/qemu", {"vmid": 100})
    assert status == 500 and "already exists" in reason and body["message"].endswith("\n")


def test_a_privsep_token_lacking_vm_allocate_gets_403(conn: http.client.HTTPSConnection) -> None:
    _, _, body = request(conn, "POST", "/access/users/ops@pve/token/limited", {"privsep": 1})
    limited = f"{body['data']['full-tokenid']}={body['data']['value']}"
    status, reason, body = request(
        conn, "POST", f"/nodes/{NODE}/qemu", {"vmid": 300}, token=limited
    )
    assert (status, reason) == (403, "Permission check failed (/vms/300, VM.Allocate)")
    assert body == {"data": None, "message": "Permission check failed (/vms/300, VM.Allocate)\n"}
    assert request(conn, "GET", "/access/permissions", token=limited)[2] == {"data": {}}


def test_parameter_errors_are_400(conn: http.client.HTTPSConnection) -> None:
    status, _, body = request(conn, "POST", f"/nodes/{NODE}/qemu", {"vmid": 7})
    assert status == 400 and body["errors"] == {"vmid": "value must have a minimum value of 100"}


def test_requests_were_recorded_for_the_schema_check(
    root: SimRoot, conn: http.client.HTTPSConnection
) -> None:
    request(conn, "GET", f"/nodes/{NODE}/qemu")
    records = [json.loads(line) for line in root.calls.read_text().splitlines()]
    api = [r for r in records if r["tool"] == "api" and r["status"] != 400]
    assert api and all(check_recorded_request(r) == [] for r in api)


def test_the_certificate_outlives_the_daemon(root: SimRoot) -> None:
    before = api_endpoint(root, NODE)
    stop_daemon(root)
    ensure_simulator(root.path, [NODE], PUBLIC_KEY, api_tokens={NODE: TOKEN})
    assert api_endpoint(root, NODE) == before


def test_a_taken_port_makes_the_daemon_choose_another(tmp_path: Path) -> None:
    sim = SimRoot(tmp_path / "sim")
    init_root(sim, [NODE])
    address = read_state(sim)["nodes"][NODE]["address"]
    with socket.socket() as holder:
        holder.bind((address, 0))
        holder.listen()
        taken = holder.getsockname()[1]
        write_config(sim, {"api_port": taken})
        try:
            info = ensure_simulator(sim.path, [NODE], PUBLIC_KEY, api_tokens={NODE: TOKEN})
            assert info["api_port"] not in (0, taken)
            endpoint = api_endpoint(sim, NODE)
            assert urlsplit(endpoint.url).port == info["api_port"]
            connection = connect(endpoint)
            assert request(connection, "GET", "/version")[0] == 200
            connection.close()
        finally:
            stop_daemon(sim)


def _at(root: SimRoot) -> Sim:
    view = object.__new__(Sim)
    view.root, view.node = root, NODE
    return view


def test_a_nested_host_serves_its_api_while_its_vm_runs(tmp_path: Path) -> None:
    sim = make_sim(tmp_path / "nested")
    try:
        sim.add_vm(405, status="running")
        with locked_state(sim.root) as state:
            add_host_node(sim.root, state, "inner", 405, parent=EXECUTOR_NODE)
        register_token(sim.root, "inner", TOKEN)
        endpoint = api_endpoint(sim.root, "inner")
        assert urlsplit(endpoint.url).hostname == sim.vm_address(405)
        assert endpoint != api_endpoint(sim.root, EXECUTOR_NODE)
        connection = connect(endpoint)
        status, _, body = request(connection, "POST", "/nodes/inner/qemu", {"vmid": 100})
        assert status == 200 and ":qmcreate:100:" in body["data"]
        assert "inner/100" in read_state(sim.root)["vms"]  # a guest of the nested host
        wrong = request(connection, "GET", f"/nodes/{EXECUTOR_NODE}/version")
        assert wrong[0] == 500 and "hostname lookup" in wrong[1]
        connection.close()
        sim.set_status(405, "stopped")
        wait_until(
            lambda: "inner" not in (daemon_info(sim.root) or {}).get("api", {}),
            what="the API to go",
        )
        with pytest.raises(SimError, match="serves no API for host 'inner'"):
            api_endpoint(sim.root, "inner", wait=0)
    finally:
        stop_sim(sim)


def test_malformed_and_oversized_requests_are_refused(root: SimRoot) -> None:
    endpoint = api_endpoint(root, NODE)
    bad = connect(endpoint)
    bad.sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")  # type: ignore[union-attr]
    assert bad.sock.recv(4096).startswith(b"HTTP/1.1 400 ")  # type: ignore[union-attr]
    bad.close()
    big = connect(endpoint)
    head = (
        f"POST /api2/json/nodes/{NODE}/qemu HTTP/1.1\r\nHost: x\r\nContent-Length: 600000\r\n\r\n"
    )
    big.sock.sendall(head.encode())  # type: ignore[union-attr]
    assert big.sock.recv(4096).startswith(b"HTTP/1.1 413 request too large")  # type: ignore[union-attr]
    big.close()
    conn = connect(endpoint)
    assert request(conn, "GET", "/version")[0] == 200  # the server is still fine
    conn.close()
