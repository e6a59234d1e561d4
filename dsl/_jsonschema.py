"""The JSON Schema of YAML v2 manifests, generated from the model so it cannot drift.

`msgspec.json.schema(Manifest)` does the work: types, enums, ranges, patterns, required
keys, defaults, `additionalProperties: false` (the structs forbid unknown fields) and
the `Meta` descriptions all come from `dsl/_model.py`. This module only adds what a
schema file needs to stand alone (`$schema`, `$id`, `title`, `description`) and
describes the properties whose type is a struct (`execution`, `settings`), which msgspec
leaves without a description, with the docstring of the struct they refer to.

The schema is for editors (yaml-language-server: completion, hover, checking as you
type). It checks each value on its own; the rules that span nodes stay in
`dsl/_validate.py` and run in `pveplan validate`. One difference JSON Schema cannot
express: it counts `101.0` as an integer, while pveplan wants integers written as such.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ._model import Manifest

DIALECT = "https://json-schema.org/draft/2020-12/schema"
# An identifier, not a location: `.invalid` is reserved (RFC 6761) and never resolves.
SCHEMA_ID = "https://pveplan.invalid/schema/manifest-v2.json"
TITLE = "pveplan manifest (YAML v2)"
DESCRIPTION = (
    "A pveplan YAML v2 manifest: homestak's manifest schema v2 plus pveplan's extensions. "
    "Generated from pveplan's model (dsl/_model.py) by `pveplan schema manifest`; "
    "regenerate it after upgrading pveplan. It checks each value's type, allowed values, "
    "range and pattern, and refuses unknown keys. It does not check the rules that span "
    "nodes, which `pveplan validate` checks: node names unique (ignoring case), vmids "
    "unique, every parent names a node of the manifest and that node is of type pve, no "
    "parent cycles, an image on vm, pve and template nodes (a clone's is its template's) "
    "and a template on ct nodes, a clone's `from` naming a template (or, for a full clone, "
    "a vm) on the same host, and "
    "pattern: tiered when a node has a parent (a warning). Nor does it check that the "
    "specs, presets and images named exist in the site config."
)


def manifest_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a YAML v2 manifest, from the msgspec model.

    A new dict on every call, equal on every call; `json.dumps(..., sort_keys=True)`
    gives stable text.
    """
    generated = msgspec.json.schema(Manifest)
    defs: dict[str, Any] = generated["$defs"]
    for definition in defs.values():
        for prop in definition.get("properties", {}).values():
            if not prop.get("description"):
                described = _referenced_description(prop, defs)
                if described:
                    prop["description"] = described
    return {
        "$schema": DIALECT,
        "$id": SCHEMA_ID,
        "title": TITLE,
        "description": DESCRIPTION,
        **generated,
    }


def _referenced_description(prop: dict[str, Any], defs: dict[str, Any]) -> str | None:
    """The description of the `$defs` entry `prop` refers to (directly or in a union)."""
    candidates = [prop, *prop.get("anyOf", ()), *prop.get("oneOf", ())]
    for candidate in candidates:
        ref = candidate.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            description = defs.get(ref.removeprefix("#/$defs/"), {}).get("description")
            if description:
                return description
    return None
