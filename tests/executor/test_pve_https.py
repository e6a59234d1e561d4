"""The HTTPS transport: PVE's REST API with an API token, TLS verified or pinned.

Why: this is how pveplan reaches a real PVE host the way its users grant access. The
mapping (URL, query, form body, booleans as 0/1) must be what PVE's schema accepts, the
token must never reach a peer other than the pinned one nor appear in any message, and
each of PVE's error shapes must become one message that says what to do. The far end is
a real HTTPS server on 127.0.0.1 (`pve_https_server`: a real self-signed certificate,
real TLS, PVE-shaped JSON), started and stopped by each test.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import trio

from pveplan.executor.pve import (
    HttpsTransport,
    PveDriver,
    PveError,
    PveRequest,
    api_ssl_context,
    api_url,
    form_body,
    normalize_endpoint,
)
from pveplan.executor.pve import requests as build
from tests.contract.pve_contract import check_api_request, load_schema

from .pve_https_server import Answer, ok, serve_pve
from .test_pve_requests import CASES, UPID

T = TypeVar("T")
SECRET = "5f1c2d3e-aaaa-bbbb-cccc-0123456789ab"
TOKEN = f"root@pam!pveplan={SECRET}"
OTHER_PIN = ":".join(["AB"] * 32)


def run(body: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        with trio.fail_after(30):
            return await body()

    return trio.run(main)


def transport(url: str, pin: str | None, token: str = TOKEN) -> HttpsTransport:
    return HttpsTransport(
        url,
        lambda: token,
        token_name="api_tokens.pve1",
        fingerprint=pin,
        source="site/nodes/pve1.yaml",
    )


def call(t: HttpsTransport, request: PveRequest, timeout: float = 10) -> Any:
    async def body() -> Any:
        try:
            return await t.call(request, timeout=timeout)
        finally:
            await t.aclose()

    return run(body)


def failure(t: HttpsTransport, request: PveRequest, timeout: float = 10) -> str:
    with pytest.raises(PveError) as info:
        call(t, request, timeout)
    message = str(info.value)
    assert SECRET not in message and SECRET not in repr(info.value)
    return message


# --- the mapping, pure ----------------------------------------------------------------------


def test_paths_are_percent_encoded_and_get_parameters_are_the_query() -> None:
    url = api_url("https://pve:8006", build.task_status("pve", UPID))
    assert url == (
        "https://pve:8006/api2/json/nodes/pve/tasks/"
        "UPID%3Apve%3A00001234%3A00005678%3A65000000%3Aqmstart%3A100%3Aroot%40pam%3A/status"
    )
    assert api_url("https://pve:8006", build.cluster_resources("vm")).endswith(
        "/api2/json/cluster/resources?type=vm"
    )
    assert form_body(build.cluster_resources("vm")) is None


def test_delete_parameters_are_the_query_with_booleans_as_0_1() -> None:
    request = build.destroy_vm("pve", 100, skiplock=True)
    assert api_url("https://h:8006", request).endswith(
        "/qemu/100?destroy-unreferenced-disks=1&purge=1&skiplock=1"
    )
    assert form_body(request) is None


def test_post_parameters_are_a_form_body_in_pve_spelling() -> None:
    request = build.create_vm("pve", 100, {"name": "web1", "agent": True, "onboot": False})
    assert api_url("https://h:8006", request) == "https://h:8006/api2/json/nodes/pve/qemu"
    assert form_body(request) == b"agent=1&name=web1&onboot=0&vmid=100"


def test_sshkeys_are_encoded_again_by_the_form_layer() -> None:
    """pve-api.md §3: the value is percent-encoded once by the builder and once more by
    the form layer (`%` -> `%25`); a space is `%20`, never `+`."""
    request = build.set_vm_config("pve", 100, {"sshkeys": "ssh-ed25519%20AAAA%20a"})
    assert form_body(request) == b"sshkeys=ssh-ed25519%2520AAAA%2520a"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://pve1.home.arpa:8006", "https://pve1.home.arpa:8006"),
        ("https://10.0.0.5", "https://10.0.0.5:8006"),
        ("https://10.0.0.5:8006/api2/json/", "https://10.0.0.5:8006"),
        ("https://[fd00::5]:8006", "https://[fd00::5]:8006"),
    ],
)
def test_endpoints_are_normalised(given: str, expected: str) -> None:
    assert normalize_endpoint(given) == expected


@pytest.mark.parametrize(
    "given", ["http://pve:8006", "pve:8006", "https://user@pve:8006", "https://pve:8006/x"]
)
def test_an_endpoint_that_is_not_https_to_a_host_is_refused(given: str) -> None:
    with pytest.raises(PveError, match=r"api_endpoint must be .*nodes/pve1\.yaml"):
        transport(given, None)


def test_the_pinned_context_refuses_blocking_sockets() -> None:
    """Only SSLObjects check the pin; a blocking client must fail, not skip it."""
    with pytest.raises(TypeError, match="wrap_bio"):
        api_ssl_context(OTHER_PIN).wrap_socket(None)  # type: ignore[arg-type]
    assert api_ssl_context(None).verify_mode == ssl.CERT_REQUIRED
    assert api_ssl_context(None).check_hostname


def test_the_repr_names_the_secret_never_its_value() -> None:
    t = transport("https://pve:8006", OTHER_PIN)
    assert SECRET not in repr(t) and "api_tokens.pve1" in repr(t)


# --- against a real HTTPS server --------------------------------------------------------


def test_every_request_the_transport_sends_is_one_pve_s_schema_accepts() -> None:
    """Every builder's requests, as they arrive at a real server: method, path, query
    and form body routed back to the schema and checked (contract)."""
    requests = [r for rs in CASES.values() for r in rs]
    with serve_pve() as server:
        t = transport(server.url, server.fingerprint)

        async def body() -> None:
            try:
                for request in requests:
                    await t.call(request, timeout=10)
            finally:
                await t.aclose()

        run(body)
        seen = server.seen
    assert len(seen) == len(requests)
    schema = load_schema()
    for request, got in zip(requests, seen, strict=True):
        assert got.headers["Authorization"] == f"PVEAPIToken={TOKEN}"
        resolved = schema.resolve(got.path)
        assert resolved is not None, got.path
        endpoint, path_params = resolved
        assert endpoint.template == request.path
        assert check_api_request(got.method, endpoint.template, path_params, got.params) == [], got
        sent_as_form = got.method in ("POST", "PUT") and request.params
        assert bool(got.body) == bool(sent_as_form)
        if sent_as_form:
            assert got.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_the_data_is_unwrapped() -> None:
    with serve_pve() as server:
        assert call(transport(server.url, server.fingerprint), build.version())["release"] == "9.1"


def test_a_task_is_followed_to_its_exit_status_through_the_api() -> None:
    polls = iter(["running", "stopped"])

    def answer(method: str, path: str, params: dict[str, str]) -> Answer:
        if method == "POST":
            return ok(UPID)
        return ok({"status": next(polls), "exitstatus": "OK", "type": "qmstart"})

    with serve_pve(answer) as server:
        t = transport(server.url, server.fingerprint)

        async def body() -> None:
            try:
                await PveDriver(None, "pve", transport=t).power(100, "start")  # type: ignore[arg-type]
            finally:
                await t.aclose()

        run(body)
        assert [s.method for s in server.seen] == ["POST", "GET", "GET"]


def test_a_failed_task_is_a_pve_error_with_its_exit_status() -> None:
    def answer(method: str, path: str, params: dict[str, str]) -> Answer:
        if method == "POST":
            return ok(UPID)
        return ok({"status": "stopped", "exitstatus": "VM 100 already running", "type": "qmstart"})

    with serve_pve(answer) as server:
        t = transport(server.url, server.fingerprint)

        async def body() -> None:
            try:
                await PveDriver(None, "pve", transport=t).power(100, "start")  # type: ignore[arg-type]
            finally:
                await t.aclose()

        with pytest.raises(PveError, match="VM 100 already running") as info:
            run(body)
        assert info.value.status == "VM 100 already running"


# --- TLS: the pin, the CAs ------------------------------------------------------------------


def test_a_certificate_other_than_the_pinned_one_is_refused_before_anything_is_sent() -> None:
    with serve_pve() as server:
        message = failure(transport(server.url, OTHER_PIN), build.version())
        assert server.seen == []  # not a byte of the request, so not the token
    assert "site/nodes/pve1.yaml" in message
    assert server.fingerprint in message and OTHER_PIN in message
    assert "api_fingerprint" in message and "pvenode cert info" in message


def test_without_a_pin_a_self_signed_certificate_is_refused() -> None:
    with serve_pve() as server:
        message = failure(transport(server.url, None), build.version())
        assert server.seen == []
    assert "does not verify" in message and "api_fingerprint" in message


# --- PVE's errors, one message each ------------------------------------------------------


def answering(status: int, reason: str, body: Any) -> Callable[..., Answer]:
    return lambda method, path, params: (status, reason, body)


@pytest.mark.parametrize(
    ("status", "reason", "body", "expected"),
    [
        (
            400,
            "Parameter verification failed.",
            {
                "data": None,
                "message": "Parameter verification failed.\n",
                "errors": {"vmid": "value must have a minimum value of 100", "name": "invalid"},
            },
            "POST /nodes/pve/qemu: 400 Parameter verification failed. name: invalid;"
            " vmid: value must have a minimum value of 100",
        ),
        (
            401,
            "No ticket",
            None,
            "401 PVE refused API token root@pam!pveplan (api_tokens.pve1 in secrets.yaml)",
        ),
        (
            403,
            "Permission check failed (/vms/100, VM.Allocate)",
            {"data": None, "message": "Permission check failed (/vms/100, VM.Allocate)\n"},
            "lacks privilege VM.Allocate on /vms/100",
        ),
        (
            403,
            "Permission check failed",
            {"data": None},
            "403 Permission check failed (API token root@pam!pveplan)",
        ),
        (
            500,
            "unable to create VM 100 - VM 100 already exists on node 'pve'",
            {"data": None},  # an older server: no `message`, the reason says it
            "POST /nodes/pve/qemu: 500 unable to create VM 100 - VM 100 already exists on node",
        ),
        (
            500,
            "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout",
            {
                "data": None,
                "message": "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout\n",
            },
            "got timeout (another operation holds the lock /var/lock/qemu-server/lock-100.conf",
        ),
        (
            595,
            "Connection refused",
            {"data": None},
            "cannot reach https://127.0.0.1:",
        ),
        (
            501,
            "Method 'POST /nodes/pve/qemu' not implemented",
            {"data": None},
            "501 Method 'POST /nodes/pve/qemu' not implemented",
        ),
    ],
)
def test_each_error_shape_of_pve_is_one_clear_message(
    status: int, reason: str, body: Any, expected: str
) -> None:
    with serve_pve(answering(status, reason, body)) as server:
        message = failure(
            transport(server.url, server.fingerprint), build.create_vm("pve", 100, {"name": "a"})
        )
    assert expected in message


def test_a_token_secret_that_is_not_a_token_is_refused_without_echoing_it() -> None:
    with serve_pve() as server:
        message = failure(transport(server.url, server.fingerprint, SECRET), build.version())
        assert server.seen == []
    assert "api_tokens.pve1" in message and "USER@REALM!TOKENID=SECRET" in message


def test_a_refused_connection_names_the_endpoint_and_its_node_file() -> None:
    with serve_pve() as server:
        url = server.url  # closed when the block ends: nothing listens there after
    message = failure(transport(url, OTHER_PIN), build.version())
    assert message == f"cannot reach {url} (from site/nodes/pve1.yaml): connection refused"


def test_a_name_that_does_not_resolve_names_the_endpoint() -> None:
    message = failure(transport("https://pve.invalid:8006", OTHER_PIN), build.version())
    assert message.startswith("cannot reach https://pve.invalid:8006 (from site/nodes/pve1.yaml)")


def test_no_answer_in_time_is_a_timeout_naming_the_call() -> None:
    def slow(method: str, path: str, params: dict[str, str]) -> Answer:
        time.sleep(1.0)
        return ok(None)

    with serve_pve(slow) as server:
        message = failure(transport(server.url, server.fingerprint), build.version(), 0.3)
    assert (
        message
        == f"GET /version: no answer from {server.url} (from site/nodes/pve1.yaml) within 0.3 s"
    )


def test_a_host_with_api_access_gets_a_driver_over_https_and_ssh_only_on_demand() -> None:
    """`Services.pve` builds the HTTPS transport from the host's `ApiAccess`, revealing
    the token by its secret's name; SSH is not opened for API calls (the host has no SSH
    key pinned, and its channel says so only when something needs it)."""
    from pveplan.executor import ApiAccess, ChannelError, HostInfo, Services, SiteHostAccess

    with serve_pve() as server:
        api = ApiAccess(
            endpoint=server.url,
            token_secret="api_tokens.pve1",
            fingerprint=server.fingerprint,
            source="site/nodes/pve1.yaml",
        )
        info = HostInfo(name="pve1", pve_node="pve", ssh_host="127.0.0.1", host_key="", api=api)
        revealed: list[str] = []

        def reveal(name: str) -> str:
            revealed.append(name)
            return TOKEN

        services = Services(
            store=None,  # type: ignore[arg-type]
            workspace="w",
            hosts=SiteHostAccess({"pve1": info}, pool=None),  # type: ignore[arg-type]
            pool=None,  # type: ignore[arg-type]
            driver_key=(b"", ""),
            reveal=reveal,
        )

        async def body() -> None:
            try:
                driver = await services.pve("pve1")
                assert await services.pve("pve1") is driver
                assert isinstance(driver.transport, HttpsTransport)
                assert (await driver.version())["release"] == "9.1"
                with pytest.raises(ChannelError, match="pins no SSH host key"):
                    await driver.channel.run(["true"])
            finally:
                await services.aclose()

        run(body)
        assert revealed == ["api_tokens.pve1"]
        assert [s.path for s in server.seen] == ["/version"]
