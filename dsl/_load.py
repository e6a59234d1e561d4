"""Load a manifest file, whichever front end, into a checked `Manifest`.

One pipeline for both: front end (DSL evaluator or YAML loader) -> plain data + source
map -> schema check -> tree rules -> `Manifest`. Which front end runs is decided by the
file name (`.pvp` is the DSL; `.yaml`, `.yml` and `.json` are YAML v2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from ._errors import Diagnostic, DslError, Location
from ._evaluator import Reader, evaluate_file
from ._model import Manifest
from ._positions import SourceMap, decode_source
from ._schema import convert_checked, sort_diagnostics
from ._validate import validate_tree
from ._yaml import load_yaml

DSL_SUFFIXES = (".pvp",)
YAML_SUFFIXES = (".yaml", ".yml", ".json")


class LoadedManifest(msgspec.Struct, frozen=True):
    """A checked manifest, where each of its values was written, and any warnings."""

    manifest: Manifest
    source_map: SourceMap
    warnings: tuple[Diagnostic, ...] = ()

    @property
    def files(self) -> tuple[str, ...]:
        """Every file the manifest was read from (the main file first, then imports)."""
        return tuple(self.source_map.texts)


def read_file(path: str) -> bytes:
    """The default `Reader`: the bytes of a local file."""
    return Path(path).read_bytes()


def load_manifest(path: str, reader: Reader = read_file) -> LoadedManifest:
    """Load and check the manifest at `path`; every problem is raised as one `DslError`."""
    if path.endswith(DSL_SUFFIXES):
        data, smap = evaluate_file(path, reader)
    elif path.endswith(YAML_SUFFIXES):
        try:
            raw = reader(path)
        except OSError as exc:
            raise DslError.at(None, f"cannot read {path}: {exc.strerror or exc}") from None
        data, smap = load_yaml(decode_source(raw, path), path)
        _refuse_v1(data, smap)
    else:
        raise DslError.at(
            None,
            f"{path}: unknown manifest type",
            "name DSL manifests *.pvp and YAML v2 manifests *.yaml (or *.yml, *.json)",
        )
    return manifest_from_data(data, smap)


def manifest_from_data(data: Any, smap: SourceMap) -> LoadedManifest:
    """Check plain manifest data (from either front end) and build the `Manifest`."""
    if not isinstance(data, dict):
        where = smap.locate(()) or _first_location(smap)
        raise DslError.at(
            where,
            "a manifest must be a mapping with schema_version, name and nodes",
            "see docs/manifest.md for the format",
        )
    manifest = convert_checked(Manifest, data, smap)
    found = sort_diagnostics(validate_tree(manifest, smap), smap)
    errors = [d for d in found if d.severity == "error"]
    if errors:
        raise DslError(errors)
    return LoadedManifest(manifest, smap, tuple(d for d in found if d.severity != "error"))


def _first_location(smap: SourceMap) -> Location | None:
    for file in smap.texts:
        return smap.location_of((file, 1, 1))
    return None


def _refuse_v1(data: Any, smap: SourceMap) -> None:
    """A schema v1 manifest (`levels:`) gets a message on how to convert it."""
    if not isinstance(data, dict):
        return
    if "levels" in data or data.get("schema_version") == 1:
        key = "levels" if "levels" in data else "schema_version"
        raise DslError.at(
            smap.locate((key,), key=True),
            "this is a schema v1 manifest (levels:), which pveplan does not read",
            "convert it to v2: set schema_version: 2, turn each entry of levels: into an entry of "
            "nodes: with name and type (pve for a level that hosts the next, vm for the last), "
            "and give each node after the first parent: <name of the level above>",
        )
