"""dsl: manifest text -> `Manifest`.

Owns the manifest model, both front ends (the `.pvp` language, parsed with lark, and
homestak's YAML v2 manifests), the checks every manifest must pass, and the `.pvp`
formatter. Pure: it reads only the files it is asked to (and those they import), never
the network, the clock or the environment. It imports nothing else of pveplan's.
"""

from ._errors import Diagnostic, DslError, Location, closest, did_you_mean
from ._load import LoadedManifest, load_manifest, manifest_from_data, read_file
from ._model import Execution, Manifest, Node, NodeExecution, Settings
from ._positions import SourceMap, decode_source
from ._schema import convert_checked
from ._yaml import load_yaml

__all__ = [
    "Diagnostic",
    "DslError",
    "Execution",
    "LoadedManifest",
    "Location",
    "Manifest",
    "Node",
    "NodeExecution",
    "Settings",
    "SourceMap",
    "closest",
    "convert_checked",
    "decode_source",
    "did_you_mean",
    "load_manifest",
    "load_yaml",
    "manifest_from_data",
    "read_file",
]
