"""The spec server's routes, reports, bundles and robustness, through the real client."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl
import time
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pveplan.executor.pull import (
    HttpStatusError,
    NodeReport,
    PinMismatch,
    PullClient,
    PullError,
    ReportStatus,
    client_context,
    fingerprint,
)
from pveplan.planner._version import __version__
from tests._tiers import examples

from ._support import (
    CANARY,
    CERT,
    OTHER_CERT,
    OTHER_KEY,
    SITE_TOKEN,
    catalog,
    document,
    health_ok,
    raw_exchange,
    raw_request,
    running_server,
)


def report(status: str = "converged", instance: str = "i-1", **changes: object) -> NodeReport:
    fields: dict[str, object] = {
        "identity": "edge",
        "instance": instance,
        "spec_hash": "edge-hash".ljust(64, "0"),
        "status": status,
        "changed": ["packages"],
        "drift": ["file /etc/motd differs", "service nginx stopped"],
        **changes,
    }
    return NodeReport(**fields)  # type: ignore[arg-type]


def test_health_and_specs_need_no_token() -> None:
    served = catalog("site_token", conflicts={"twin": "two manifests define twin"})
    with (
        running_server(served) as running,
        PullClient(running.info.url, running.info.fingerprint) as client,
    ):
        assert client.get_json("/health") == {
            "status": "ok",
            "version": __version__,
            "specs": 2,
        }
        assert client.get_json("/specs") == {"specs": ["core", "edge"]}
        with pytest.raises(HttpStatusError) as unknown:
            client.get_json("/spec/nowhere")
        assert (unknown.value.status, unknown.value.error) == (
            404,
            "no spec for node 'nowhere'",
        )
        with pytest.raises(HttpStatusError) as conflict:
            client.get_json("/spec/twin")
        assert (conflict.value.status, conflict.value.error) == (
            409,
            "two manifests define twin",
        )
    assert running.info.fingerprint == fingerprint(CERT)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 404),
        ("GET", "/nothing", 404),
        ("GET", "/spec", 404),
        ("GET", "/spec/edge/more", 404),
        ("GET", "/health/x", 404),
        ("POST", "/health", 405),
        ("DELETE", "/spec/edge", 405),
        ("PUT", "/report/edge", 405),
        ("POST", "/bundle/" + "a" * 64, 405),
    ],
)
def test_other_routes(method: str, path: str, status: int) -> None:
    with running_server(catalog("network")) as running:
        got, headers, body = raw_request(
            running.info, method, path, body=b"" if method != "GET" else None
        )
    assert got == status
    assert "error" in msgspec.json.decode(body)
    if status == 405:
        assert "GET" in headers["allow"]


def test_report_phases() -> None:
    with (
        running_server(catalog("site_token")) as running,
        PullClient(running.info.url, running.info.fingerprint, token=SITE_TOKEN) as c,
    ):

        def status(instance: str | None = None) -> ReportStatus:
            query = {"instance": instance} if instance else None
            return msgspec.convert(c.get_json("/report/edge", query), ReportStatus)

        assert status("i-1") == ReportStatus(identity="edge", instance="i-1", phase="waiting")
        assert status() == ReportStatus(identity="edge", instance=None, phase="waiting")
        body, _ = c.get_bytes("/spec/edge", {"instance": "i-1"})
        assert body == document("edge")
        fetched = status("i-1")
        assert fetched.phase == "fetched" and fetched.fetched_at is not None
        assert fetched.report is None
        assert status("i-2").phase == "waiting"
        assert c.post_json("/report/edge", report()) == {"status": "recorded"}
        reported = status("i-1")
        assert reported.phase == "reported" and reported.report == report()
        assert reported.fetched_at == fetched.fetched_at
        assert status().instance == "i-1"
        # a second instance (a re-created VM) reports later: it is the latest
        c.post_json("/report/edge", report("failed", "i-2", error="apt failed"))
        assert status().report == report("failed", "i-2", error="apt failed")
        assert status("i-1").report == report()
        with pytest.raises(HttpStatusError) as mismatch:
            c.post_json("/report/core", report())
        assert mismatch.value.status == 400
        assert "edge" in (mismatch.value.error or "")
        with pytest.raises(HttpStatusError) as garbage:
            c.post_json("/report/edge", {"identity": "edge"})
        assert garbage.value.status == 400
    assert running.server.reports == {"edge": report("failed", "i-2", error="apt failed")}
    assert running.server.status("edge", "i-1").phase == "reported"
    lines = [line for line in running.logs if " report edge " in line]
    assert lines[0].endswith(
        "report edge instance=i-1 converged spec=edge-hash000 changed=1 drift=2:"
        " file /etc/motd differs; service nginx stopped"
    )


def test_report_instances_are_bounded() -> None:
    with running_server(catalog("network")) as running:
        with PullClient(running.info.url, running.info.fingerprint) as client:
            for number in range(40):
                client.get_bytes("/spec/edge", {"instance": f"vm-{number}"})
            with pytest.raises(HttpStatusError) as long:
                client.get_bytes("/spec/edge", {"instance": "x" * 200})
            assert long.value.status == 400
        assert running.server.status("edge", "vm-39").phase == "fetched"
        assert running.server.status("edge", "vm-0").phase == "waiting"


def test_bundles(tmp_path: Path) -> None:
    content = bytes(range(256)) * 1024 + b"tail"
    digest = hashlib.sha256(content).hexdigest()
    (tmp_path / f"{digest}.tar.gz").write_bytes(content)

    def bundle_path(name: str) -> Path | None:
        return tmp_path / f"{name}.tar.gz" if name == digest else None

    with running_server(catalog("site_token"), bundle_path=bundle_path) as running:
        with PullClient(running.info.url, running.info.fingerprint) as client:
            dest = tmp_path / "out" / "bundle.tar.gz"
            client.download(f"/bundle/{digest}", dest, sha256=digest)
            assert dest.read_bytes() == content
            assert not dest.with_name("bundle.tar.gz.part").exists()
            other = tmp_path / "other.tar.gz"
            with pytest.raises(PullError, match="discarded"):
                client.download(f"/bundle/{digest}", other, sha256="0" * 64)
            assert not other.exists() and not other.with_name("other.tar.gz.part").exists()
            with pytest.raises(HttpStatusError) as unknown:
                client.download("/bundle/" + "1" * 64, other)
            assert unknown.value.status == 404
            for bad in ("abc", digest.upper(), digest + "0", "g" * 64):
                with pytest.raises(HttpStatusError) as refused:
                    client.download(f"/bundle/{bad}", other)
                assert refused.value.status == 400
            assert client.get_json("/health")["status"] == "ok"  # the connection still works
        status, headers, _ = raw_request(running.info, "GET", f"/bundle/{digest}")
        assert (status, headers["content-type"]) == (200, "application/gzip")
        assert headers["content-length"] == str(len(content))


def test_pin_mismatch_sends_nothing() -> None:
    with running_server(catalog("site_token")) as running:
        wrong = fingerprint(OTHER_CERT)
        with (
            PullClient(running.info.url, wrong, token=SITE_TOKEN) as client,
            pytest.raises(PinMismatch) as caught,
        ):
            client.get_json("/spec/edge")
        message = str(caught.value)
        assert running.info.fingerprint in message and wrong in message
        assert "refusing to send the token" in message and CANARY not in message
        time.sleep(0.2)
    assert running.request_lines("/spec/edge") == []
    # a server with that certificate is accepted (the pin given as bare lowercase hex)
    with (
        running_server(catalog("site_token"), cert=(OTHER_CERT, OTHER_KEY)) as other,
        PullClient(other.info.url, wrong.lower().replace(":", ""), token=SITE_TOKEN) as c,
    ):
        assert c.get_bytes("/spec/edge")[0] == document("edge")


def test_client_keeps_one_connection_and_reconnects(monkeypatch: pytest.MonkeyPatch) -> None:
    from pveplan.executor.specserver import _http

    monkeypatch.setattr(_http, "IDLE_TIMEOUT", 0.3)
    with (
        running_server(catalog("network")) as running,
        PullClient(running.info.url, running.info.fingerprint) as client,
    ):
        client.get_json("/health")
        first = client._conn.sock  # type: ignore[union-attr]
        client.get_json("/specs")
        assert client._conn.sock is first  # type: ignore[union-attr]
        time.sleep(0.8)  # the server closes the idle connection
        assert client.get_json("/health")["status"] == "ok"
        assert client._conn.sock is not first  # type: ignore[union-attr]


def test_client_errors_are_one_line() -> None:
    with pytest.raises(PullError, match="must be https://"):
        PullClient("http://127.0.0.1:1", "00" * 32)
    with pytest.raises(PullError, match="fingerprint is invalid"):
        PullClient("https://127.0.0.1:1", "nope")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(PullError) as refused:
        PullClient(f"https://127.0.0.1:{port}", "00" * 32, timeout=2).get_json("/health")
    assert str(refused.value) == f"cannot GET https://127.0.0.1:{port}/health: connection refused"
    assert "Traceback" not in str(refused.value)
    with socket.socket() as silent:  # listens, never answers the TLS handshake
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"https://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(PullError, match=r"no answer within 0\.3 s"):
            PullClient(url, "00" * 32, timeout=0.3).get_json("/health")


def test_handler_exception_is_a_500_and_the_server_goes_on() -> None:
    def broken(name: str) -> Path | None:
        raise RuntimeError(f"disk on fire {CANARY}")

    with running_server(catalog("network"), bundle_path=broken) as running:
        status, _, body = raw_request(running.info, "GET", "/bundle/" + "a" * 64)
        assert status == 500 and msgspec.json.decode(body) == {"error": "internal error"}
        assert health_ok(running.info)
        line = running.wait_for_log(" 500 ")
        assert "internal error: RuntimeError" in line
    assert CANARY not in "\n".join(running.logs)


def _status_of(answer: bytes) -> int | None:
    if not answer.startswith(b"HTTP/1.1 "):
        return None
    return int(answer[9:12])


def test_malformed_and_oversized_requests() -> None:
    with running_server(catalog("site_token")) as running:
        info = running.info
        cases = {
            b"GARBAGE\r\n\r\n": 400,
            b"GET /health HTTP/1.1\r\n\r\n": 400,  # no Host header
            b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n": 400,
            b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n": 400,
            b"GET /health HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 300_000 + b"\r\n\r\n": 431,
            b"POST /report/edge HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n": 413,
            b"GET http://x/health HTTP/1.1\r\nHost: x\r\n\r\n": 400,
            b"GET /health?" + b"a=1&" * 40 + b" HTTP/1.1\r\nHost: x\r\n\r\n": 400,
        }
        for request, status in cases.items():
            assert _status_of(raw_exchange(info, request)) == status, request[:40]
        chunked = (
            b"POST /report/edge HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + (b"10000\r\n" + b"x" * 0x10000 + b"\r\n") * 17
        )
        assert _status_of(raw_exchange(info, chunked)) == 413
        # a token in a malformed request line or header never reaches the log
        raw_exchange(info, f"GET /spec/edge?t={CANARY} HTTP/1.1\r\n\r\n".encode())
        raw_exchange(
            info, f"GET /x HTTP/1.1\r\nAuthorization: Bearer {CANARY}\r\nbad\r\n\r\n".encode()
        )
        # not TLS at all: the handshake fails, the connection closes
        with socket.create_connection(("127.0.0.1", info.port), timeout=5) as plain:
            plain.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert not plain.recv(100).startswith(b"HTTP")
        with socket.create_connection(("127.0.0.1", info.port), timeout=5) as plain:
            plain.sendall(bytes(range(256)) * 4)
            answer = b""
            with contextlib.suppress(OSError):
                answer = plain.recv(100)
            assert not answer.startswith(b"HTTP")
        assert health_ok(info)
    assert CANARY not in "\n".join(running.logs)
    assert any(" 431 " in line for line in running.logs)


def test_head_gets_a_head_and_the_connection_goes_on() -> None:
    with running_server(catalog("network")) as running:
        answer = raw_exchange(
            running.info,
            b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    first, _, rest = answer.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 405 ") and rest.startswith(b"HTTP/1.1 200 ")
    assert not [line for line in running.logs if "connection failed" in line]


def test_keep_alive_serves_many_requests_on_one_connection() -> None:
    with running_server(catalog("network")) as running:
        request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        answer = raw_exchange(
            running.info,
            request * 5 + b"GET /specs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    assert answer.count(b"HTTP/1.1 200 ") == 6


_fuzz_lines = st.one_of(
    st.binary(max_size=300).map(lambda data: data + b"\r\n\r\n"),
    st.builds(
        lambda method, target, version, headers: (
            method + b" " + target + b" " + version + b"\r\n" + headers + b"\r\n\r\n"
        ),
        st.sampled_from([b"GET", b"POST", b"HEAD", b"get", b"", b"G\x00T", b"PATCH"]),
        st.binary(max_size=80),
        st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2", b"", b"HTTP/1.1 extra"]),
        st.binary(max_size=120),
    ),
    st.lists(
        st.sampled_from(
            [
                b"Host: x",
                b"Content-Length: -1",
                b"Content-Length: 5",
                b"Transfer-Encoding: chunked",
                b"Authorization: Bearer " + CANARY.encode(),
                b":",
                b"\x00",
                b"Expect: 100-continue",
            ]
        ),
        max_size=5,
    ).map(lambda headers: b"GET /spec/edge HTTP/1.1\r\n" + b"\r\n".join(headers) + b"\r\n\r\n"),
)


def test_fuzzed_requests_never_stop_the_server() -> None:
    with running_server(catalog("site_token")) as running:

        @settings(
            max_examples=examples(40),
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(_fuzz_lines)
        def fuzz(data: bytes) -> None:
            answer = raw_exchange(running.info, data, wait=1.0)
            status = _status_of(answer)
            assert answer == b"" or status is not None
            if status == 200:
                assert document("edge") not in answer  # never without the token

        fuzz()
        assert health_ok(running.info)
    assert CANARY not in "\n".join(running.logs)
    assert not [line for line in running.logs if "connection failed" in line]


def test_expect_100_continue() -> None:
    body = msgspec.json.encode(report())
    head = (
        b"POST /report/edge HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        + f"Authorization: Bearer {SITE_TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    )
    with running_server(catalog("site_token")) as running:
        with (
            socket.create_connection(("127.0.0.1", running.info.port), timeout=5) as sock,
            client_context().wrap_socket(sock) as tls,
        ):
            tls.sendall(head)
            assert tls.recv(100).startswith(b"HTTP/1.1 100 ")
            tls.sendall(body)
            assert tls.recv(1000).startswith(b"HTTP/1.1 200 ")
        assert running.server.reports == {"edge": report()}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_versions_below_1_2_are_refused() -> None:
    with running_server(catalog("network")) as running:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            context.minimum_version = ssl.TLSVersion.TLSv1_1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
        except (ValueError, ssl.SSLError):
            pytest.skip("this OpenSSL cannot even offer TLS 1.1")
        with (
            socket.create_connection(("127.0.0.1", running.info.port), timeout=5) as sock,
            pytest.raises((ssl.SSLError, ConnectionError)),
        ):
            context.wrap_socket(sock)
        assert health_ok(running.info)
