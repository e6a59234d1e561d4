"""PVE's API failures as one clear `PveError`, for `HttpsTransport`.

pve-api.md §0 and §12: an error's HTTP reason phrase is the first line of PVE's message;
the body is `{"data": null, "message": "...\\n", "errors": {param: msg}}` (`message` only
from libpve-http-server-perl 5.2 on, `errors` only for parameter errors). So:

- 400: each parameter named with PVE's complaint about it;
- 401: the token was refused (wrong, expired, or removed): named by its id and secret name;
- 403: the privilege PVE found missing, and on which path, when PVE says it;
- 500: PVE's text as it is (callers match "already exists", "does not exist"); a lock
  timeout ("can't lock file ... got timeout") says another operation holds the guest;
- 595/596 (pveproxy could not reach the node it proxies to), a refused connection, no
  answer in time, or a name that does not resolve: "cannot reach ENDPOINT (from nodes/X)".
- A pinned certificate that is not the one presented, or a certificate no CA vouches
  for: refused, with both fingerprints and how to update the pin.

Messages never hold the token: only its id (`root@pam!pveplan`) and its secret's name.
"""

from __future__ import annotations

import re
import socket
import ssl
from typing import TYPE_CHECKING

import trio

from .._lazy import LazyModule
from ._tls import PinMismatch
from ._transport import PveError

if TYPE_CHECKING:
    import httpx

    from ._https import HttpsTransport
    from ._requests import PveRequest

else:
    httpx = LazyModule("httpx")  # imported with the first API call's failure

PERMISSION = re.compile(r"Permission check failed \((?P<path>/[^,)]*), (?P<priv>[A-Za-z.]+)\)")
LOCK_TIMEOUT = re.compile(r"can't lock file '(?P<file>[^']+)' - got timeout")
MAX_TEXT = 600


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return seen


def connection_error(
    transport: HttpsTransport, request: PveRequest, exc: BaseException, timeout: float
) -> PveError:
    """The request could not be carried: why, naming the endpoint and its node file."""
    chain = _chain(exc)
    for inner in chain:
        if isinstance(inner, PinMismatch):
            where = transport.source or "the node file"
            return PveError(
                f"refusing {transport.endpoint}: its certificate has SHA-256 fingerprint"
                f" {inner.presented}, but {where} pins api_fingerprint {inner.pinned};"
                " nothing was sent (the token included). If the host's certificate was"
                " renewed, check the new fingerprint out of band (on the host:"
                " `pvenode cert info`, or the web UI's node > System > Certificates) and"
                f" put it in {where} as api_fingerprint"
            )
    for inner in chain:
        if isinstance(inner, ssl.SSLCertVerificationError):
            reason = inner.verify_message or inner.reason or "not trusted"
            return PveError(
                f"refusing {transport.where}: its certificate does not verify ({reason});"
                " nothing was sent. PVE's own certificate is self-signed: pin it with"
                ' `api_fingerprint: "AB:CD:..."` in the node file (the SHA-256 fingerprint'
                " `pvenode cert info` prints), or give the host a certificate a CA signs"
            )
    if isinstance(exc, trio.TooSlowError) or any(
        isinstance(e, httpx.TimeoutException | TimeoutError) for e in chain
    ):
        if isinstance(exc, httpx.ConnectTimeout):
            return PveError(f"cannot reach {transport.where}: no connection within {timeout:g} s")
        return PveError(f"{request}: no answer from {transport.where} within {timeout:g} s")
    cause = "the connection failed"
    for inner in chain:
        if isinstance(inner, socket.gaierror):
            cause = "its host name does not resolve"
            break
        if isinstance(inner, ConnectionRefusedError):
            cause = "connection refused"
            break
        if isinstance(inner, ssl.SSLError):
            cause = f"TLS failed ({inner.reason or type(inner).__name__})"
            break
    else:
        if isinstance(exc, httpx.RemoteProtocolError):
            cause = "the server closed the connection without answering"
        elif isinstance(exc, OSError) and exc.strerror:
            cause = exc.strerror
    return PveError(f"cannot reach {transport.where}: {cause}")


def _body(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _text(value: object) -> str:
    return " ".join(str(value).split())[:MAX_TEXT]


def status_error(
    transport: HttpsTransport, request: PveRequest, response: httpx.Response
) -> PveError:
    """PVE refused the request (a non-2xx answer): one message in PVE's words."""
    status = response.status_code
    body = _body(response)
    reason = _text(response.reason_phrase or "")
    message = _text(body.get("message") or "") or reason
    head = f"{request}: {status}"
    if status == 400:
        errors = body.get("errors")
        if isinstance(errors, dict) and errors:
            listed = "; ".join(f"{name}: {_text(text)}" for name, text in sorted(errors.items()))
            return PveError(f"{head} {reason or 'Parameter verification failed.'} {listed}")
        return PveError(f"{head} {message}")
    if status == 401:
        token = transport.token_id or "the token"
        return PveError(
            f"{head} PVE refused API token {token} ({transport.token_name} in secrets.yaml)"
            f" at {transport.where}: {message or 'authentication failure'}; check that the"
            " token exists (`pveum user token list USER`), has not expired, and that the"
            " secret holds USER@REALM!TOKENID=SECRET"
        )
    if status == 403:
        token = transport.token_id or "the token"
        found = PERMISSION.search(message)
        if found:
            return PveError(
                f"{head} {message}: API token {token} lacks privilege {found['priv']}"
                f" on {found['path']} (grant it with `pveum acl modify {found['path']}"
                f" --tokens {token} --roles ROLE`; see docs/transports.md)"
            )
        return PveError(f"{head} {message or 'Permission check failed'} (API token {token})")
    if status in (595, 596):
        return PveError(f"cannot reach {transport.where}: {status} {message}")
    found = LOCK_TIMEOUT.search(message)
    if found:
        return PveError(
            f"{head} {message} (another operation holds the lock {found['file']}; it is"
            " released when that operation ends: try again then)"
        )
    return PveError(f"{head} {message or 'HTTP error'}")
