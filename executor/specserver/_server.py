"""The spec server: pull-mode nodes fetch their spec here and report how they converged.

`SpecServer` is the application: routing, the per-identity auth postures, the in-memory
record of fetches and reports; `_http.HttpsServer` carries it over HTTPS. The catalog comes
from the caller (built from the site config) and is swapped whole on reload, so a request
sees one generation of it from start to end.

Auth: an identity's `auth_method` decides what a request for its spec or its report must
present as `Authorization: Bearer TOKEN`: nothing (`network`), the site token (`site_token`),
or the node's own static token (`node_token`); a valid provisioning token minted for that
node is accepted in both token postures. A missing token is a 401, any wrong one a 403 with
a generic message: the detailed reason ("token for another node", "expired token (...)")
goes to the log only, with the peer, and never with the token.
"""

from __future__ import annotations

import hmac
import re
import signal
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import trio

from pveplan.executor.pull._report import NodeReport, ReportStatus
from pveplan.executor.pull._tls import fingerprint, server_context
from pveplan.executor.pull._tokens import TokenRefused, check_token, looks_like_provisioning_token
from pveplan.planner import __version__

from ._catalog import Catalog, CatalogError, PublishedSpec
from ._http import HttpsServer, Request, Response, error_response, json_response
from ._limits import Limits
from ._log import clean, report_line, timestamp

DEFAULT_PORT = 44443
MAX_INSTANCES = 16
"""Instances remembered per identity (oldest forgotten first): under `network` auth anyone
may fetch, and must not be able to grow the server's memory without bound."""
MAX_INSTANCE_LENGTH = 128
SPEC_HASH_HEADER = "X-Pveplan-Spec-Hash"
_BUNDLE_HASH = re.compile(r"[0-9a-f]{64}")
_INSTANCE = re.compile(r"[\x21-\x7e]+")
_METHODS = {
    "health": ("GET",),
    "specs": ("GET",),
    "spec": ("GET",),
    "report": ("GET", "POST"),
    "bundle": ("GET",),
}
_report_decoder = msgspec.json.Decoder(NodeReport)


class ServerInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Where a started server listens and the fingerprint nodes must pin."""

    url: str
    port: int
    fingerprint: str


@dataclass(slots=True)
class _Instance:
    """What one node instance has done: fetched its spec, reported a run."""

    fetched_at: float | None = None
    report: NodeReport | None = None
    reported_at: float | None = None

    @property
    def last(self) -> float:
        return max(self.fetched_at or 0.0, self.reported_at or 0.0)


def _bearer(header: str | None) -> tuple[str | None, str]:
    """The bearer token of an Authorization header, or None and why there is none."""
    if header is None:
        return None, "no token presented"
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None, "Authorization header is not a Bearer token"
    token = token.strip()
    return (token, "") if token else (None, "empty bearer token")


def _matches(token: str, expected: str | None) -> bool:
    if not expected:
        return False
    return hmac.compare_digest(token.encode("latin-1"), expected.encode("utf-8"))


class SpecServer:
    """The spec server's state and request handling; `serve` runs it on a port.

    `load_catalog` is called now and on every `reload`; `bundle_path(hash)` says where the
    bundle with that hash is (None: not here). `log` gets one line per request and per
    report, and one per connection refused or closed by `limits` (None: the defaults).
    `reports` and `status` let the driver (and tests) see what nodes did.
    """

    def __init__(
        self,
        *,
        load_catalog: Callable[[], Catalog],
        bundle_path: Callable[[str], Path | None],
        cert_pem: bytes,
        key_pem: bytes,
        log: Callable[[str], None],
        clock: Callable[[], float] = time.time,
        limits: Limits | None = None,
    ) -> None:
        self._load_catalog = load_catalog
        self._limits = limits
        self._bundle_path = bundle_path
        self._log = log
        self._clock = clock
        self.fingerprint = fingerprint(cert_pem)
        self._ssl = server_context(cert_pem, key_pem)
        self._catalog = self._checked(load_catalog())
        self._instances: dict[str, OrderedDict[str, _Instance]] = {}
        self._latest: dict[str, NodeReport] = {}

    # -- state -------------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    @property
    def reports(self) -> dict[str, NodeReport]:
        """The latest report of each identity (whatever its instance)."""
        return dict(self._latest)

    def status(self, identity: str, instance: str | None = None) -> ReportStatus:
        """Where `instance` of `identity` is; without `instance`, the most recently active
        instance (`waiting` with no instance when none has been seen)."""
        instances = self._instances.get(identity)
        key: str | None = instance or None
        state: _Instance | None = None
        if instances:
            if key is None:
                key, state = max(instances.items(), key=lambda item: item[1].last)
            else:
                state = instances.get(key)
        if state is None:
            return ReportStatus(identity=identity, instance=key, phase="waiting")
        return ReportStatus(
            identity=identity,
            instance=key or None,
            phase="reported" if state.report else "fetched" if state.fetched_at else "waiting",
            fetched_at=state.fetched_at,
            report=state.report,
        )

    def _track(self, identity: str, instance: str) -> _Instance:
        instances = self._instances.setdefault(identity, OrderedDict())
        state = instances.get(instance)
        if state is None:
            state = instances[instance] = _Instance()
            while len(instances) > MAX_INSTANCES:
                instances.popitem(last=False)
        instances.move_to_end(instance)
        return state

    @staticmethod
    def _checked(catalog: Catalog) -> Catalog:
        if not isinstance(catalog, Catalog):
            raise TypeError(f"load_catalog returned a {type(catalog).__name__}, not a Catalog")
        return catalog

    def reload(self) -> bool:
        """Load the catalog again; on failure log why and keep serving the current one."""
        try:
            catalog = self._checked(self._load_catalog())
        except CatalogError as exc:
            self._log(f"{timestamp()} reload failed, still serving the previous catalog: {exc}")
            return False
        except Exception as exc:
            self._log(
                f"{timestamp()} reload failed, still serving the previous catalog:"
                f" {type(exc).__name__} (details withheld: they may quote secrets)"
            )
            return False
        before = len(self._catalog.specs)
        self._catalog = catalog
        self._log(f"{timestamp()} reloaded: {len(catalog.specs)} specs (was {before})")
        return True

    # -- requests ----------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """The response to one request (runs on the server's trio thread; no I/O but the
        bundle's existence check)."""
        segments = request.path.split("/")[1:]
        route = segments[0] if segments else ""
        methods = _METHODS.get(route)
        if methods is None or len(segments) != (1 if route in ("health", "specs") else 2):
            return error_response(404, "not found")
        if request.method not in methods:
            return error_response(
                405, "method not allowed", headers=(("allow", ", ".join(methods)),)
            )
        catalog = self._catalog
        if route == "health":
            return json_response(
                200, {"status": "ok", "version": __version__, "specs": len(catalog.specs)}
            )
        if route == "specs":
            return json_response(200, {"specs": sorted(catalog.specs)})
        name = urllib.parse.unquote(segments[1])
        if route == "bundle":
            return self._bundle(name)
        if not name:
            return error_response(404, "not found")
        instance = request.query.get("instance") or None
        if instance is not None and not (
            len(instance) <= MAX_INSTANCE_LENGTH and _INSTANCE.fullmatch(instance)
        ):
            return error_response(400, "invalid instance id")
        spec = self._spec(catalog, name)
        if isinstance(spec, Response):
            return spec
        refusal = self._authorize(catalog, spec, request)
        if refusal is not None:
            return refusal
        if route == "spec":
            self._track(name, instance or "").fetched_at = self._clock()
            return Response(
                200,
                spec.document,
                headers=((SPEC_HASH_HEADER, spec.spec_hash),),
            )
        if request.method == "POST":
            return self._record(name, request.body)
        return json_response(200, self.status(name, instance))

    def _spec(self, catalog: Catalog, identity: str) -> PublishedSpec | Response:
        if identity in catalog.conflicts:
            return error_response(409, catalog.conflicts[identity])
        spec = catalog.specs.get(identity)
        if spec is None:
            return error_response(404, f"no spec for node {identity!r}")
        return spec

    def _authorize(
        self, catalog: Catalog, spec: PublishedSpec, request: Request
    ) -> Response | None:
        """None when the request may see `spec`'s data, else the 401/403 to send."""
        if spec.auth_method == "network":
            return None
        token, missing = _bearer(request.headers.get("authorization"))
        if token is None:
            return error_response(
                401,
                "a token is required",
                headers=(("www-authenticate", "Bearer"),),
                refused=missing,
            )
        reason = self._refusal(catalog, spec, token)
        if reason is None:
            return None
        return error_response(403, "token refused", refused=reason)

    def _refusal(self, catalog: Catalog, spec: PublishedSpec, token: str) -> str | None:
        """Why `token` does not open `spec` (a text safe to log), or None when it does."""
        if spec.auth_method == "site_token":
            static, kind = catalog.site_token, "site token"
        else:
            static = catalog.node_tokens.get(spec.identity)
            kind = f"node token for {clean(spec.identity)}"
        if _matches(token, static):
            return None
        if looks_like_provisioning_token(token):
            if not catalog.signing_key:
                return "provisioning token presented but no signing key is configured"
            try:
                check_token(
                    token,
                    catalog.signing_key,
                    node=spec.identity,
                    now=int(self._clock()),
                    ttl=catalog.token_ttl,
                )
            except TokenRefused as refused:
                return refused.reason
            return None
        if not static:
            return f"no {kind} is configured"
        return f"wrong {kind}"

    def _record(self, identity: str, body: bytes) -> Response:
        try:
            report = _report_decoder.decode(body)
        except msgspec.DecodeError as exc:
            return error_response(400, f"the report does not decode: {exc}")
        if report.identity != identity:
            return error_response(
                400, f"the report is for node {report.identity!r}, posted to {identity!r}"
            )
        if not (
            len(report.instance) <= MAX_INSTANCE_LENGTH and _INSTANCE.fullmatch(report.instance)
        ):
            return error_response(400, "invalid instance id")
        now = self._clock()
        state = self._track(identity, report.instance)
        state.report, state.reported_at = report, now
        self._latest[identity] = report
        self._log(report_line(report, at=now))
        return json_response(200, {"status": "recorded"})

    def _bundle(self, digest: str) -> Response:
        if not _BUNDLE_HASH.fullmatch(digest):
            return error_response(400, "a bundle hash is 64 lowercase hex digits")
        path = self._bundle_path(digest)
        if path is None or not Path(path).is_file():
            return error_response(404, f"no bundle {digest}")
        return Response(200, content_type="application/gzip", file=Path(path))

    # -- serving -----------------------------------------------------------------------

    async def serve(
        self,
        *,
        bind: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        reload_on_sighup: bool = False,
        task_status: trio.TaskStatus[ServerInfo] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on `bind`:`port` (0: any free port) and serve until cancelled; reports
        `ServerInfo` through `task_status` once the port is open."""
        try:
            listeners = await trio.open_tcp_listeners(port, host=bind or None)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {bind}:{port}: {exc.strerror}") from None
        actual = listeners[0].socket.getsockname()[1]
        host = f"[{bind}]" if ":" in bind else bind or "0.0.0.0"
        info = ServerInfo(url=f"https://{host}:{actual}", port=actual, fingerprint=self.fingerprint)
        http = HttpsServer(self._ssl, self.handle, self._log, limits=self._limits)
        try:
            async with trio.open_nursery() as nursery:
                if reload_on_sighup:
                    await nursery.start(self._reload_on_sighup)
                self._log(
                    f"{timestamp()} serving {len(self._catalog.specs)} specs at {info.url}"
                    f" (certificate {info.fingerprint})"
                )
                task_status.started(info)
                await http.serve(listeners)
        finally:
            for listener in listeners:
                listener.socket.close()

    async def _reload_on_sighup(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        with trio.open_signal_receiver(signal.SIGHUP) as signals:
            task_status.started()
            async for _ in signals:
                self.reload()


async def serve_specs(
    *,
    load_catalog: Callable[[], Catalog],
    bundle_path: Callable[[str], Path | None],
    cert_pem: bytes,
    key_pem: bytes,
    bind: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    log: Callable[[str], None],
    reload_on_sighup: bool = False,
    limits: Limits | None = None,
    task_status: trio.TaskStatus[ServerInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve specs until cancelled (see `SpecServer`); `task_status` gets the `ServerInfo`.

    `load_catalog` is called at start (its exceptions propagate: nothing to serve) and, with
    `reload_on_sighup` (main thread only), on every SIGHUP, where a failure is logged and the
    previous catalog kept.
    """
    server = SpecServer(
        load_catalog=load_catalog,
        bundle_path=bundle_path,
        cert_pem=cert_pem,
        key_pem=key_pem,
        log=log,
        limits=limits,
    )
    await server.serve(
        bind=bind, port=port, reload_on_sighup=reload_on_sighup, task_status=task_status
    )
