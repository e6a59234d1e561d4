"""`HttpsTransport`: PVE requests over PVE's REST API (`/api2/json`) with an API token.

The way PVE's users grant access (OpenTofu's bpg provider, Ansible's proxmox modules): a
token `USER@REALM!TOKENID=SECRET`, sent as `Authorization: PVEAPIToken=...` over TLS that
is verified, against the system's CAs or a pinned certificate fingerprint (`_tls`; the pin
is checked inside the handshake, so the token never reaches another peer).

The mapping is pure (`api_url`, `form_body`): the path is `filled_path(encode=True)`,
GET/DELETE parameters go in the query, POST/PUT parameters in a form body, booleans as
0/1 (over HTTP `true` fails PVE's type check). PVE's answers are unwrapped (`data`), and
every failure becomes one `PveError` (`_https_errors`) whose message names what was asked
and says PVE's own words. The token is read from the secret when the first call connects,
and is never in a message, a log line or a repr.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import trio

from .._lazy import LazyModule
from ._https_errors import connection_error, status_error
from ._params import flag_value
from ._requests import PveRequest
from ._tls import api_ssl_context
from ._transport import PveError

API_ROOT = "/api2/json"
DEFAULT_PORT = 8006
TOKEN_FORM = re.compile(r"(?P<id>[^\s@!=]+@[^\s@!=]+![A-Za-z][A-Za-z0-9._-]*)=(?P<secret>\S+)")
"""`USER@REALM!TOKENID=SECRET`, as `pveum user token add` prints it and secrets.yaml holds it."""

if TYPE_CHECKING:
    import httpx
else:
    httpx = LazyModule("httpx")  # imported when a run first calls a PVE API

__all__ = ["API_ROOT", "HttpsTransport", "api_url", "form_body", "normalize_endpoint"]


def normalize_endpoint(endpoint: str) -> str:
    """`https://HOST:PORT` from a node file's `api_endpoint` (port 8006 when none is
    given; a trailing `/api2/json` or `/` is dropped). ValueError for anything that is not
    an https URL of a host: the token only ever travels over TLS."""
    parts = urlsplit(endpoint.strip())
    if parts.scheme.lower() != "https":
        raise ValueError(f"api_endpoint must be an https:// URL, not {endpoint!r}")
    if not parts.hostname or parts.username or parts.query or parts.fragment:
        raise ValueError(f"api_endpoint must be https://HOST[:PORT], not {endpoint!r}")
    if parts.path.rstrip("/") not in ("", API_ROOT):
        raise ValueError(f"api_endpoint must be https://HOST[:PORT], not {endpoint!r}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError(f"api_endpoint has an invalid port: {endpoint!r}") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"https://{host}:{port}"


def _encoded(params: dict[str, Any]) -> str:
    # quote, not quote_plus: `%20` is a space in a query and a form body alike.
    pairs = [(key, flag_value(params[key])) for key in sorted(params)]
    return urlencode(pairs, quote_via=quote, safe="")


def api_url(endpoint: str, request: PveRequest) -> str:
    """The request's URL (pure): the path's placeholders percent-encoded, and GET/DELETE
    parameters as the query string."""
    url = f"{endpoint}{API_ROOT}{request.filled_path(encode=True)}"
    if request.method in ("GET", "DELETE") and request.params:
        url += "?" + _encoded(request.params)
    return url


def form_body(request: PveRequest) -> bytes | None:
    """The form body of a POST/PUT (pure); None for GET/DELETE or no parameters."""
    if request.method in ("GET", "DELETE") or not request.params:
        return None
    return _encoded(request.params).encode("ascii")


class HttpsTransport:
    """PVE's API at `endpoint` (`https://HOST:8006`), authenticated by the token that
    `token()` reveals when the first call connects (its secret named `token_name`, e.g.
    `api_tokens.pve1`, for messages). `fingerprint` pins the certificate (normalised,
    `AB:CD:...`); None trusts the system's CAs. `source` is the node file the host comes
    from, named in every message about reaching it.

    One keep-alive connection pool per transport; the owner closes it with `aclose()`.
    """

    def __init__(
        self,
        endpoint: str,
        token: Callable[[], str],
        *,
        token_name: str,
        fingerprint: str | None = None,
        source: str | None = None,
    ) -> None:
        try:
            self.endpoint = normalize_endpoint(endpoint)
        except ValueError as exc:
            raise PveError(f"{exc} (from {source or 'the node file'})") from None
        self.token_name = token_name
        self.fingerprint = fingerprint
        self.source = source
        self._reveal = token
        self._auth: str | None = None
        self.token_id: str | None = None
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:  # never the token
        pin = f", pinned={self.fingerprint}" if self.fingerprint else ""
        return f"HttpsTransport({self.endpoint!r}, token={self.token_name}{pin})"

    @property
    def where(self) -> str:
        """The endpoint, with the node file it comes from (for messages)."""
        return f"{self.endpoint} (from {self.source})" if self.source else self.endpoint

    def _authorization(self) -> str:
        if self._auth is None:
            try:
                value = self._reveal().strip()
            except Exception as exc:  # the secret's own error names it, never a value
                raise PveError(f"no API token for {self.where}: {exc}") from None
            value = value.removeprefix("PVEAPIToken=")
            found = TOKEN_FORM.fullmatch(value)
            if found is None:
                raise PveError(
                    f"the secret {self.token_name} is not an API token of the form"
                    " USER@REALM!TOKENID=SECRET (as `pveum user token add` prints it:"
                    " full-tokenid, '=', value)"
                )
            self.token_id = found.group("id")
            self._auth = f"PVEAPIToken={value}"
        return self._auth

    def _open(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                verify=api_ssl_context(self.fingerprint),
                trust_env=False,  # no proxy or .netrc from the environment near the token
                follow_redirects=False,
                headers={"Accept": "application/json"},
            )
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def call(self, request: PveRequest, *, timeout: float) -> Any:
        headers = {"Authorization": self._authorization()}
        body = form_body(request)
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        client = self._open()
        try:
            with trio.fail_after(timeout):
                response = await client.request(
                    request.method,
                    api_url(self.endpoint, request),
                    content=body,
                    headers=headers,
                    timeout=httpx.Timeout(timeout),
                )
        except (httpx.HTTPError, trio.TooSlowError, OSError) as exc:
            raise connection_error(self, request, exc, timeout) from None
        if response.status_code // 100 != 2:
            raise status_error(self, request, response)
        try:
            answer = response.json()
        except ValueError:
            raise PveError(
                f"{request}: {self.endpoint} answered {response.status_code} with no JSON"
            ) from None
        return answer.get("data") if isinstance(answer, dict) else None
