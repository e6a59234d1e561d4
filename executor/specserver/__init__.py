"""The spec server: pull-mode nodes fetch their spec over pinned HTTPS and report back.

`_catalog` is what it serves (built by the caller from the site config), `_server` the
application (routes, auth, reports) and `serve_specs`, `_http` HTTP/1.1 over TLS, `_limits`
its bounds (timeouts, connection caps, body size: `Limits`), `_log` the log lines (never a
secret).
"""

from ._catalog import AuthMethod, Catalog, CatalogError, PublishedSpec
from ._limits import Limits
from ._server import DEFAULT_PORT, ServerInfo, SpecServer, serve_specs

__all__ = [
    "DEFAULT_PORT",
    "AuthMethod",
    "Catalog",
    "CatalogError",
    "Limits",
    "PublishedSpec",
    "ServerInfo",
    "SpecServer",
    "serve_specs",
]
