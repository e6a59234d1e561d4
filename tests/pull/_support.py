"""Helpers for the pull-mode tests: a real spec server on 127.0.0.1, in a thread.

`running_server` starts `SpecServer.serve` on an ephemeral port inside its own `trio.run`
on a background thread, so test bodies call the blocking `PullClient` directly; leaving the
context cancels the server and joins the thread (a server that does not stop fails the
test). Every secret below contains `CANARY`, so a test can assert that no log line, error
message or repr ever shows one.
"""

from __future__ import annotations

import contextlib
import http.client
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import trio

from pveplan.executor.pull import client_context, generate_certificate
from pveplan.executor.specserver import Catalog, Limits, PublishedSpec, ServerInfo, SpecServer
from pveplan.executor.specserver._catalog import AuthMethod

CANARY = "c4n4ry7Q"
"""In every secret and every document: must never reach a log line."""
SITE_TOKEN = f"site-{CANARY}-token"
SIGNING_KEY = f"signing-{CANARY}-key"
NODES = ("edge", "core")
CERT, KEY = generate_certificate()
OTHER_CERT, OTHER_KEY = generate_certificate()


def node_token(node: str) -> str:
    return f"node-{node}-{CANARY}"


def document(node: str) -> bytes:
    return f'{{"node": "{node}", "password": "pw-{node}-{CANARY}"}}'.encode()


def catalog(auth: AuthMethod, *, nodes: tuple[str, ...] = NODES, **changes: object) -> Catalog:
    """A catalog serving `nodes`, all with `auth`, every secret set (unless `changes`)."""
    fields: dict[str, object] = {
        "specs": {
            node: PublishedSpec(
                identity=node,
                spec_name=f"{node}-spec",
                auth_method=auth,
                spec_hash=f"{node}-hash".ljust(64, "0"),
                document=document(node),
            )
            for node in nodes
        },
        "site_token": SITE_TOKEN,
        "node_tokens": {node: node_token(node) for node in nodes},
        "signing_key": SIGNING_KEY,
    }
    fields.update(changes)
    return Catalog(**fields)  # type: ignore[arg-type]


@dataclass
class Running:
    server: SpecServer
    info: ServerInfo
    logs: list[str] = field(default_factory=list)

    def request_lines(self, path: str) -> list[str]:
        """Log lines of requests for `path` (exact path, any method)."""
        return [line for line in self.logs if f" {path} " in line]

    def wait_for_log(self, needle: str, timeout: float = 5.0) -> str:
        """The first log line containing `needle`, waiting for it: the server logs a
        request after the response has left, so the client may see it first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.logs):
                if needle in line:
                    return line
            time.sleep(0.01)
        raise AssertionError(f"no log line with {needle!r} in:\n" + "\n".join(self.logs))


@contextlib.contextmanager
def running_server(
    load_catalog: Callable[[], Catalog] | Catalog,
    *,
    bundle_path: Callable[[str], Path | None] = lambda digest: None,
    cert: tuple[bytes, bytes] = (CERT, KEY),
    limits: Limits | None = None,
) -> Iterator[Running]:
    loader = load_catalog if callable(load_catalog) else (lambda: load_catalog)
    logs: list[str] = []
    ready: queue.Queue[object] = queue.Queue()
    failures: list[BaseException] = []

    async def main() -> None:
        server = SpecServer(
            load_catalog=loader,
            bundle_path=bundle_path,
            cert_pem=cert[0],
            key_pem=cert[1],
            log=logs.append,
            limits=limits,
        )
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                info = await nursery.start(
                    lambda task_status: server.serve(port=0, task_status=task_status)
                )
                ready.put((server, info, scope, trio.lowlevel.current_trio_token()))

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:
            failures.append(exc)
            ready.put(None)

    thread = threading.Thread(target=run, name="spec-server", daemon=True)
    thread.start()
    started = ready.get(timeout=30)
    if started is None:
        thread.join()
        raise failures[0]
    server, info, scope, token = started  # type: ignore[misc]
    try:
        yield Running(server, info, logs)
    finally:
        trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join(timeout=15)
        assert not thread.is_alive(), "the spec server did not stop within 15 s"
        if failures:
            raise failures[0]


def raw_request(
    info: ServerInfo,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request over a fresh TLS connection, no pin and no client-side checks: what a
    hostile or buggy client could send. Returns (status, headers lowercased, body)."""
    conn = http.client.HTTPSConnection("127.0.0.1", info.port, timeout=10, context=client_context())
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def _closing_response_complete(received: bytes) -> bool:
    """Whether `received` ends with a whole response that announced `connection: close`
    (the server then lingers, reading, until the client closes: no need to wait for it)."""
    rest = received
    while True:
        head, found, after = rest.partition(b"\r\n\r\n")
        if not found:
            return False
        lines = head.lower().split(b"\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:")),
            0,
        )
        if len(after) < length:
            return False
        if b"connection: close" in lines and len(after) == length:
            return True
        rest = after[length:]


def raw_exchange(info: ServerInfo, data: bytes, *, wait: float = 3.0) -> bytes:
    """Send raw bytes over TLS and return what comes back until the server closes the
    connection, announces it will (a whole `connection: close` response), or `wait`
    seconds of silence pass."""
    with (
        socket.create_connection(("127.0.0.1", info.port), timeout=10) as sock,
        client_context().wrap_socket(sock) as tls,
    ):
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            tls.sendall(data)  # the server may answer and close before reading it all
        tls.settimeout(wait)
        received = b""
        with contextlib.suppress(TimeoutError, ssl.SSLError, ConnectionError):
            while chunk := tls.recv(65536):
                received += chunk
                if _closing_response_complete(received):
                    break
        return received


def health_ok(info: ServerInfo) -> bool:
    status, _, _ = raw_request(info, "GET", "/health")
    return status == 200
