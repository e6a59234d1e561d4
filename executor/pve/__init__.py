"""The PVE driver: PVE operations as requests (`_requests`), carried by a transport.

`PveDriver` is what step kinds use: one method per operation on one node. Each builds a
`PveRequest` with a pure builder (method, path and parameters as PVE's API schema names
them) and hands it to a `PveTransport`: `PveshTransport` runs `pvesh` on the host's command
channel. See docs/transports.md.
"""

from . import _requests as requests
from ._driver import PveDriver, first_ipv4
from ._params import encode_sshkeys, flags, property_string, tags
from ._pvesh import PveshTransport, pvesh_argv
from ._requests import PveRequest
from ._transport import PveError, PveTransport, follow_task, task_ended

__all__ = [
    "PveDriver",
    "PveError",
    "PveRequest",
    "PveTransport",
    "PveshTransport",
    "encode_sshkeys",
    "first_ipv4",
    "flags",
    "follow_task",
    "property_string",
    "pvesh_argv",
    "requests",
    "tags",
    "task_ended",
]
