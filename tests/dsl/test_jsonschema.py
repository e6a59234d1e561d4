"""The JSON Schema of YAML v2 manifests agrees with pveplan's own loader.

The schema is generated from the msgspec model, so these tests check what generation
cannot promise by itself: that a standard validator (jsonschema, draft 2020-12) accepts
what pveplan accepts and refuses what pveplan's schema stage refuses, that every
property is described (editors show descriptions on hover), and that the output is
stable. Every rejection is checked against the loader too, so schema and loader agree
case by case, not only in aggregate.
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from pveplan.dsl import (
    Clone,
    Disk,
    DslError,
    Execution,
    Manifest,
    Nic,
    Node,
    NodeExecution,
    Settings,
    SnapshotBefore,
    SourceMap,
    load_manifest,
    manifest_from_data,
    manifest_json_schema,
)
from tests.manifest_strategies import manifests

from .conftest import HOMESTAK_MANIFESTS

EXAMPLE_MANIFESTS = Path(__file__).resolve().parents[2] / "examples" / "site-config" / "manifests"

SCHEMA = manifest_json_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

FIELDS = {
    model: [f.encode_name for f in msgspec.structs.fields(model)]
    for model in (
        Manifest,
        Node,
        Settings,
        Execution,
        NodeExecution,
        Clone,
        Disk,
        Nic,
        SnapshotBefore,
    )
}


def schema_accepts(data: Any) -> bool:
    return VALIDATOR.is_valid(data)


def model_accepts(data: Any) -> bool:
    """Whether pveplan's schema stage (msgspec, the final word in `convert_checked`) accepts."""
    try:
        msgspec.convert(data, Manifest)
    except msgspec.ValidationError:
        return False
    return True


def loader_refuses(data: Any) -> bool:
    try:
        manifest_from_data(data, SourceMap())
    except DslError:
        return True
    return False


def load_as_file(tmp_path: Path, data: Any) -> None:
    """Write `data` as a YAML file and load it the way `pveplan validate` does."""
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    load_manifest(str(path))


def _as_json(manifest: Manifest) -> Any:
    """A manifest as the plain data a YAML or JSON file gives (lists, not tuples)."""
    return _lists(msgspec.to_builtins(manifest))


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _lists(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(item) for item in value]
    return value


