"""The simulated hosts' HTTPS API servers: pveproxy's port on each host's loopback address.

Runs inside the SSH daemon's event loop (`_daemon.Daemon` owns one `ApiServers` and calls
`reconcile` whenever it reconciles its SSH listeners), so the API and `pvesh` share one
process, one state and one set of tasks. Every PVE host node whose host chain runs
(`host_chain_running`: a top-level host always, a nested one while its VM and the hosts
above it run) listens on its address, with its own certificate (`_certs`). The port is
config.json's `api_port` (default 8006, PVE's); if it is taken on the first address, an
ephemeral port is chosen there, and every host then uses that one (`daemon.json` says which).

HTTP/1.1 with keep-alive over TLS, parsed by h11; each request is answered by
`_rest.dispatch` in a worker thread (the handlers take file locks and may run for seconds).
Bounded everywhere: request head (`MAX_HEAD`), body (`MAX_BODY`, PVE's 512 KiB), open
connections per host (`MAX_CONNECTIONS`), requests at work at once (`MAX_INFLIGHT`), and an
idle connection's life (`IDLE`). Closing a listener drops its connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import h11

from pveplan.sim._certs import ensure_certificate
from pveplan.sim._rest import Answer, dispatch
from pveplan.sim._runcmd import reap_runners
from pveplan.sim._state import SimRoot, host_chain_running

LOG = logging.getLogger("pveplan.sim.https")

DEFAULT_PORT = 8006
MAX_HEAD = 16 * 1024
MAX_BODY = 512 * 1024
MAX_CONNECTIONS = 64
MAX_INFLIGHT = 8
IDLE = 30.0
"""Seconds a connection may sit without a complete request before it is closed."""
GRACE = 2.0
SERVER = b"pve-api-daemon/3.0"


@dataclass
class ApiListener:
    """One host's server socket and its open connections (the shape `Lifetime` reads)."""

    node: str
    address: str
    fingerprint: str
    server: asyncio.Server | None = None
    connections: set[asyncio.StreamWriter] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    sessions: frozenset[Any] = frozenset()
    last_seen: float = 0.0

    async def aclose(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in list(self.connections):
            writer.close()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=GRACE)
        if self.server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), GRACE)


def _response(conn: h11.Connection, answer: Answer) -> bytes:
    body = answer.encode()
    headers = [
        ("Server", SERVER),
        ("Content-Length", str(len(body)).encode()),
        ("Cache-Control", b"max-age=0"),
        ("Pragma", b"no-cache"),
    ]
    if answer.body is not None:
        headers.append(("Content-Type", b"application/json;charset=UTF-8"))
    reason = answer.reason.encode("utf-8", "replace")[:200]
    out = conn.send(h11.Response(status_code=answer.status, headers=headers, reason=reason))
    return (
        (out or b"")
        + (conn.send(h11.Data(data=body)) or b"")
        + (conn.send(h11.EndOfMessage()) or b"")
    )


TOO_LARGE = Answer(413, "request too large", {"data": None})


def _declared_length(head: h11.Request) -> int:
    for name, value in head.headers:
        if name.lower() == b"content-length":
            return int(value)  # h11 has checked it is a number
    return 0


