"""The server's life: started by a trio nursery, reloaded on SIGHUP, stopped gracefully.

These run the server in the test's own `trio.run` on the main thread (signals are only
delivered there); the blocking client runs in worker threads via `trio.to_thread`.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import pytest
import trio

from pveplan.executor.pull import PullClient, client_context
from pveplan.executor.specserver import Catalog, CatalogError, ServerInfo, SpecServer, serve_specs

from ._support import CANARY, CERT, KEY, catalog, document


def run(body: Callable[[], Awaitable[None]], limit: float = 30.0) -> None:
    async def main() -> None:
        with trio.fail_after(limit):
            await body()

    trio.run(main)


def port_is_closed(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex(("127.0.0.1", port)) != 0


def fetch(info: ServerInfo, node: str) -> bytes:
    with PullClient(info.url, info.fingerprint) as client:
        return client.get_bytes(f"/spec/{node}")[0]


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here")
def test_sighup_reloads_and_a_failed_reload_keeps_the_old_catalog() -> None:
    generations: list[Catalog | Exception] = [
        catalog("network", nodes=("edge",)),
        catalog("network", nodes=("edge", "core")),
        CatalogError("site config: manifests/x.yaml does not parse"),
        RuntimeError(f"yaml error quoting a secret {CANARY}"),
    ]
    calls: list[int] = []
    logs: list[str] = []

    def load() -> Catalog:
        calls.append(1)
        item = generations[min(len(calls), len(generations)) - 1]
        if isinstance(item, Exception):
            raise item
        return item

    async def wait_for_log(text: str, count: int = 1) -> None:
        while sum(text in line for line in logs) < count:
            await trio.sleep(0.01)

    async def body() -> None:
        async with trio.open_nursery() as nursery:
            info: ServerInfo = await nursery.start(
                partial(
                    serve_specs,
                    load_catalog=load,
                    bundle_path=lambda digest: None,
                    cert_pem=CERT,
                    key_pem=KEY,
                    port=0,
                    log=logs.append,
                    reload_on_sighup=True,
                )
            )
            assert await trio.to_thread.run_sync(fetch, info, "edge") == document("edge")
            with pytest.raises(Exception, match="404"):
                await trio.to_thread.run_sync(fetch, info, "core")

            os.kill(os.getpid(), signal.SIGHUP)
            await wait_for_log("reloaded: 2 specs (was 1)")
            assert await trio.to_thread.run_sync(fetch, info, "core") == document("core")

            os.kill(os.getpid(), signal.SIGHUP)
            await wait_for_log("reload failed")
            assert "manifests/x.yaml does not parse" in logs[-1]
            os.kill(os.getpid(), signal.SIGHUP)
            await wait_for_log("reload failed", 2)
            assert "RuntimeError" in logs[-1]
            assert await trio.to_thread.run_sync(fetch, info, "core") == document("core")
            nursery.cancel_scope.cancel()

    run(body)
    assert len(calls) == 4
    assert CANARY not in "\n".join(logs)


def test_cancelling_stops_promptly_and_closes_the_port() -> None:
    async def body() -> None:
        server = SpecServer(
            load_catalog=lambda: catalog("network"),
            bundle_path=lambda digest: None,
            cert_pem=CERT,
            key_pem=KEY,
            log=lambda line: None,
        )
        async with trio.open_nursery() as nursery:
            info: ServerInfo = await nursery.start(partial(server.serve, port=0))
            client = PullClient(info.url, info.fingerprint)
            await trio.to_thread.run_sync(client.get_json, "/health")  # an idle keep-alive
            started = time.monotonic()
            nursery.cancel_scope.cancel()
        assert time.monotonic() - started < 1.0  # idle connections do not hold the stop
        client.close()
        assert port_is_closed(info.port)

    run(body)


def test_a_request_in_flight_finishes_during_the_stop(tmp_path: Path) -> None:
    content = os.urandom(8 * 1024 * 1024)
    digest = hashlib.sha256(content).hexdigest()
    (tmp_path / "bundle").write_bytes(content)
    logs: list[str] = []

    def slow_download(info: ServerInfo, stop: Callable[[], None]) -> tuple[bytes, bool]:
        """Start a large download, have the server stopped halfway, read the rest."""
        with (
            socket.create_connection(("127.0.0.1", info.port), timeout=10) as sock,
            client_context().wrap_socket(sock) as tls,
        ):
            tls.sendall(f"GET /bundle/{digest} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            received = bytearray(tls.recv(65536))
            trio.from_thread.run_sync(stop)
            deadline = time.monotonic() + 2
            refused = False
            while time.monotonic() < deadline and not refused:
                refused = port_is_closed(info.port)
                time.sleep(0.05)
            while chunk := tls.recv(1 << 20):
                received += chunk
            return bytes(received), refused

    async def body() -> None:
        server = SpecServer(
            load_catalog=lambda: catalog("network"),
            bundle_path=lambda name: tmp_path / "bundle" if name == digest else None,
            cert_pem=CERT,
            key_pem=KEY,
            log=logs.append,
        )
        async with trio.open_nursery() as nursery:
            info: ServerInfo = await nursery.start(partial(server.serve, port=0))
            received, refused = await trio.to_thread.run_sync(
                slow_download, info, nursery.cancel_scope.cancel
            )
        head, _, payload = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert f"content-length: {len(content)}".encode() in head.lower()
        assert payload == content
        assert refused, "the port kept accepting connections while draining"

    run(body)
    assert any(f"GET /bundle/{digest} 200" in line for line in logs)


def test_a_stuck_client_is_cut_after_the_grace(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pveplan.executor.specserver import _http

    monkeypatch.setattr(_http, "DRAIN_GRACE", 0.5)
    (tmp_path / "bundle").write_bytes(b"x" * (16 * 1024 * 1024))

    async def body() -> None:
        server = SpecServer(
            load_catalog=lambda: catalog("network"),
            bundle_path=lambda name: tmp_path / "bundle",
            cert_pem=CERT,
            key_pem=KEY,
            log=lambda line: None,
        )
        async with trio.open_nursery() as nursery:
            info: ServerInfo = await nursery.start(partial(server.serve, port=0))
            stream = await trio.open_ssl_over_tcp_stream(
                "127.0.0.1", info.port, ssl_context=client_context()
            )
            await stream.send_all(b"GET /bundle/" + b"a" * 64 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            await stream.receive_some(1000)  # then read no more
            await trio.sleep(0.2)
            started = trio.current_time()
            nursery.cancel_scope.cancel()
        assert trio.current_time() - started < 3.0
        await trio.aclose_forcefully(stream)

    run(body)


def test_port_in_use_is_a_clear_error() -> None:
    async def body() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
                await serve_specs(
                    load_catalog=lambda: catalog("network"),
                    bundle_path=lambda digest: None,
                    cert_pem=CERT,
                    key_pem=KEY,
                    port=port,
                    log=lambda line: None,
                )

    run(body)
