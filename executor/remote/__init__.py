"""Remote executors: nested PVE hosts run their subtree's plan themselves.

`_protocol` is the wire format (length-prefixed msgspec frames), `_serve` the executor end
(`pveplan executor --stdio`), `_client` the driver end (the `subplan.delegate` step),
`_probe` the drift probe of nested levels (at plan and status time), `_bundle` the
self-contained copy of pveplan a nested host runs, shipped over SFTP and
checked by hash, `_layout` where things live on a nested host. See docs/remote.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Bundle": "._bundle",
    "BundleError": "._bundle",
    "ensure_bundle": "._bundle",
    "FrameStream": "._protocol",
    "ProbeUnsupported": "._client",
    "probe_level": "._probe",
    "probe_nested": "._probe",
    "probe_remote": "._client",
    "ProtocolError": "._protocol",
    "RemoteError": "._client",
    "run_remote": "._client",
    "serve": "._serve",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