class ApiServers:
    """The HTTPS listeners of one simulator root, kept in step with its state."""

    def __init__(self, root: SimRoot, port: int = DEFAULT_PORT) -> None:
        self.root = root
        self.wanted_port = port
        self.port = 0
        self.listeners: dict[str, ApiListener] = {}
        self._inflight = asyncio.Semaphore(MAX_INFLIGHT)

    def info(self) -> dict[str, dict[str, str]]:
        """daemon.json's `api`: node -> {url, fingerprint} of every host listening."""
        return {
            listener.node: {
                "url": f"https://{listener.address}:{self.port}",
                "fingerprint": listener.fingerprint,
            }
            for listener in self.listeners.values()
        }

    def _desired(self, state: dict[str, Any]) -> dict[str, tuple[str, str]]:
        """address -> (node, address) of every host that should serve its API."""
        wanted = {}
        for node, info in sorted(state.get("nodes", {}).items()):
            address = info.get("address")
            if address and host_chain_running(state, node):
                wanted[address] = (node, address)
        return wanted

    async def _listen(self, node: str, address: str) -> ApiListener:
        tree = self.root.host_dir(node)
        cert, key, fingerprint = await asyncio.to_thread(ensure_certificate, tree, node, address)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        listener = ApiListener(node, address, fingerprint)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            listener.tasks.add(task)
            try:
                await self._connection(listener, reader, writer)
            except asyncio.CancelledError:
                # Only `aclose` cancels a connection: it is being dropped. Ending normally
                # keeps asyncio's stream callback from logging the cancelled handler.
                pass
            finally:
                listener.tasks.discard(task)

        ports = [self.port] if self.port else [self.wanted_port, 0]
        for index, port in enumerate(ports):
            try:
                listener.server = await asyncio.start_server(
                    serve, address, port, ssl=context, reuse_address=True, backlog=64
                )
                break
            except OSError as exc:
                if index == len(ports) - 1:
                    raise
                LOG.warning("API port %d taken on %s (%s): choosing another", port, address, exc)
        if not self.port:
            self.port = int(listener.server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        return listener

    async def reconcile(self, state: dict[str, Any]) -> None:
        """Close the listeners of hosts gone or down, open those of hosts that came up
        (and reap the runcmd runners that requests started and that have exited)."""
        reap_runners()
        desired = self._desired(state)
        for address in list(self.listeners):
            listener = self.listeners[address]
            if desired.get(address) != (listener.node, listener.address):
                LOG.info("API: closing %s", address)
                await self.listeners.pop(address).aclose()
        for address, (node, _) in desired.items():
            if address in self.listeners:
                continue
            try:
                self.listeners[address] = await self._listen(node, address)
                LOG.info("API of %s on https://%s:%d", node, address, self.port)
            except (OSError, ValueError, ssl.SSLError) as exc:
                LOG.warning("API of %s: cannot listen on %s: %s", node, address, exc)

    async def aclose(self) -> None:
        listeners = list(self.listeners.values())
        self.listeners.clear()
        await asyncio.gather(*(listener.aclose() for listener in listeners))

    # --- one connection ------------------------------------------------------------------

    async def _connection(
        self, listener: ApiListener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        listener.last_seen = time.monotonic()
        if len(listener.connections) >= MAX_CONNECTIONS:
            writer.close()
            return
        listener.connections.add(writer)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        try:
            while True:
                answer = await asyncio.wait_for(self._request(listener, conn, reader), IDLE)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                listener.last_seen = time.monotonic()
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break
                conn.start_next_cycle()
        except (TimeoutError, ConnectionError, ssl.SSLError, h11.ProtocolError, OSError):
            pass
        finally:
            listener.connections.discard(writer)
            listener.last_seen = time.monotonic()
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), GRACE)

    async def _request(
        self, listener: ApiListener, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> bytes | None:
        """Read one request and answer it: the response's bytes, or None at the end."""
        head: h11.Request | None = None
        body = bytearray()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
                    return None
                return _response(conn, Answer(status, "bad request", {"data": None}))
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                if not data:
                    return None
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                head = event
                if _declared_length(event) > MAX_BODY:  # answered before the body comes
                    return _response(conn, TOO_LARGE)
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    return _response(conn, TOO_LARGE)
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                break
            else:
                return None
        headers = {name.decode().lower(): value.decode("latin-1") for name, value in head.headers}
        async with self._inflight:
            answer = await asyncio.to_thread(
                dispatch,
                self.root,
                listener.node,
                head.method.decode(),
                head.target.decode("latin-1"),
                headers,
                bytes(body),
            )
        return _response(conn, answer)
