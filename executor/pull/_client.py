"""The node's HTTPS client for the spec server: stdlib only, the certificate pinned.

A pull-mode node talks to one server, the driver, whose self-signed certificate it knows by
fingerprint (see `_tls`). `PullClient` checks that fingerprint right after the TLS
handshake, before the request (and so the token) is written: a server presenting any other
certificate gets nothing but a handshake. One connection is kept alive across calls and
re-opened once when the server has dropped it (an idle timeout), pin check included.

Plain blocking code, no global state: nodes call it directly; trio code calls it through
`trio.to_thread.run_sync`, one client per thread. Every failure is a `PullError` whose text
is one line for the user, naming the URL and the cause; it never holds the token.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import os
import re
import socket
import ssl
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec

from pveplan.executor._errors import ExecutorError
from pveplan.planner import __version__

from ._tls import client_context, fingerprint, normalize_fingerprint

MAX_JSON = 64 * 1024 * 1024
"""Bytes of a JSON answer the client accepts (specs are kilobytes; this bounds a bad server)."""
MAX_ERROR_BODY = 64 * 1024
CHUNK = 65536
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class PullError(ExecutorError):
    """Talking to the spec server failed; `str(error)` is the message for the user."""


class PinMismatch(PullError):
    """The server presented another certificate than the pinned one; nothing was sent."""


class HttpStatusError(PullError):
    """The server answered with an error status; `error` is its `{"error": ...}` text."""

    def __init__(self, message: str, *, status: int, error: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


class _PinnedConnection(http.client.HTTPSConnection):
    """An HTTPS connection that refuses, right after the handshake, any server whose
    certificate is not the pinned one. http.client opens the connection (here) before it
    writes the request, so nothing of the request leaves on a refused connection."""

    def __init__(
        self, host: str, port: int, *, timeout: float, pin: str, url: str, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._pin = pin
        self._url = url

    def connect(self) -> None:
        super().connect()
        assert isinstance(self.sock, ssl.SSLSocket)
        der = self.sock.getpeercert(binary_form=True)
        presented = fingerprint(der) if der else "no certificate"
        if not hmac.compare_digest(presented.encode(), self._pin.encode()):
            self.close()
            raise PinMismatch(
                f"the server at {self._url} presented certificate {presented} but this node"
                f" is pinned to {self._pin}; refusing to send the token"
            )


def _cause(exc: BaseException, timeout: float) -> str:
    """A short, traceback-free description of a transport failure."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, socket.gaierror):
        return "cannot resolve the host name"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or type(exc).__name__})"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(exc, http.client.IncompleteRead):
        return "the answer was cut short"
    if isinstance(exc, http.client.HTTPException):
        return f"unreadable HTTP answer ({type(exc).__name__})"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__


