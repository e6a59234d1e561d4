"""HTTP/1.1 over TLS for the spec server: h11 on trio's SSL streams, bounded everywhere.

The server is reachable by whatever can route to the driver, so every resource a client can
make it hold is bounded by `Limits` (see `_limits`): connections per client address and in
total (counted from the accepted socket, before the TLS handshake; one over a cap is closed
at once), the TLS handshake, the request head, the body, the wait between kept-alive
requests, each write, and the body and head sizes. A client that runs out of time is
closed (a late head or body first gets a 408) and logged with its address and the reason;
slow clients hold nothing but their own connection, so `/health` answers meanwhile.
Malformed HTTP gets a 4xx and the connection closed; an exception in the handler gets a 500
with a generic message and one log line; nothing a client sends stops the server.

Stopping is graceful: when the serving task is cancelled the listeners close at once (the
port refuses new connections), idle connections are closed, and requests in flight get up
to `DRAIN_GRACE` seconds to finish before their connections are cut.

This module knows HTTP, not specs: `HttpsServer` turns each request into a `Request`, asks
the handler for a `Response` and writes it (streaming a file when the response names one).
"""

from __future__ import annotations

import contextlib
import errno
import http
import os
import ssl
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
import msgspec
import trio

from pveplan.executor._errors import ExecutorError
from pveplan.planner import __version__

from ._limits import Admission, Limits, Notices
from ._log import clean, request_line, timestamp

MAX_HEAD = 64 * 1024
"""Bytes of an incomplete request head h11 buffers before answering 431 (a head that
arrives whole in one read may exceed it by up to `CHUNK`)."""
MAX_QUERY_FIELDS = 32
IDLE_TIMEOUT = Limits().idle_timeout
"""The idle timeout of a server made without explicit `Limits` (read when it is made, so a
test may shorten it); a server given `Limits` uses theirs."""
DRAIN_GRACE = 5.0
LINGER = 1.0
"""Seconds a refused request's connection keeps reading (and dropping) before it closes."""
TIMEOUT_ANSWER_GRACE = 1.0
"""Seconds the 408 sent to a client that ran out of time may take to leave."""
CHUNK = 65536
_ACCEPT_PRESSURE = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_SERVER_HEADER = f"pveplan/{__version__}"


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed request. `headers` (names lowercased, repeats joined with ", ") hold the
    token and `body` may hold a report, so neither shows in the repr."""

    method: str
    path: str
    """The request target's path, still percent-encoded, without the query."""
    query: dict[str, str]
    peer: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    body: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True)
class Response:
    """What to answer. `refused` is the detailed reason of an auth refusal and `note` any
    other remark: both go to the log line only, never to the client. A `file` is streamed
    as the body (the handler checked it exists; if it vanished since, the client gets 404)."""

    status: int
    body: bytes = field(default=b"", repr=False)
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    file: Path | None = None
    refused: str | None = None
    note: str | None = None


def json_response(status: int, payload: Any, **kwargs: Any) -> Response:
    return Response(status, msgspec.json.encode(payload), **kwargs)


def error_response(status: int, message: str, **kwargs: Any) -> Response:
    """`{"error": message}` with `status`; `message` goes to the client: keep it generic."""
    return json_response(status, {"error": message}, **kwargs)


Handler = Callable[[Request], Response]


class _Malformed(ExecutorError):
    """The client sent something that is not an acceptable request: answer and close."""

    def __init__(self, response: Response, head: h11.Request | None = None) -> None:
        super().__init__(response.status)
        self.response = response
        self.head = head


@dataclass(slots=True)
class _Connection:
    scope: trio.CancelScope
    busy: bool = False


def _peer(stream: trio.SocketStream) -> str:
    try:
        address = stream.socket.getpeername()
    except OSError:
        return "?"
    return str(address[0]) if isinstance(address, tuple) else str(address)


def _path_of(head: h11.Request) -> str:
    """The request target without its query (which a confused client may put a token in)."""
    return head.target.decode("latin-1").partition("?")[0]


