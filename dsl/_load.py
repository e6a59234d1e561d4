"""Load a manifest file, whichever front end, into a checked `Manifest`.

One pipeline for both: front end (DSL evaluator or YAML loader) -> plain data + source
map -> schema check -> tree rules -> `Manifest`. Which front end runs is decided by the
file name (`.pvp` is the DSL; `.yaml`, `.yml` and `.json` are YAML v2).

A schema error does not stop the pipeline: the tree rules run on the nodes that passed
the schema, so one pass reports every independent mistake (`validate` then resolves the
same partial manifest against the site config). Only what leaves nothing to check stops
it: a file that cannot be read or decoded, a YAML or `.pvp` syntax error, an evaluation
error (the value it would have produced is unknown), a schema v1 manifest, a top level
that is not a mapping, or no node surviving the schema check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from ._errors import Diagnostic, DslError, Location
from ._evaluator import Reader, evaluate_file
from ._model import Manifest
from ._positions import Path as DataPath
from ._positions import SourceMap, decode_source
from ._schema import Salvaged, convert_salvaged, sort_diagnostics
from ._validate import validate_tree
from ._yaml import load_yaml

DSL_SUFFIXES = (".pvp",)
YAML_SUFFIXES = (".yaml", ".yml", ".json")


# Stand-ins for required top-level fields the schema refused, so the nodes still get checked.
_FILL = {"schema_version": 2, "name": "unnamed"}


class LoadedManifest(msgspec.Struct, frozen=True):
    """A checked manifest, where each of its values was written, and any warnings.

    `errors` is empty unless it was loaded with `keep_going=True`; then `manifest` holds
    only the parts that passed the schema (positions in `source_map` renumbered to match),
    which is enough to look its names up in a site config, never to plan it.
    """

    manifest: Manifest
    source_map: SourceMap
    warnings: tuple[Diagnostic, ...] = ()
    errors: tuple[Diagnostic, ...] = ()

    @property
    def files(self) -> tuple[str, ...]:
        """Every file the manifest was read from (the main file first, then imports)."""
        return tuple(self.source_map.texts)


def read_file(path: str) -> bytes:
    """The default `Reader`: the bytes of a local file."""
    return Path(path).read_bytes()


def load_manifest(
    path: str, reader: Reader = read_file, *, keep_going: bool = False
) -> LoadedManifest:
    """Load and check the manifest at `path`; every problem is raised as one `DslError`.

    With `keep_going`, problems found after the manifest was read are returned in
    `errors` with what could be checked, so a caller can look for more (`validate` does);
    what leaves nothing to check (see the module docstring) is still raised.
    """
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
    return manifest_from_data(data, smap, keep_going=keep_going)


def manifest_from_data(data: Any, smap: SourceMap, *, keep_going: bool = False) -> LoadedManifest:
    """Check plain manifest data (from either front end) and build the `Manifest`.

    `keep_going` as for `load_manifest`.
    """
    if not isinstance(data, dict):
        where = smap.locate(()) or _first_location(smap)
        raise DslError.at(
            where,
            "a manifest must be a mapping with schema_version, name and nodes",
            "see docs/manifest.md for the format",
        )
    salvaged = convert_salvaged(Manifest, data, smap, fill=_FILL)
    if salvaged.value is None:
        raise DslError(salvaged.diagnostics)  # nothing left to check
    tree_map, unchecked, ghosts = _renumber(salvaged, data, smap)
    found = validate_tree(salvaged.value, tree_map, unchecked=unchecked, ghosts=ghosts)
    found = sort_diagnostics([*salvaged.diagnostics, *found], smap)
    errors = tuple(d for d in found if d.severity == "error")
    if errors and not keep_going:
        raise DslError(errors)
    warnings = tuple(d for d in found if d.severity != "error")
    return LoadedManifest(salvaged.value, tree_map, warnings, errors)


def _renumber(
    salvaged: Salvaged[Manifest], data: dict[str, Any], smap: SourceMap
) -> tuple[SourceMap, frozenset[DataPath], frozenset[str]]:
    """The source map, unchecked paths and left-out node names of a salvaged manifest.

    Nodes the schema refused are not in the salvaged manifest, so node `i` of it may be
    node `j` of the file: the source map is renumbered to match. Names of left-out nodes
    are returned so their children are not also reported with an unknown parent.
    """
    kept = salvaged.kept.get(("nodes",))
    if kept is None:
        return smap, salvaged.removed, frozenset()
    new_index = {old: new for new, old in enumerate(kept)}
    raw = data["nodes"]
    ghosts = frozenset(
        node["name"]
        for i, node in enumerate(raw)
        if i not in new_index and isinstance(node, dict) and isinstance(node.get("name"), str)
    )

    def move(path: DataPath) -> DataPath | None:
        if len(path) < 2 or path[0] != "nodes" or not isinstance(path[1], int):
            return path
        new = new_index.get(path[1])
        return None if new is None else ("nodes", new, *path[2:])

    out = SourceMap()
    out.texts.update(smap.texts)
    for source, target in ((smap.values, out.values), (smap.keys, out.keys)):
        for path, pos in source.items():
            moved = move(path)
            if moved is not None:
                target[moved] = pos
    unchecked = frozenset(p for p in map(move, salvaged.removed) if p is not None)
    return out, unchecked, ghosts


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
