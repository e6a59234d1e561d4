"""The PVE driver: PVE operations as requests (`_requests`), carried by a transport.

`PveDriver` is what step kinds use: one method per operation on one node. Each builds a
`PveRequest` with a pure builder (method, path and parameters as PVE's API schema names
them) and hands it to a `PveTransport`: `HttpsTransport` calls PVE's HTTPS API with an API
token (TLS verified by the system's CAs or a pinned fingerprint), `PveshTransport` runs
`pvesh` on the host's command channel. See docs/transports.md.
"""

from . import _requests as requests
from ._driver import PveDriver, first_ipv4
from ._https import HttpsTransport, api_url, form_body, normalize_endpoint
from ._params import encode_sshkeys, flags, property_string, tags
from ._pvesh import PveshTransport, pct_create_argv, pvesh_argv
from ._requests import PveRequest
from ._tls import PinMismatch, api_ssl_context, cert_fingerprint
from ._transport import PveError, PveTransport, follow_task, task_ended

__all__ = [
    "HttpsTransport",
    "PinMismatch",
    "PveDriver",
    "PveError",
    "PveRequest",
    "PveTransport",
    "PveshTransport",
    "api_ssl_context",
    "api_url",
    "cert_fingerprint",
    "encode_sshkeys",
    "first_ipv4",
    "flags",
    "follow_task",
    "form_body",
    "normalize_endpoint",
    "pct_create_argv",
    "property_string",
    "pvesh_argv",
    "requests",
    "tags",
    "task_ended",
]
