"""The PVE driver: `pvesh` argument vectors over a command channel (see `_driver`)."""

from ._driver import PveDriver, PveError, first_ipv4
from ._params import encode_sshkeys, flags, property_string, tags

__all__ = [
    "PveDriver",
    "PveError",
    "encode_sshkeys",
    "first_ipv4",
    "flags",
    "property_string",
    "tags",
]