def _properties(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (path, property schema) in the schema, at any depth."""
    if isinstance(node, dict):
        for name, prop in node.get("properties", {}).items():
            yield f"{where}/properties/{name}", prop
        for key, value in node.items():
            yield from _properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _properties(value, f"{where}/{index}")


# -- the schema itself ------------------------------------------------------------------


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert jsonschema.validators.validator_for(SCHEMA) is jsonschema.Draft202012Validator
    assert ".invalid/" in SCHEMA["$id"]  # an identifier that can never be fetched
    assert SCHEMA["title"]
    assert "pveplan validate" in SCHEMA["description"]
    assert json.loads(json.dumps(SCHEMA)) == SCHEMA  # plain JSON, nothing to coerce


def test_every_property_has_a_description() -> None:
    props = list(_properties(SCHEMA))
    assert len(props) >= sum(len(names) for names in FIELDS.values())
    missing = [path for path, prop in props if not str(prop.get("description", "")).strip()]
    assert missing == []


def test_struct_valued_properties_are_described_by_their_struct() -> None:
    """msgspec leaves `execution` and `settings` bare; their docstrings describe them."""
    props = {path: prop for path, prop in _properties(SCHEMA["$defs"])}
    assert props["/Manifest/properties/settings"]["description"] == inspect.cleandoc(
        Settings.__doc__ or ""
    )
    assert props["/Manifest/properties/execution"]["description"] == inspect.cleandoc(
        Execution.__doc__ or ""
    )
    assert props["/Node/properties/execution"]["description"] == inspect.cleandoc(
        NodeExecution.__doc__ or ""
    )


def test_every_object_refuses_unknown_keys() -> None:
    objects = {name: d for name, d in SCHEMA["$defs"].items() if d.get("type") == "object"}
    assert set(objects) == {m.__name__ for m in FIELDS}
    assert {name: d.get("additionalProperties") for name, d in objects.items()} == dict.fromkeys(
        objects, False
    )
    for model, names in FIELDS.items():
        assert sorted(objects[model.__name__]["properties"]) == sorted(names)


def test_output_is_deterministic_and_fresh() -> None:
    first = manifest_json_schema()
    text = json.dumps(first, indent=2, sort_keys=True)
    first["$defs"]["Node"]["properties"].clear()  # a caller's edit must not leak
    assert json.dumps(manifest_json_schema(), indent=2, sort_keys=True) == text
    assert json.dumps(manifest_json_schema(), sort_keys=True) == json.dumps(SCHEMA, sort_keys=True)


# -- real manifests are accepted --------------------------------------------------------


def _yaml_manifests() -> list[Path]:
    return sorted([*HOMESTAK_MANIFESTS.glob("*.yaml"), *EXAMPLE_MANIFESTS.glob("*.yaml")])


def test_the_manifest_sets_are_there() -> None:
    assert len(list(HOMESTAK_MANIFESTS.glob("*.yaml"))) == 9
    assert len(list(EXAMPLE_MANIFESTS.glob("*.yaml"))) >= 5


@pytest.mark.parametrize(
    "path", _yaml_manifests(), ids=lambda p: f"{p.parent.parent.parent.name}/{p.name}"
)
def test_real_manifests_are_accepted(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(data)]
    assert errors == []
    load_manifest(str(path))  # and pveplan agrees


# -- invalid manifests are refused, by both ---------------------------------------------

BASE: dict[str, Any] = {
    "schema_version": 2,
    "name": "n2-tiered",
    "description": "2-level nested PVE",
    "pattern": "tiered",
    "execution": {"default_mode": "push"},
    "settings": {"on_error": "rollback", "parallelism": 4},
    "nodes": [
        {"name": "root-pve", "type": "pve", "image": "pve-9", "vmid": 99011, "disk": 64},
        {
            "name": "edge",
            "type": "vm",
            "preset": "vm-small",
            "image": "debian-12",
            "vmid": 99021,
            "parent": "root-pve",
            "execution": {"mode": "pull"},
        },
        {"name": "box", "type": "ct", "template": "debian-12-standard", "parent": "root-pve"},
    ],
}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting `value` at a dotted path ("nodes.1.vmid")."""

    def mutate(data: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        target: Any = data
        for part in parents:
            target = target[part]
        target[last] = value

    return mutate


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        target: Any = data
        for part in parents:
            target = target[part]
        del target[last]

    return mutate


INVALID: dict[str, Callable[[dict[str, Any]], None]] = {
    "missing name": _drop("name"),
    "missing nodes": _drop("nodes"),
    "missing schema_version": _drop("schema_version"),
    "empty nodes": _set("nodes", []),
    "nodes a mapping": _set("nodes", {"edge": {"type": "vm", "image": "debian-12"}}),
    "nodes a string": _set("nodes", "edge"),
    "schema_version 1": _set("schema_version", 1),
    "schema_version '2'": _set("schema_version", "2"),
    "schema_version true": _set("schema_version", True),
    "v1 levels key": _set("levels", [{"name": "root-pve"}]),
    "unknown top-level key": _set("owner", "ops"),
    "unknown node key (typo)": _set("nodes.1.preset_name", "vm-small"),
    "unknown settings key": _set("settings.retries", 3),
    "unknown execution key": _set("execution.mode", "push"),
    "unknown node execution key": _set("nodes.1.execution.default_mode", "pull"),
    "bad node type": _set("nodes.1.type", "container"),
    "node type missing": _drop("nodes.1.type"),
    "node name missing": _drop("nodes.1.name"),
    "vmid 5": _set("nodes.0.vmid", 5),
    "vmid 99": _set("nodes.0.vmid", 99),
    "vmid too big": _set("nodes.0.vmid", 1_000_000_000),
    "vmid as string": _set("nodes.0.vmid", "99011"),
    "vmid as bool": _set("nodes.0.vmid", True),
    "vmid fractional": _set("nodes.0.vmid", 99011.5),
    "name with spaces": _set("name", "my manifest"),
    "name leading dash": _set("name", "-n2"),
    "name too long": _set("name", "n" * 65),
    "name a number": _set("name", 42),
    "node name underscore": _set("nodes.1.name", "web_01"),
    "node name trailing dash": _set("nodes.1.name", "edge-"),
    "node name too long": _set("nodes.1.name", "e" * 64),
    "pattern star": _set("pattern", "star"),
    "default_mode poll": _set("execution.default_mode", "poll"),
    "node mode poll": _set("nodes.1.execution.mode", "poll"),
    "on_error explode": _set("settings.on_error", "explode"),
    "parallelism 0": _set("settings.parallelism", 0),
    "timeout_buffer negative": _set("settings.timeout_buffer", -1),
    "verify_ssh a string": _set("settings.verify_ssh", "sure"),
    "disk 0": _set("nodes.0.disk", 0),
    "cores 2000": _set("nodes.1.cores", 2000),
    "memory 8": _set("nodes.1.memory", 8),
    "image a list": _set("nodes.1.image", ["debian-12"]),
    "description a number": _set("description", 42),
    "settings null": _set("settings", None),
    "node execution null": _set("nodes.1.execution", None),
    "execution a string": _set("execution", "push"),
    "node a string": _set("nodes.1", "edge"),
}


def test_the_base_of_the_invalid_cases_is_valid(tmp_path: Path) -> None:
    assert schema_accepts(BASE)
    load_as_file(tmp_path, BASE)


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_manifests_are_refused_by_schema_and_loader(case: str, tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    INVALID[case](data)
    assert not schema_accepts(data)
    assert not model_accepts(data)  # refused at the schema stage, not by a tree rule
    with pytest.raises(DslError):
        load_as_file(tmp_path, data)


def test_a_manifest_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    data = [BASE]
    assert not schema_accepts(data)
    with pytest.raises(DslError):
        load_as_file(tmp_path, data)


# -- what the schema leaves to `pveplan validate` ---------------------------------------

TREE_RULES: dict[str, Callable[[dict[str, Any]], None]] = {
    "duplicate name (case)": _set("nodes.1.name", "Root-PVE"),
    "duplicate vmid": _set("nodes.1.vmid", 99011),
    "unknown parent": _set("nodes.1.parent", "root"),
    "parent cycle": _set("nodes.0.parent", "edge"),
    "parent not pve": _set("nodes.2.parent", "edge"),
    "vm without image": _drop("nodes.1.image"),
    "ct without template": _drop("nodes.2.template"),
}


@pytest.mark.parametrize("case", list(TREE_RULES))
def test_tree_rules_are_left_to_the_loader(case: str, tmp_path: Path) -> None:
    """The schema's description says these are checked by `pveplan validate`, not by it."""
    data = copy.deepcopy(BASE)
    TREE_RULES[case](data)
    assert schema_accepts(data)
    assert model_accepts(data)
    with pytest.raises(DslError):
        load_as_file(tmp_path, data)


def test_integral_floats_are_the_known_gap(tmp_path: Path) -> None:
    """JSON Schema counts 101.0 as an integer; pveplan wants integers written as such.

    The one disagreement JSON Schema cannot express (docs/manifest.md says so). If a
    future schema closes it, this test should be turned around.
    """
    data = copy.deepcopy(BASE)
    data["nodes"][0]["vmid"] = 99011.0
    assert schema_accepts(data)
    with pytest.raises(DslError):
        load_as_file(tmp_path, data)


# -- properties -------------------------------------------------------------------------


@given(manifests())
def test_generated_manifests_are_accepted(manifest: Manifest) -> None:
    data = _as_json(manifest)
    assert schema_accepts(data)
    assert schema_accepts(_in_full(manifest))  # every field written, defaults and nulls too


def _in_full(value: Any) -> Any:
    """`value` as plain data with every field present (encoding omits defaults)."""
    if isinstance(value, msgspec.Struct):
        return {
            f.encode_name: _in_full(getattr(value, f.name)) for f in msgspec.structs.fields(value)
        }
    if isinstance(value, tuple):
        return [_in_full(item) for item in value]
    return value


NODE_TYPES = ("vm", "ct", "pve")


@st.composite
def schema_stage_mutations(draw: st.DrawFn) -> dict[str, Any]:
    """A valid manifest with one mistake pveplan's schema stage refuses."""
    data = _as_json(draw(manifests()))
    node = draw(st.sampled_from(data["nodes"]))
    kind = draw(
        st.sampled_from(["unknown key", "bad type", "vmid out of range", "missing key", "settings"])
    )
    if kind == "unknown key":
        key = draw(st.text(min_size=1, max_size=20).filter(lambda k: k not in FIELDS[Node]))
        node[key] = draw(st.one_of(st.none(), st.integers(), st.text(max_size=5)))
    elif kind == "bad type":
        node["type"] = draw(st.text(max_size=12).filter(lambda t: t not in NODE_TYPES))
    elif kind == "vmid out of range":
        node["vmid"] = draw(st.integers(max_value=99) | st.integers(min_value=1_000_000_000))
    elif kind == "missing key":
        del node[draw(st.sampled_from(["name", "type"]))]
    else:
        key = draw(st.text(min_size=1, max_size=20).filter(lambda k: k not in FIELDS[Settings]))
        data.setdefault("settings", {})[key] = True
    return data


@given(schema_stage_mutations())
def test_schema_stage_rejections_are_schema_rejections(data: dict[str, Any]) -> None:
    assert not model_accepts(data)
    assert loader_refuses(data)
    assert not schema_accepts(data)


# Any JSON value but integral floats (the known gap above), with the boundaries of the
# model's ranges and the members of its enums over-represented.
_BOUNDARIES = [0, 1, 2, 15, 16, 99, 100, 1000, 1001, 1024, 1025, 86_400, 86_401, 1_000_000]
_BOUNDARIES += [1_000_001, 16_777_216, 16_777_217, 999_999_999, 1_000_000_000, 2**63, 2**64]
_WORDS = ["vm", "ct", "pve", "push", "pull", "flat", "tiered", "stop", "rollback", "continue"]
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(_BOUNDARIES),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
    st.text(max_size=12),
    st.from_regex(r"[A-Za-z0-9._ -]{0,66}", fullmatch=True),
    st.sampled_from([*_WORDS, "2", "edge", "-edge", "edge-"]),
)
_ALL_KEYS = sorted({name for names in FIELDS.values() for name in names})
json_values = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(_ALL_KEYS) | st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def one_edit(draw: st.DrawFn) -> dict[str, Any]:
    """A valid manifest with one key, anywhere, set to any JSON value or removed."""
    data = _as_json(draw(manifests()))
    node_index = draw(st.integers(0, len(data["nodes"]) - 1))
    where, model = draw(
        st.sampled_from(
            [
                ((), Manifest),
                (("settings",), Settings),
                (("execution",), Execution),
                (("nodes", node_index), Node),
                (("nodes", node_index, "execution"), NodeExecution),
            ]
        )
    )
    target: Any = data
    for part in where:
        target = target.setdefault(part, {}) if isinstance(part, str) else target[part]
    key = draw(st.sampled_from(FIELDS[model]) | st.text(max_size=12))
    if draw(st.booleans()) and key in target:
        del target[key]
    else:
        target[key] = draw(json_values)
    return data


@given(one_edit())
def test_schema_and_model_agree_on_any_single_edit(data: dict[str, Any]) -> None:
    """Whatever one edit does, the schema accepts exactly what pveplan's schema stage does."""
    accepted = model_accepts(data)
    assert schema_accepts(data) == accepted
    if not accepted:
        assert loader_refuses(data)
