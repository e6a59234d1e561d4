"""dsl: manifest text -> `Manifest`.

Owns the manifest model, both front ends (the `.pvp` language, parsed with lark, and
homestak's YAML v2 manifests), the checks every manifest must pass, and the `.pvp`
formatter. Pure: it reads only the files it is asked to (and those they import), never
the network, the clock or the environment. It imports nothing else of pveplan's.

Names are exported lazily (PEP 562), so importing `dsl` for its error types does not
load the parser, the evaluator or pyyaml: `pveplan --version` stays instant.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Diagnostic": "._errors",
    "DiagnosticError": "._errors",
    "DslError": "._errors",
    "Location": "._errors",
    "closest": "._errors",
    "did_you_mean": "._errors",
    "LoadedManifest": "._load",
    "load_manifest": "._load",
    "manifest_from_data": "._load",
    "read_file": "._load",
    "Clone": "._model",
    "Disk": "._model",
    "Execution": "._model",
    "Manifest": "._model",
    "Nic": "._model",
    "Node": "._model",
    "NodeExecution": "._model",
    "Settings": "._model",
    "SnapshotBefore": "._model",
    "ipconfig_problem": "._devices",
    "SourceMap": "._positions",
    "decode_source": "._positions",
    "convert_checked": "._schema",
    "format_source": "._formatter",
    "manifest_json_schema": "._jsonschema",
    "load_yaml": "._yaml",
}

__all__ = [
    "Clone",
    "Diagnostic",
    "DiagnosticError",
    "Disk",
    "DslError",
    "Execution",
    "LoadedManifest",
    "Location",
    "Manifest",
    "Nic",
    "Node",
    "NodeExecution",
    "Settings",
    "SnapshotBefore",
    "SourceMap",
    "closest",
    "convert_checked",
    "decode_source",
    "did_you_mean",
    "format_source",
    "ipconfig_problem",
    "load_manifest",
    "load_yaml",
    "manifest_from_data",
    "manifest_json_schema",
    "read_file",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dsl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from ._devices import ipconfig_problem
    from ._errors import Diagnostic, DiagnosticError, DslError, Location, closest, did_you_mean
    from ._formatter import format_source
    from ._jsonschema import manifest_json_schema
    from ._load import LoadedManifest, load_manifest, manifest_from_data, read_file
    from ._model import (
        Clone,
        Disk,
        Execution,
        Manifest,
        Nic,
        Node,
        NodeExecution,
        Settings,
        SnapshotBefore,
    )
    from ._positions import SourceMap, decode_source
    from ._schema import convert_checked
    from ._yaml import load_yaml