def _read_limited(response: http.client.HTTPResponse, limit: int) -> bytes | None:
    """The whole body, or None (the rest unread) when it is longer than `limit` bytes."""
    if response.length is not None:
        return response.read() if response.length <= limit else None
    chunks: list[bytes] = []
    total = 0
    while chunk := response.read(CHUNK):
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class PullClient:
    """A keep-alive HTTPS connection to the spec server at `url`, pinned to `fingerprint`.

    `url` is the server's base ("https://192.0.2.1:44443"); `token` (if any) is sent as
    `Authorization: Bearer ...` on every request. Not thread-safe: one client per thread.
    """

    def __init__(
        self,
        url: str,
        fingerprint: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme.lower() != "https":
            shown = f"{parts.scheme}://" if parts.scheme else "no scheme"
            raise PullError(
                f"the spec server URL must be https:// (the token is only ever sent over a"
                f" pinned TLS connection), not {shown}"
            )
        try:
            port = parts.port or 443
        except ValueError:
            raise PullError("the spec server URL has an invalid port") from None
        if not parts.hostname:
            raise PullError("the spec server URL has no host")
        if parts.username is not None or parts.query or parts.fragment:
            raise PullError("the spec server URL must be only https://HOST[:PORT][/PATH]")
        try:
            self._pin = normalize_fingerprint(fingerprint)
        except ValueError as exc:
            raise PullError(f"the pinned certificate fingerprint is invalid: {exc}") from None
        if token is not None and not _TOKEN_CHARS.fullmatch(token):
            raise PullError("the token is empty or has characters an HTTP header cannot carry")
        host = parts.hostname
        shown_host = f"[{host}]" if ":" in host else host
        self.url = f"https://{shown_host}:{port}"
        self._prefix = parts.path.rstrip("/")
        self._host, self._port = host, port
        self._token = token
        self._timeout = timeout
        self._conn: _PinnedConnection | None = None
        self._context = client_context()  # per client, reused across its reconnects

    def __repr__(self) -> str:
        return f"PullClient({self.url!r}, pinned={self._pin[:11]}...)"

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Close the kept-alive connection (the next call opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> PullClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- requests ----------------------------------------------------------------------

    def get_json(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        """GET `path` (with `query`) and decode the JSON answer."""
        body, _ = self.get_bytes(path, query)
        return self._json(body, "GET", path)

    def get_bytes(
        self, path: str, query: Mapping[str, str] | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """GET `path` and return the raw body and the headers (names lowercased): for a
        spec, whose hash comes in `x-pveplan-spec-hash`."""
        response = self._request("GET", path, query, None)
        body = self._read_all(response, "GET", path)
        return body, {name.lower(): value for name, value in response.getheaders()}

    def post_json(self, path: str, body: Any) -> Any:
        """POST `body` (encoded as JSON; msgspec Structs included) to `path`, decode the
        JSON answer."""
        response = self._request("POST", path, None, msgspec.json.encode(body))
        return self._json(self._read_all(response, "POST", path), "POST", path)

    def download(self, path: str, dest: Path, *, sha256: str | None = None) -> None:
        """Stream `path` into `dest`: written to `dest.part`, checked against `sha256`
        (when given), then renamed, so `dest` is whole and right or absent."""
        dest = Path(dest)
        expected = sha256.lower() if sha256 is not None else None
        if expected is not None and not _SHA256.fullmatch(expected):
            raise PullError(f"cannot download {path}: the expected SHA-256 is not 64 hex digits")
        partial = dest.with_name(dest.name + ".part")
        response = self._request("GET", path, None, None)
        digest = hashlib.sha256()
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as file:
                while chunk := response.read(CHUNK):
                    digest.update(chunk)
                    file.write(chunk)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            with contextlib.suppress(OSError):
                partial.unlink()
            if isinstance(exc, OSError) and exc.filename is not None:
                raise PullError(f"cannot write {partial}: {exc.strerror}") from None
            raise self._failure("GET", path, exc) from None
        if expected is not None and digest.hexdigest() != expected:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise PullError(
                f"the file from {self.url}{path} has SHA-256 {digest.hexdigest()},"
                f" not the expected {expected}; discarded"
            )
        os.replace(partial, dest)

    # -- internals ---------------------------------------------------------------------

    def _target(self, path: str, query: Mapping[str, str] | None) -> str:
        if not path.startswith("/"):
            path = "/" + path
        target = self._prefix + urllib.parse.quote(path, safe="/%:@!$&'()*+,;=-._~")
        if query:
            target += "?" + urllib.parse.urlencode(dict(query))
        return target

    def _headers(self, body: bytes | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": f"pveplan/{__version__}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _failure(self, method: str, path: str, exc: BaseException) -> PullError:
        return PullError(f"cannot {method} {self.url}{path}: {_cause(exc, self._timeout)}")

    def _request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None,
        body: bytes | None,
    ) -> http.client.HTTPResponse:
        """Send one request and return its response (status checked). A kept-alive
        connection the server has dropped is re-opened once; a fresh one is not retried."""
        target = self._target(path, query)
        for attempt in range(2):
            if self._conn is None:
                self._conn = _PinnedConnection(
                    self._host,
                    self._port,
                    timeout=self._timeout,
                    pin=self._pin,
                    url=self.url,
                    context=self._context,
                )
            reused = self._conn.sock is not None
            try:
                self._conn.request(method, target, body=body, headers=self._headers(body))
                response = self._conn.getresponse()
            except PullError:
                self.close()
                raise
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if reused and attempt == 0 and not isinstance(exc, TimeoutError):
                    continue
                raise self._failure(method, path, exc) from None
            if response.status >= 400:
                raise self._status_error(response, method, path)
            return response
        raise AssertionError("unreachable")

    def _status_error(
        self, response: http.client.HTTPResponse, method: str, path: str
    ) -> HttpStatusError:
        try:
            raw = _read_limited(response, MAX_ERROR_BODY) or b""
        except (OSError, http.client.HTTPException):
            raw = b""
        if not response.isclosed():
            self.close()
        error: str | None = None
        with contextlib.suppress(msgspec.DecodeError):
            decoded = msgspec.json.decode(raw)
            if isinstance(decoded, dict) and isinstance(decoded.get("error"), str):
                error = decoded["error"]
        said = error if error is not None else (response.reason or "no reason given")
        return HttpStatusError(
            f"the spec server at {self.url} answered {method} {path} with"
            f" {response.status}: {said}",
            status=response.status,
            error=error,
        )

    def _read_all(self, response: http.client.HTTPResponse, method: str, path: str) -> bytes:
        try:
            body = _read_limited(response, MAX_JSON)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise self._failure(method, path, exc) from None
        if body is None:
            self.close()
            raise PullError(
                f"the answer to {method} {self.url}{path} is larger than {MAX_JSON} bytes"
            )
        if not response.isclosed():  # cannot happen with a length; be safe for the next call
            self.close()
        return body

    def _json(self, body: bytes, method: str, path: str) -> Any:
        try:
            return msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise PullError(f"the answer to {method} {self.url}{path} is not JSON") from None


def published_specs(url: str, fingerprint: str, *, timeout: float = 3.0) -> set[str] | None:
    """The node names a running spec server at `url` publishes, if it answers with the
    certificate `fingerprint` pins (else None: gone, another server, or not a spec server)."""
    try:
        with PullClient(url, fingerprint, timeout=timeout) as client:
            return set(client.get_json("/specs")["specs"])
    except (PullError, KeyError, TypeError):
        return None
