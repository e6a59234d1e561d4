"""YAML v2 manifests: homestak's files load; everything else is refused at file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from pveplan.dsl import DslError, load_yaml
from pveplan.dsl._yaml import MAX_EXPANDED_VALUES

from .conftest import HOMESTAK_MANIFESTS, errors_of, load_text

N1 = """\
schema_version: 2
name: n1
nodes:
  - name: edge
    type: vm
    preset: vm-small
    image: debian-12
    vmid: 99001
"""


@pytest.mark.parametrize("path", sorted(HOMESTAK_MANIFESTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_homestak_manifest_loads(path: Path) -> None:
    from pveplan.dsl import load_manifest

    loaded = load_manifest(str(path))
    assert loaded.manifest.schema_version == 2
    assert loaded.manifest.name == path.stem
    assert not [w for w in loaded.warnings if w.severity == "error"]


def test_homestak_manifests_are_all_there() -> None:
    assert len(list(HOMESTAK_MANIFESTS.glob("*.yaml"))) == 9


def test_fields_and_defaults(tmp_path: Path) -> None:
    m = load_text(tmp_path, "m.yaml", N1).manifest
    assert (
        m.pattern == "flat" and m.settings.on_error == "stop" and m.execution.default_mode == "push"
    )
    node = m.nodes[0]
    assert (node.name, node.type, node.preset, node.image, node.vmid) == (
        "edge",
        "vm",
        "vm-small",
        "debian-12",
        99001,
    )
    assert node.parent is None and m.mode_of(node) == "push"


def test_unknown_key_suggests_the_closest(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "m.yaml", N1.replace("preset:", "prest:"))
    assert errors == [
        "6:5: unknown key 'prest' in nodes['edge'] | did you mean 'preset'? keys that exist: "
        "bridge, clone, cores, disk, disks, execution, host, image, memory, name, nameserver, nesting, nics, "
        "onboot, parent, preset, searchdomain, snapshot_before, spec, swap, template, type, unprivileged, "
        "user_data, vendor_data, vmid"
    ]


def test_unknown_top_level_key(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "m.yaml", N1 + "setings:\n  on_error: stop\n")
    assert errors[0].startswith(
        "9:1: unknown key 'setings' at the top level | did you mean 'settings'?"
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "vmid: 99001",
            "vmid: abc",
            "8:11: nodes['edge'].vmid: expected an integer, got the string 'abc'",
        ),
        ("vmid: 99001", "vmid: 99", "8:11: nodes['edge'].vmid: 99 is below the minimum 100"),
        (
            "vmid: 99001",
            "vmid: true",
            "8:11: nodes['edge'].vmid: expected an integer, got the boolean true",
        ),
        (
            "vmid: 99001",
            "vmid: 1.5",
            "8:11: nodes['edge'].vmid: expected an integer, got the number 1.5",
        ),
        ("type: vm", "type: vn", "5:11: nodes['edge'].type: the string 'vn' is not allowed"),
        ("name: n1", "name: [n1]", "2:7: name: expected a string, got a list"),
        (
            "schema_version: 2",
            "schema_version: 3",
            "1:17: schema_version: the integer 3 is not allowed",
        ),
        (
            "name: edge",
            "name: edge_1",
            "4:11: nodes['edge_1'].name: 'edge_1' is not a valid DNS label",
        ),
    ],
)
def test_wrong_types_and_values_are_located(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    errors = errors_of(tmp_path, "m.yaml", N1.replace(old, new))
    assert errors[0].split(" | ")[0] == expected


def test_enum_error_suggests_allowed_values(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "m.yaml", N1 + "settings:\n  on_error: rolback\n")
    assert errors == [
        "10:13: settings.on_error: the string 'rolback' is not allowed | "
        "did you mean 'rollback'? values that exist: continue, rollback, stop"
    ]


def test_missing_required_keys(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "m.yaml", "schema_version: 2\nnodes:\n  - name: a\n")
    assert errors == [
        "1:1: manifest: missing required key 'name'",
        "3:5: nodes['a']: missing required key 'type'",
    ]


def test_every_error_is_reported_not_just_the_first(tmp_path: Path) -> None:
    text = N1.replace("vmid: 99001", "vmid: 5\n    disk: 0\n    colour: red")
    assert len(errors_of(tmp_path, "m.yaml", text)) == 3


TWO = """\
schema_version: 2
name: two
pattern: tiered
nodes:
  - name: root
    type: pve
    image: pve-9
    vmid: 100
  - name: leaf
    type: vm
    image: debian-12
    vmid: 101
    parent: root