def _decode_head(head: h11.Request, peer: str, body: bytes) -> Request:
    target = head.target.decode("latin-1")
    if not target.startswith("/"):
        raise _Malformed(error_response(400, "malformed request target"), head)
    path, _, query_text = target.partition("?")
    try:
        query = dict(
            urllib.parse.parse_qsl(
                query_text, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS
            )
        )
    except ValueError:
        raise _Malformed(error_response(400, "malformed query string"), head) from None
    headers: dict[str, str] = {}
    for name, value in head.headers:
        key, text = name.decode("latin-1"), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return Request(
        method=head.method.decode("latin-1"),
        path=path,
        query=query,
        peer=peer,
        headers=headers,
        body=body,
    )


async def _linger(tls: trio.SSLStream, limit: int) -> None:
    """Read and drop what the client still sends (up to `limit` bytes), briefly, before
    closing on it: closing a socket with unread data makes the kernel reset the connection,
    and a reset can destroy the error response before the client has read it."""
    with trio.move_on_after(LINGER):
        received = 0
        while received < limit:
            data = await tls.receive_some(CHUNK)
            if not data:
                return
            received += len(data)


def _encode(conn: h11.Connection, event: h11.Response | h11.Data | h11.EndOfMessage) -> bytes:
    return conn.send(event) or b""


class _TooSlow(ExecutorError):
    """The client did not send, or did not read, in time: `reason` is for the log (what was
    late and the limit; at most the method and path, never a header, query or body); with
    `answer`, the client gets a 408 before the close."""

    def __init__(self, reason: str, *, answer: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.answer = answer


_TIMEOUT_BODY = msgspec.json.encode({"error": "request timeout"})
_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    + f"content-length: {len(_TIMEOUT_BODY)}\r\n".encode()
    + b"cache-control: no-store\r\nconnection: close\r\n\r\n"
    + _TIMEOUT_BODY
)
"""Written raw, past h11: the request it answers may be half a head, which h11 cannot
answer, and the connection closes right after."""


