"""The spec server's limits: timeouts, connection caps and the body size, against a real
server on 127.0.0.1 and real TLS clients (some from the source address 127.0.0.2 or
127.0.0.3, which are loopback too: the server still binds 127.0.0.1 only)."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import time
from pathlib import Path

import msgspec
import pytest

from pveplan import dsl
from pveplan.cli._serve import server_limits
from pveplan.executor.pull import client_context
from pveplan.executor.specserver import Limits, ServerInfo
from pveplan.executor.specserver._limits import NOTICE_BURST, Admission, Notices
from pveplan.planner import PlanError
from pveplan.planner.siteconfig import load_site_config

from ._support import CANARY, SITE_TOKEN, Running, catalog, raw_exchange, running_server

HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


def limited_server(
    limits: Limits, auth: str = "network"
) -> contextlib.AbstractContextManager[Running]:
    """A spec server with `limits` on an ephemeral port of 127.0.0.1 (see `running_server`)."""
    return running_server(lambda: catalog(auth), limits=limits)


def health(info: ServerInfo, source: str = "127.0.0.1") -> int:
    """The status of `GET /health` over a fresh TLS connection from `source` (0: the
    connection was closed before an answer, as a refused one is)."""
    conn = http.client.HTTPSConnection(
        "127.0.0.1", info.port, timeout=5, context=client_context(), source_address=(source, 0)
    )
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        response.read()
        return response.status
    except (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected):
        return 0
    finally:
        conn.close()


def tls_connection(info: ServerInfo, source: str = "127.0.0.1") -> ssl.SSLSocket:
    """A TLS connection with its handshake done (so the server has surely counted it)."""
    sock = socket.create_connection(("127.0.0.1", info.port), timeout=5, source_address=(source, 0))
    try:
        return client_context().wrap_socket(sock)
    except BaseException:
        sock.close()
        raise


def refused(info: ServerInfo, source: str = "127.0.0.1") -> bool:
    """Whether a new connection from `source` is closed before its TLS handshake ends."""
    try:
        tls_connection(info, source).close()
    except (ssl.SSLError, ConnectionError):
        return True
    return False


def read_to_close(tls: ssl.SSLSocket) -> bytes:
    """Everything the server sends until it closes (its socket timeout fails a server that
    never closes)."""
    received = b""
    with contextlib.suppress(ssl.SSLError, ConnectionError):
        while chunk := tls.recv(4096):
            received += chunk
    return received


def wait_until(condition: object, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"not true within {timeout} s")


def test_a_slow_header_client_is_cut_in_time_while_health_answers() -> None:
    limits = Limits(header_timeout=1.0)
    lines = [
        b"GET /spec/edge HTTP/1.1\r\n",
        b"Host: x\r\n",
        f"Authorization: Bearer {SITE_TOKEN}\r\n".encode(),
        *[f"X-Pad-{n}: {n}\r\n".encode() for n in range(30)],  # 6 s at 0.2 s a line
    ]
    with limited_server(limits, auth="site_token") as running, tls_connection(running.info) as slow:
        started = time.monotonic()
        answer, closed_at, health_times = b"", None, []
        for line in lines:  # one line per 0.2 s, a /health request in between
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                slow.sendall(line)
            asked = time.monotonic()
            assert health(running.info) == 200
            health_times.append(time.monotonic() - asked)
            slow.settimeout(max(0.01, 0.2 - (time.monotonic() - asked)))
            try:
                answer += slow.recv(4096)
            except TimeoutError:
                continue
            except (ssl.SSLError, ConnectionError):
                pass
            slow.settimeout(1.0)  # the server answered or closed: nothing more is coming
            answer += read_to_close(slow)
            closed_at = time.monotonic() - started
            break
        assert closed_at is not None, "the slow client was never disconnected"
        assert 0.9 <= closed_at <= 2.0, closed_at
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:40]
        assert max(health_times) < 0.5, health_times  # /health answered all along
        assert health(running.info) == 200
        line = running.wait_for_log("closed 127.0.0.1:")
    assert line.endswith("closed 127.0.0.1: request head not complete within 1 s"), line
    assert CANARY not in "\n".join(running.logs)


def test_a_client_that_never_starts_tls_is_dropped_and_frees_its_slot() -> None:
    limits = Limits(handshake_timeout=0.5, max_connections_per_address=1)
    with (
        limited_server(limits) as running,
        socket.create_connection(("127.0.0.1", running.info.port), timeout=5) as silent,
    ):
        started = time.monotonic()
        wait_until(lambda: refused(running.info), 2.0)  # the silent one holds the slot
        assert health(running.info, "127.0.0.2") == 200  # other addresses still get through
        with contextlib.suppress(ConnectionResetError):
            assert silent.recv(100) == b""
        elapsed = time.monotonic() - started
        assert 0.4 <= elapsed <= 2.0, elapsed
        wait_until(lambda: health(running.info) == 200)  # its slot is free again
        line = running.wait_for_log("TLS handshake")
    assert line.endswith("closed 127.0.0.1: TLS handshake not complete within 0.5 s"), line


def test_one_address_over_its_cap_is_refused_and_others_get_through() -> None:
    with limited_server(Limits(max_connections_per_address=3)) as running:
        info = running.info
        with contextlib.ExitStack() as held:
            for _ in range(3):
                held.enter_context(tls_connection(info))
            assert refused(info), "a 4th connection from 127.0.0.1 was let in"
            assert health(info, "127.0.0.2") == 200
            line = running.wait_for_log("refused 127.0.0.1:")
            assert line.endswith("refused 127.0.0.1: too many connections (3/3)"), line
        wait_until(lambda: health(info) == 200)  # the slots are given back
    assert not [line for line in running.logs if "refused 127.0.0.2" in line]


def test_the_total_cap_refuses_every_address() -> None:
    limits = Limits(max_connections=2, max_connections_per_address=2)
    with (
        limited_server(limits) as running,
        tls_connection(running.info, "127.0.0.1"),
        tls_connection(running.info, "127.0.0.2"),
    ):
        assert refused(running.info, "127.0.0.3")
        line = running.wait_for_log("refused 127.0.0.3:")
    assert line.endswith("refused 127.0.0.3: too many connections in total (2/2)"), line


def _status(answer: bytes) -> int | None:
    return int(answer[9:12]) if answer.startswith(b"HTTP/1.1 ") else None


def _report(size: int) -> bytes:
    """A valid node report of exactly `size` bytes (its error text pads it)."""
    report = {"identity": "edge", "instance": "i-1", "spec_hash": "0" * 64, "status": "converged"}
    prefix = msgspec.json.encode(report)[:-1] + b', "error": "'
    return prefix + b"e" * (size - len(prefix) - 2) + b'"}'


def test_bodies_over_the_limit_get_413() -> None:
    auth = f"Authorization: Bearer {SITE_TOKEN}\r\n".encode()
    with limited_server(Limits(max_body=2048)) as running:
        info = running.info
        fits = _report(2048)
        assert len(fits) == 2048
        head = b"POST /report/edge HTTP/1.1\r\nHost: x\r\n" + auth
        ok = head + b"Content-Length: 2048\r\nConnection: close\r\n\r\n" + fits
        assert _status(raw_exchange(info, ok)) == 200
        # refused on its Content-Length, before a byte of the body is sent
        big = head + b"Content-Length: 2049\r\n\r\n"
        assert _status(raw_exchange(info, big)) == 413
        # a chunked body is cut off once it grows past the limit (3 KiB > 2 KiB)
        chunk = b"400\r\n" + b"x" * 0x400 + b"\r\n"
        chunked = head + b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 3 + b"0\r\n\r\n"
        assert _status(raw_exchange(info, chunked)) == 413
        wait_until(lambda: sum(" 413 " in line for line in running.logs) == 2)
        assert health(info) == 200
    assert CANARY not in "\n".join(running.logs)


def test_a_slow_body_gets_408_and_an_idle_connection_closes_quietly() -> None:
    limits = Limits(body_timeout=0.5, idle_timeout=0.3)
    with limited_server(limits) as running, tls_connection(running.info) as tls:
        tls.sendall(b"POST /report/edge HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        started = time.monotonic()
        answer = read_to_close(tls)
        assert _status(answer) == 408 and 0.4 <= time.monotonic() - started <= 2.0
        line = running.wait_for_log("request body")
        assert line.endswith("request body of POST /report/edge not complete within 0.5 s")
        with tls_connection(running.info) as idle:
            idle.sendall(HEALTH)
            first = idle.recv(4096)
            assert _status(first) == 200
            started = time.monotonic()
            assert idle.recv(4096) == b""  # closed, without a 408: nothing was asked
            assert time.monotonic() - started <= 2.0
    assert sum("closed 127.0.0.1" in line for line in running.logs) == 1


def test_admission_counts_per_address_and_in_total() -> None:
    admission = Admission(Limits(max_connections=3, max_connections_per_address=2))
    assert admission.admit("a") is None and admission.admit("a") is None
    assert admission.admit("a") == "too many connections (2/2)"
    assert admission.admit("b") is None
    assert admission.admit("c") == "too many connections in total (3/3)"
    admission.release("a")
    assert admission.admit("c") is None and admission.total == 3
    with pytest.raises(RuntimeError):
        admission.release("never")


def test_notices_are_rate_limited_and_summed_up() -> None:
    now = [0.0]
    lines: list[str] = []
    notices = Notices(lines.append, clock=lambda: now[0])
    for n in range(NOTICE_BURST + 5):
        notices.refused(f"10.0.0.{n}", "too many connections (1/1)")
    assert len(lines) == NOTICE_BURST
    now[0] = 1.5
    notices.closed("10.0.0.1\n\x1b", "TLS handshake not complete within 1 s")
    assert lines[-2].endswith(
        f"5 more refused or closed connections not logged one by one (over {NOTICE_BURST} per 1 s)"
    )
    assert lines[-1].endswith("closed 10.0.0.1\\x0a\\x1b: TLS handshake not complete within 1 s")


@pytest.mark.parametrize(
    "changes",
    [
        {"header_timeout": 0},
        {"max_body": -1},
        {"max_connections": 4, "max_connections_per_address": 5},
    ],
)
def test_limits_refuse_nonsense(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="spec server limit"):
        Limits(**changes)  # type: ignore[arg-type]


def test_site_yaml_spec_server_section_sets_the_limits(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(
        "spec_server:\n  header_timeout: 5\n  max_connections_per_address: 8\n"
    )
    limits = server_limits(load_site_config(tmp_path))
    assert limits == Limits(header_timeout=5.0, max_connections_per_address=8)
    (tmp_path / "empty").mkdir()
    assert server_limits(load_site_config(tmp_path / "empty")) == Limits()
    (tmp_path / "site.yaml").write_text(
        "spec_server:\n  max_connections: 4\n  max_connections_per_address: 8\n"
    )
    with pytest.raises(PlanError, match="exceeds max_connections"):
        server_limits(load_site_config(tmp_path))
    (tmp_path / "site.yaml").write_text("spec_server:\n  header_timout: 5\n")
    with pytest.raises(dsl.DslError, match="unknown key 'header_timout' in spec_server"):
        load_site_config(tmp_path)