"""


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("name: leaf", "name: root", "9:11: duplicate node name 'root' | first defined at"),
        ("name: leaf", "name: ROOT", "9:11: duplicate node name 'ROOT' | first defined at"),
        ("vmid: 101", "vmid: 100", "12:11: vmid 100 of 'leaf' is already used by 'root'"),
        (
            "parent: root",
            "parent: rot",
            "13:13: node 'leaf' has unknown parent 'rot' | did you mean 'root'?",
        ),
        ("parent: root", "parent: leaf", "13:13: node 'leaf' names itself as its parent"),
        (
            "type: pve",
            "type: vm",
            "13:13: node 'leaf' has parent 'root' of type 'vm' | only pve nodes can have children",
        ),
        ("    image: debian-12\n", "", "9:5: node 'leaf' of type 'vm' needs an image"),
    ],
)
def test_tree_rules(tmp_path: Path, old: str, new: str, expected: str) -> None:
    errors = errors_of(tmp_path, "m.yaml", TWO.replace(old, new, 1))
    assert any(e.startswith(expected) for e in errors), errors


def test_parent_cycle(tmp_path: Path) -> None:
    text = TWO.replace("    vmid: 100\n", "    vmid: 100\n    parent: leaf\n").replace(
        "type: vm", "type: pve"
    )
    errors = errors_of(tmp_path, "m.yaml", text)
    assert any(
        "parent cycle: root -> leaf -> root" in e or "parent cycle: leaf -> root -> leaf" in e
        for e in errors
    ), errors


def test_flat_pattern_with_parents_is_a_warning(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, "m.yaml", TWO.replace("pattern: tiered", "pattern: flat"))
    assert [w.summary for w in loaded.warnings] == [
        "pattern is 'flat' but node 'leaf' has a parent"
    ]


def test_v1_manifest_says_how_to_convert(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "m.yaml", "name: old\nlevels:\n  - name: a\n")
    assert errors[0].startswith("2:1: this is a schema v1 manifest (levels:)")
    assert "schema_version: 2" in errors[0] and "parent:" in errors[0]


def test_duplicate_yaml_keys_are_errors(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "m.yaml", N1 + "name: again\n")
    assert errors == ["9:1: duplicate key 'name' | each key may appear once per mapping"]


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "m.yaml", "schema_version: 2\nname: [oops\n")
    assert errors[0].startswith("3:1: YAML syntax error")


def test_not_a_mapping(tmp_path: Path) -> None:
    assert errors_of(tmp_path, "m.yaml", "- just\n- a list\n")[0].startswith(
        "1:1: a manifest must be a mapping"
    )


def test_empty_file(tmp_path: Path) -> None:
    assert errors_of(tmp_path, "m.yaml", "")[0].startswith("1:1: a manifest must be a mapping")


@pytest.mark.parametrize("opener", ["[", "{a: ", "- "])
def test_deep_nesting_is_refused_safely_with_a_position(opener: str) -> None:
    # libyaml's composer segfaults around 100,000 levels. Whoever refuses the input first
    # (our depth bound, or a libyaml new enough to bound depth itself), it must be a
    # located DslError, never a crash, and the position must lie inside the input.
    closer = {"[": "]", "{a: ": "}", "- ": ""}[opener]
    depth = 200_000 if opener != "- " else 2_000
    if opener == "- ":
        text = "".join("  " * i + "-\n" for i in range(depth)) + "  " * depth + "x\n"
    else:
        text = opener * depth + "x" + closer * depth
    with pytest.raises(DslError) as info:
        load_yaml(text, "deep.yaml")
    (diagnostic,) = info.value.diagnostics
    location = diagnostic.location
    assert location is not None and location.file == "deep.yaml"
    lines = text.split("\n")
    assert 1 <= location.line <= len(lines)
    assert 1 <= location.col <= len(lines[location.line - 1]) + 1
    # Refused near the top, long before the depth that overflows libyaml's stack.
    offset = sum(len(line) + 1 for line in lines[: location.line - 1]) + location.col - 1
    assert offset < len(text) // 20


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    with pytest.raises(DslError) as info:
        load_yaml("\n".join(lines) + "\n", "bomb.yaml")
    assert f"expand to more than {MAX_EXPANDED_VALUES:,}" in info.value.summary


def test_aliases_and_merge_keys_work() -> None:
    text = "schema_version: 2\nname: m\nx-small: &small {type: vm, preset: vm-small, image: debian-12}\nnodes: []\n"
    data, _ = load_yaml(text + "more: {<<: *small, vmid: 101}\n", "a.yaml")
    assert data["more"] == {"type": "vm", "preset": "vm-small", "image": "debian-12", "vmid": 101}


def test_yaml_11_booleans_as_homestak_reads_them() -> None:
    data, _ = load_yaml("a: yes\nb: off\nc: '1'\nd: 0x10\n", "b.yaml")
    assert data == {"a": True, "b": False, "c": "1", "d": 16}


def test_positions_of_values_and_keys() -> None:
    _, smap = load_yaml(N1, "p.yaml")
    assert smap.values[("nodes", 0, "vmid")] == ("p.yaml", 8, 11)
    assert smap.keys[("nodes", 0, "vmid")] == ("p.yaml", 8, 5)
    loc = smap.locate(("nodes", 0, "vmid"))
    assert loc is not None and loc.source_line == "    vmid: 99001"


def test_invalid_utf8_is_located(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "m.yaml", b"schema_version: 2\nname: \xff\xfe\n")
    assert errors[0].startswith("2:7: file is not valid UTF-8 (byte 0xff)")


def test_control_characters_are_refused(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "m.yaml", "schema_version: 2\nname: a\x00b\n")
    assert errors[0].startswith("2:8: control character U+0000")