class HttpsServer:
    """Serves `handler` over HTTPS on given listeners until cancelled, then drains.

    `limits` bound what clients may hold (default: `Limits()` with `IDLE_TIMEOUT`); every
    connection's slot is taken when it is accepted and given back when it is closed.
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        handler: Handler,
        log: Callable[[str], None],
        *,
        limits: Limits | None = None,
        drain_grace: float | None = None,
    ) -> None:
        self._ssl = ssl_context
        self._handler = handler
        self._log = log
        self._limits = limits if limits is not None else Limits(idle_timeout=IDLE_TIMEOUT)
        self._admission = Admission(self._limits)
        self._notices = Notices(log)
        self._drain_grace = DRAIN_GRACE if drain_grace is None else drain_grace
        self._live: list[_Connection] = []
        self._closing = False

    async def serve(self, listeners: Sequence[trio.SocketListener]) -> None:
        """Accept on every listener until cancelled; then close the listeners, end idle
        connections and give busy ones `drain_grace` seconds."""
        async with trio.open_nursery() as connections:
            try:
                async with trio.open_nursery() as acceptors:
                    for listener in listeners:
                        acceptors.start_soon(self._accept_loop, listener, connections)
            finally:
                for listener in listeners:
                    listener.socket.close()  # at once: new connections are refused
                self._drain()

    def _drain(self) -> None:
        self._closing = True
        deadline = trio.current_time() + self._drain_grace
        for connection in self._live:
            if connection.busy:
                connection.scope.deadline = min(connection.scope.deadline, deadline)
            else:
                connection.scope.cancel()

    async def _accept_loop(self, listener: trio.SocketListener, connections: trio.Nursery) -> None:
        """Accept, count, and hand each connection to its own task; one over a cap is closed
        here, before its TLS handshake (the costly part), and logged."""
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in _ACCEPT_PRESSURE:
                    raise
                self._log(f"{timestamp()} cannot accept a connection: {os.strerror(exc.errno)}")
                await trio.sleep(0.1)
                continue
            peer = _peer(stream)
            refusal = self._admission.admit(peer)
            if refusal is not None:
                stream.socket.close()
                self._notices.refused(peer, refusal)
                continue
            try:
                connections.start_soon(self._connection, stream, peer)
            except BaseException:
                self._admission.release(peer)
                stream.socket.close()
                raise

    async def _connection(self, stream: trio.SocketStream, peer: str) -> None:
        """One admitted client connection: handshake, then requests until either side closes
        or a limit ends it. Shielded from the server's cancellation: `_drain` decides when
        it ends. Gives its slot back however it ends."""
        limits = self._limits
        connection = _Connection(scope=trio.CancelScope(shield=True))
        self._live.append(connection)
        if self._closing:  # accepted just before the drain began: do not start it
            connection.scope.cancel()
        tls = trio.SSLStream(stream, self._ssl, server_side=True, https_compatible=True)
        try:
            with connection.scope:
                try:
                    with trio.move_on_after(limits.handshake_timeout) as handshake:
                        await tls.do_handshake()
                    if handshake.cancelled_caught:
                        raise _TooSlow(
                            f"TLS handshake not complete within {limits.handshake_timeout:g} s",
                            answer=False,
                        )
                    await self._exchange(tls, peer, connection)
                except _TooSlow as slow:
                    self._notices.closed(peer, slow.reason)
                    if slow.answer:
                        with (
                            trio.move_on_after(TIMEOUT_ANSWER_GRACE),
                            contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
                        ):
                            await tls.send_all(_TIMEOUT_ANSWER)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                except Exception as exc:
                    self._log(f"{timestamp()} {peer} connection failed: {type(exc).__name__}")
                finally:
                    with trio.move_on_after(1.0):
                        await tls.aclose()
        finally:
            await trio.aclose_forcefully(stream)
            self._live.remove(connection)
            self._admission.release(peer)

    async def _exchange(self, tls: trio.SSLStream, peer: str, connection: _Connection) -> None:
        """Read a request, answer it, repeat while the connection is kept alive."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        first = True
        while not self._closing:
            started = time.monotonic()
            head: h11.Request | None = None
            head_only = False
            try:
                request = await self._read_request(conn, tls, peer, first=first)
                first = False
                if request is None:
                    return
                connection.busy = True
                started = time.monotonic()
                response = self._respond(request)
                method, path = request.method, request.path
                head_only = method == "HEAD"
            except _Malformed as malformed:
                response, head = malformed.response, malformed.head
                method = head.method.decode("latin-1") if head else "-"
                head_only = method == "HEAD"
                path = _path_of(head) if head else "-"
                connection.busy = True
                request = None
            sent = await self._send(conn, tls, response, head_only=head_only)
            self._log(
                request_line(
                    peer=peer,
                    method=method,
                    path=path,
                    status=sent.status,
                    elapsed=time.monotonic() - started,
                    refused=sent.refused,
                    note=sent.note,
                )
            )
            connection.busy = False
            if request is None:  # the client may still be sending what we refused
                await _linger(tls, 2 * self._limits.max_body)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()

    async def _read_request(
        self, conn: h11.Connection, tls: trio.SSLStream, peer: str, *, first: bool
    ) -> Request | None:
        """The next whole request, or None when the client closed, or stayed silent for
        `idle_timeout` between requests. The head is due within `header_timeout` of its
        first byte (of the handshake, for a connection's first request), the whole body
        within `body_timeout` of the head; either one late is a `_TooSlow`."""
        limits = self._limits
        head: h11.Request | None = None
        body = bytearray()
        waiting = not first and not conn.trailing_data[0]
        timeout = limits.idle_timeout if waiting else limits.header_timeout
        with trio.CancelScope(deadline=trio.current_time() + timeout) as deadline:
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as exc:
                    status = exc.error_status_hint if 400 <= exc.error_status_hint < 500 else 400
                    # h11's message quotes the offending line, which may hold a token: unused.
                    raise _Malformed(
                        error_response(status, "malformed HTTP request"), head
                    ) from None
                if event is h11.NEED_DATA:
                    if conn.they_are_waiting_for_100_continue:
                        await tls.send_all(
                            conn.send(h11.InformationalResponse(status_code=100, headers=[]))
                        )
                    data = await tls.receive_some(CHUNK)
                    if waiting and data:  # a request begins: its head is due
                        waiting = False
                        deadline.deadline = trio.current_time() + limits.header_timeout
                    conn.receive_data(data)
                elif isinstance(event, h11.Request):
                    head = event
                    deadline.deadline = trio.current_time() + limits.body_timeout
                    length = dict(event.headers).get(b"content-length")
                    if length is not None and int(length) > limits.max_body:
                        raise _Malformed(error_response(413, "request too large"), head)
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > limits.max_body:
                        raise _Malformed(error_response(413, "request too large"), head)
                elif isinstance(event, h11.EndOfMessage):
                    assert head is not None
                    return _decode_head(head, peer, bytes(body))
                elif isinstance(event, h11.ConnectionClosed):
                    return None
                else:  # PAUSED cannot happen before we answer; anything else is unexpected
                    raise _Malformed(error_response(400, "malformed HTTP request"), head)
        # Only a passed deadline leaves the loop this way.
        if waiting:
            return None
        if head is None:
            raise _TooSlow(
                f"request head not complete within {limits.header_timeout:g} s", answer=True
            )
        what = f"{clean(head.method.decode('latin-1'), 16)} {clean(_path_of(head))}"
        raise _TooSlow(
            f"request body of {what} not complete within {limits.body_timeout:g} s", answer=True
        )

    def _respond(self, request: Request) -> Response:
        try:
            return self._handler(request)
        except Exception as exc:
            # The exception's text may quote data (a document, a token): log its type only.
            frame = exc.__traceback__
            while frame is not None and frame.tb_next is not None:
                frame = frame.tb_next
            where = (
                f" at {Path(frame.tb_frame.f_code.co_filename).name}:{frame.tb_lineno}"
                if frame is not None
                else ""
            )
            return error_response(
                500, "internal error", note=f"internal error: {type(exc).__name__}{where}"
            )

    async def _send(
        self,
        conn: h11.Connection,
        tls: trio.SSLStream,
        response: Response,
        *,
        head_only: bool = False,
    ) -> Response:
        """Write `response` (streaming its file, if any; only the head for a HEAD request,
        which h11 frames without a body); returns what was actually sent (a file that
        vanished becomes a 404)."""
        file = None
        size = len(response.body)
        if response.file is not None:
            try:
                file = await trio.open_file(response.file, "rb")
                size = os.fstat(file.fileno()).st_size
            except OSError:
                response = error_response(404, "no such bundle", note="bundle file vanished")
                size = len(response.body)
        try:
            headers = [
                ("content-type", response.content_type),
                ("content-length", str(size)),
                ("cache-control", "no-store"),
                ("server", _SERVER_HEADER),
                *response.headers,
            ]
            if self._closing or response.status in (400, 413, 431):
                headers.append(("connection", "close"))
            reason = http.HTTPStatus(response.status).phrase.encode()
            head = _encode(
                conn, h11.Response(status_code=response.status, headers=headers, reason=reason)
            )
            if head_only:
                await self._write(tls, head + _encode(conn, h11.EndOfMessage()))
            elif file is None:
                # One write, so one TLS record and one segment for the usual small answer.
                body = _encode(conn, h11.Data(data=response.body)) if response.body else b""
                await self._write(tls, head + body + _encode(conn, h11.EndOfMessage()))
            else:
                pending = head
                while chunk := await file.read(CHUNK):
                    await self._write(tls, pending + _encode(conn, h11.Data(data=chunk)))
                    pending = b""
                await self._write(tls, pending + _encode(conn, h11.EndOfMessage()))
        finally:
            if file is not None:
                with trio.CancelScope(shield=True):
                    await file.aclose()
        return response

    async def _write(self, tls: trio.SSLStream, data: bytes) -> None:
        if not data:
            return
        with trio.move_on_after(self._limits.send_timeout) as scope:
            await tls.send_all(data)
        if scope.cancelled_caught:
            raise _TooSlow(
                f"response not read within {self._limits.send_timeout:g} s", answer=False
            )
