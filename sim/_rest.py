"""One HTTPS API request of a simulated host, from its method, target, headers and body to
PVE's answer: the same routes, state and tasks as `pvesh`, reached as pveproxy reaches them.

`dispatch` is synchronous and does everything but the socket: the `/api2/json` prefix, API
token authentication (`Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`), parameters
from the query (GET/DELETE) or a form or JSON body (POST/PUT), the route table's permission
check, parameter verification and handler (`_api.call_route`, as for `pvesh`), and PVE's
JSON envelope and status codes. `_https` runs it in a worker thread per request. Every
request that reaches a method is recorded in calls.jsonl (`"tool": "api"`), so a test
session can check it against the PVE schema as it checks `pvesh` argvs.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pveplan.sim import _pvecli  # noqa: F401  (registers every route)
from pveplan.sim._acl import ROOT, access
from pveplan.sim._api import Ctx, call_route, find_route
from pveplan.sim._errors import ApiError, NoHandler, param_error
from pveplan.sim._state import SimRoot, append_record, read_config, read_state
from pveplan.sim._stdio import QUIET

LOG = logging.getLogger("pveplan.sim.api")

PREFIX = "/api2/json"
METHODS = {"GET": "get", "POST": "create", "PUT": "set", "DELETE": "delete"}
TOKEN_RE = re.compile(r"(?:^|\s)PVEAPIToken(?:=| )([^;]*)")
"""How pveproxy finds a token in the Authorization header (pve-api.md, "Auth")."""


@dataclass(frozen=True)
class Answer:
    """What the server sends back: status, reason phrase, JSON body (None: empty)."""

    status: int
    reason: str
    body: dict[str, Any] | None

    def encode(self) -> bytes:
        if self.body is None:
            return b""
        return json.dumps(self.body, sort_keys=True, separators=(",", ":")).encode()


def _error(err: ApiError) -> Answer:
    message = err.message if err.message.endswith("\n") else err.message + "\n"
    body: dict[str, Any] = {"data": None, "message": message}
    if err.errors:
        body["errors"] = dict(err.errors)
    return Answer(err.status, message.splitlines()[0], body)


def unauthorized(reason: str) -> Answer:
    """401: pveproxy answers a missing or bad token with no body and the reason as phrase."""
    return Answer(401, reason, None)


def authenticate(state: dict[str, Any], node: str, header: str | None) -> str | Answer:
    """The caller's full token id (`user@realm!tokenid`), or the 401 to answer."""
    match = TOKEN_RE.search(header or "")
    if match is None:
        return unauthorized("No ticket")
    tokenid, _, secret = unquote(match[1]).strip().rpartition("=")
    userid, _, name = tokenid.partition("!")
    token = state.get("tokens", {}).get(node, {}).get(tokenid)
    if not name or token is None:
        return unauthorized("authentication failure")
    if not hmac.compare_digest(str(token.get("value", "")).encode(), secret.encode()):
        return unauthorized("authentication failure")
    expire = int(token.get("expire") or 0)
    if expire and expire < time.time():
        return unauthorized("authentication failure")
    if userid != ROOT:
        user = access(state, node)["users"].get(userid)
        if user is None or not int(user.get("enable", 1)):
            return unauthorized("authentication failure")
    return tokenid


def _text(name: str, value: Any) -> str | None:
    """A JSON body's value as the string pve-common would verify (booleans 1/0)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list):
        return ",".join(str(_text(name, item)) for item in value)
    if isinstance(value, dict):
        raise param_error({name: "type check ('string') failed - got a HASH"})
    return str(value)


def parameters(method: str, query: str, body: bytes, content_type: str | None) -> dict[str, str]:
    """The request's parameters: the query, and for POST/PUT the body (form or JSON)."""
    params = dict(parse_qsl(query, keep_blank_values=True))
    if method not in ("POST", "PUT") or not body:
        return params
    if (content_type or "").split(";")[0].strip().lower() == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            raise ApiError(400, "malformed JSON body") from None
        if not isinstance(data, dict):
            raise ApiError(400, "malformed JSON body")
        params.update({k: t for k, v in data.items() if (t := _text(k, v)) is not None})
        return params
    try:
        params.update(parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False))
    except UnicodeDecodeError:
        raise ApiError(400, "malformed form body") from None
    return params


def _record(root: SimRoot, node: str, entry: dict[str, Any]) -> None:
    try:
        append_record(root.calls, {"tool": "api", "node": node, **entry})
    except OSError as exc:  # ROOT going away: the daemon stops next tick
        LOG.warning("cannot record an API call: %s", exc)


def dispatch(
    root: SimRoot,
    node: str,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes = b"",
) -> Answer:
    """Answer one request to host `node` (header names lower-case). Never raises for what
    a client sends; a bug in a handler is a logged 500."""
    token = QUIET.set(True)
    try:
        return _dispatch(root, node, method.upper(), target, headers, body)
    finally:
        QUIET.reset(token)


def _dispatch(
    root: SimRoot, node: str, method: str, target: str, headers: dict[str, str], body: bytes
) -> Answer:
    url = urlsplit(target)
    path = unquote(url.path)
    if not path.startswith(PREFIX + "/") and path != PREFIX:
        return Answer(501, f"Unsupported format in '{path}'", {"data": None})
    rel = path[len(PREFIX) :] or "/"
    if method not in METHODS:
        return Answer(501, f"Method '{method} {rel}' not implemented", {"data": None})
    try:
        found, path_params = find_route(METHODS[method], url.path[len(PREFIX) :])
    except NoHandler:
        return Answer(501, f"Method '{method} {rel}' not implemented", {"data": None})
    who = authenticate(read_state(root), node, headers.get("authorization"))
    if isinstance(who, Answer):
        return who
    entry: dict[str, Any] = {"method": method, "path": found.template, "user": who}
    try:
        raw = parameters(method, url.query, body, headers.get("content-type"))
        entry.update(path_params=path_params, params=raw)
        if latency := float(read_config(root).get("latency") or 0):
            time.sleep(latency)
        data = call_route(Ctx(root, node, who), found, path_params, raw)
        answer = Answer(200, "OK", {"data": None if found.returns_null else data})
    except ApiError as err:
        answer = _error(err)
    except Exception:
        LOG.exception("%s %s failed", method, target)
        answer = Answer(500, "internal error", {"data": None, "message": "internal error\n"})
    _record(root, node, {**entry, "status": answer.status})
    return answer
