"""A real HTTPS server on 127.0.0.1 that answers like PVE's API, for the HTTPS transport.

The far end is the one thing tests may stand in for: a real TLS server (a self-signed
certificate made with cryptography, each server its own), real HTTP, PVE-shaped JSON. It
records every request it got (method, path, decoded parameters, headers) so tests can hold
them to PVE's schema, and answers with what `answer(method, path, params)` says:
(status, reason, body). Started and stopped by `serve_pve` (a context manager): the thread
and the socket are gone when it exits, also when the test failed.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pveplan.executor.pull import fingerprint, generate_certificate, server_context

Answer = tuple[int, str, Any]
"""(HTTP status, reason phrase, JSON body or None for an empty body)."""


@dataclass
class Seen:
    method: str
    path: str  # percent-encoded, as sent, without /api2/json
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class PveServer:
    url: str
    fingerprint: str
    seen: list[Seen] = field(default_factory=list)
    handshakes_failed: int = 0


def ok(data: Any) -> Answer:
    return 200, "OK", {"data": data}


def default_answer(method: str, path: str, params: dict[str, str]) -> Answer:
    if path == "/version":
        return ok({"version": "9.1.9", "release": "9.1", "repoid": "0123abcd"})
    return ok(None)


def serve_pve(
    answer: Callable[[str, str, dict[str, str]], Answer] = default_answer,
) -> contextlib.AbstractContextManager[PveServer]:
    return _serve(answer)


@contextlib.contextmanager
def _serve(answer: Callable[[str, str, dict[str, str]], Answer]) -> Iterator[PveServer]:
    cert_pem, key_pem = generate_certificate("pve-test", hosts=("127.0.0.1", "localhost"))
    context = server_context(cert_pem, key_pem)
    state = PveServer(url="", fingerprint=fingerprint(cert_pem))

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            params = dict(parse_qsl(parts.query, keep_blank_values=True))
            if body:
                params.update(parse_qsl(body.decode(), keep_blank_values=True))
            path = parts.path.removeprefix("/api2/json")
            state.seen.append(
                Seen(self.command, path, params, {k: v for k, v in self.headers.items()}, body)
            )
            status, reason, data = answer(self.command, path, params)
            payload = b"" if data is None else json.dumps(data).encode()
            self.send_response(status, reason)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that gave up (a timeout test) is no error of the server's

        def get_request(self) -> tuple[Any, Any]:
            sock, addr = self.socket.accept()
            try:
                return context.wrap_socket(sock, server_side=True), addr
            except OSError:
                state.handshakes_failed += 1
                sock.close()
                raise

    server = Server(("127.0.0.1", 0), Handler)
    state.url = f"https://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
