"""`validate` reports every independent mistake in one pass, each once, in source order.

One stage's errors (the schema, the tree rules) used to stop the next (the tree rules,
the site-config lookups): a manifest with an unknown parent never had its presets
checked. These tests write manifests with many independent mistakes, in both front ends,
and want exactly one diagnostic per mistake, at its position, and none caused only by
another (a child of a refused node is not also "of unknown parent").
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pveplan import dsl
from pveplan.planner.siteconfig import load_site_config, resolve_manifest

from ..cli_runner import run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "site-config"

# A spec with two mistakes of its own: both reported, once, though two nodes name it.
BROKEN_SPEC = """\
schema_version: 1
access:
  posture: prd
  users:
    - name: homestak
      ssh_keys: [exmaple]
"""

# Every line marked `# !` holds one independent mistake, at the value after the key (or
# at the key, marked `# !key`). Children of `a` (unknown parent) and of `h` (refused
# type) are right in themselves, so they must not be reported too.
YAML_MANIFEST = """\
schema_version: 2
name: many
pattern: tiered
colour: blue  # !key
nodes:
  - name: root-pve
    type: pve
    spec: pve
    preset: vm-large
    image: pve-9
    vmid: 99011
  - name: a
    type: pve
    image: pve-9
    vmid: 99021
    parent: nosuch  # !
  - name: a-child
    type: vm
    image: debian-12
    parent: a
  - name: b
    type: vm
    preset: vm-smal  # !
    image: debian-12
    parent: root-pve
  - name: c
    type: vm
    spec: bsae  # !
    image: debian-12
  - name: d
    type: vm
    image: debian-13x  # !
    vmid: 99030
  - name: e
    type: vm
    image: debian-12
    vmid: 99030  # !
  - name: c  # !
    type: vm
    image: debian-12
  - name: f
    type: vm
    spec: broken
    image: debian-12
  - name: g
    type: vm
    spec: broken
    image: debian-12
    vmid: 5  # !
  - name: h
    type: pvee  # !
    image: pve-9
  - name: h-child
    type: vm
    image: debian-12
    parent: h
  - name: i
    type: vm
    image: [debian-12]  # !
"""

PVP_MANIFEST = """\
manifest "many" {
  pattern = "tiered"
  colour = "blue"  # !key

  node "root-pve" {
    type = "pve"
    spec = "pve"
    preset = "vm-large"
    image = "pve-9"
    vmid = 99011

    node "b" {
      type = "vm"
      preset = "vm-smal"  # !
      image = "debian-12"
    }
  }
  node "a" {
    type = "pve"
    image = "pve-9"
    vmid = 99021
    parent = "nosuch"  # !

    node "a-child" { type = "vm"  image = "debian-12" }
  }
  node "c" {
    type = "vm"
    spec = "bsae"  # !
    image = "debian-12"
  }
  node "d" {
    type = "vm"
    image = "debian-13x"  # !
    vmid = 99030
  }
  node "e" {
    type = "vm"
    image = "debian-12"
    vmid = 99030  # !
  }
  node "c" { type = "vm"  image = "debian-12" }  # !
  node "f" { type = "vm"  spec = "broken"  image = "debian-12" }
  node "g" {
    type = "vm"
    spec = "broken"
    image = "debian-12"
    vmid = 5  # !
  }
  node "h" {
    type = "pvee"  # !
    image = "pve-9"

    node "h-child" { type = "vm"  image = "debian-12" }
  }
  node "i" {
    type = "vm"
    image = ["debian-12"]  # !
  }
}
"""

# (line, column) of the two mistakes in specs/broken.yaml: posture, then the ssh key id.
SPEC_MISTAKES = [(3, 12), (6, 18)]


def marked(text: str) -> list[tuple[int, int]]:
    """Where each `# !` line's mistake is: its value (or a .pvp node's name, or the key)."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        code, _, mark = line.partition("# !")
        if mark.strip() == "key":
            out.append((number, len(code) - len(code.lstrip()) + 1))
        elif line.rstrip().endswith("# !"):
            if code.lstrip().startswith("node "):  # a .pvp node block: its name
                out.append((number, code.index('"') + 1))
            else:
                sep = "=" if "=" in code and ":" not in code.split("=")[0] else ":"
                key, _, value = code.partition(sep)
                start = len(key) + 1
                out.append((number, start + len(value) - len(value.lstrip()) + 1))
    return out


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site-config"
    shutil.copytree(EXAMPLES, root)
    (root / "specs" / "broken.yaml").write_text(BROKEN_SPEC)
    return root


def validate_json(site: Path, path: Path) -> list[dict[str, object]]:
    code, out, _ = run_cli(["validate", "--json", "--site-config", str(site), str(path)])
    assert code == 1
    (result,) = json.loads(out)["manifests"]
    assert result["valid"] is False
    return result["diagnostics"]


@pytest.mark.parametrize(
    ("name", "text"), [("many.yaml", YAML_MANIFEST), ("many.pvp", PVP_MANIFEST)]
)
def test_every_independent_mistake_is_reported_once_in_source_order(
    site: Path, name: str, text: str
) -> None:
    path = site / "manifests" / name
    path.write_text(text)
    diags = validate_json(site, path)
    errors = [d for d in diags if d["severity"] == "error"]
    in_manifest = [(d["line"], d["col"]) for d in errors if d["file"] == str(path)]
    in_spec = [(d["line"], d["col"]) for d in errors if str(d["file"]).endswith("broken.yaml")]
    assert in_manifest == marked(text)  # all of them, nothing else, in source order
    assert in_spec == SPEC_MISTAKES
    assert len(errors) == len(in_manifest) + len(in_spec)
    assert errors[: len(in_manifest)] == [d for d in errors if d["file"] == str(path)]


def test_the_marker_reader_finds_what_is_marked() -> None:
    """The expected positions above come from `marked`; check it on known lines."""
    text = 'a: 1\nkey: value  # !\n  node "x" { }  # !\n  k = "v"  # !\n  bad: 1  # !key\n'
    assert marked(text) == [(2, 6), (3, 8), (4, 7), (5, 3)]


def test_a_missing_site_config_still_reports_the_manifest_s_own_mistakes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(YAML_MANIFEST)
    code, _, err = run_cli(["validate", "--site-config", str(tmp_path / "nowhere"), str(path)])
    assert code == 1
    assert f"{path}:16:13: error: node 'a' has unknown parent 'nosuch'" in err
    assert "does not exist" in err
    assert "unknown preset" not in err  # nothing could be looked up


# ---- the library: load_manifest(keep_going=True), then resolve_manifest ----------------


def test_load_manifest_reports_schema_and_tree_mistakes_together(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(YAML_MANIFEST)
    with pytest.raises(dsl.DslError) as info:
        dsl.load_manifest(str(path))
    summaries = [d.summary for d in info.value.diagnostics]
    assert "unknown key 'colour' at the top level" in summaries  # the schema
    assert "node 'a' has unknown parent 'nosuch'" in summaries  # and the tree rules
    assert not any("a-child" in s or "h-child" in s for s in summaries)  # no cascade


def test_keep_going_returns_what_passed_renumbered(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(YAML_MANIFEST)
    loaded = dsl.load_manifest(str(path), keep_going=True)
    names = [n.name for n in loaded.manifest.nodes]
    assert "h" not in names and "i" in names and "g" in names  # only the refused node is out
    assert loaded.manifest.node("g").vmid is None  # its bad vmid left out, the node kept
    line = YAML_MANIFEST.splitlines().index("  - name: i") + 1
    assert loaded.source_map.locate(("nodes", names.index("i"), "name")).line == line
    assert {d.severity for d in loaded.errors} == {"error"}


def test_a_partial_manifest_is_never_resolved(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("schema_version: 2\nname: m\nextra: 1\nnodes: [{name: a, type: ct}]\n")
    loaded = dsl.load_manifest(str(path), keep_going=True)
    assert [d.summary for d in loaded.errors] == [
        "unknown key 'extra' at the top level",
        "node 'a' of type 'ct' needs a template",
    ]
    with pytest.raises(dsl.DslError) as info:  # every name resolves: the manifest's errors
        resolve_manifest(loaded, load_site_config(EXAMPLES))
    assert info.value.diagnostics == loaded.errors


def test_a_refused_value_is_not_reported_again_as_missing_or_defaulted(tmp_path: Path) -> None:
    """A refused pattern is not 'flat' (no flat-with-parent warning); a refused template
    is not missing."""
    path = tmp_path / "m.yaml"
    path.write_text(
        "schema_version: 2\nname: m\npattern: tierd\nnodes:\n"
        "  - {name: p, type: pve, image: pve-9}\n"
        "  - {name: c, type: ct, template: 7, parent: p}\n"
    )
    loaded = dsl.load_manifest(str(path), keep_going=True)
    assert [(d.location.line, d.summary) for d in loaded.errors] == [
        (3, "pattern: the string 'tierd' is not allowed"),
        (6, "nodes['c'].template: expected a string, got the integer 7"),
    ]
    assert loaded.warnings == ()


def test_what_leaves_nothing_to_check_still_stops(tmp_path: Path) -> None:
    """A syntax error: the rest of the file has no meaning to check, so one error."""
    path = tmp_path / "m.yaml"
    path.write_text("schema_version: 2\nname: [m\nnodes: {preset: nope}\n")
    with pytest.raises(dsl.DslError) as info:
        dsl.load_manifest(str(path), keep_going=True)
    assert len(info.value.diagnostics) == 1 and "YAML" in info.value.summary


# ---- property: k random independent mistakes give k diagnostics at their places ------

KINDS = ("preset", "spec", "image", "parent", "name", "vmid")


@st.composite
def broken_manifests(draw: st.DrawFn) -> tuple[list[dict[str, object]], dict[int, str]]:
    """Valid nodes (a pve root, a vm, then vm leaves), and mistakes for some leaves.

    The first two nodes are never broken: a duplicated name or vmid copies the vm's, so
    the copy is always the later one, where the error belongs. Only leaves are broken,
    so no mistake changes what another node's parent is.
    """
    count = draw(st.integers(3, 9))
    nodes: list[dict[str, object]] = [
        {"name": "root-pve", "type": "pve", "spec": "pve", "image": "pve-9", "vmid": 99000},
        {"name": "first", "type": "vm", "image": "debian-12", "vmid": 99001},
    ]
    for i in range(2, count):
        node: dict[str, object] = {"name": f"w{i}", "type": "vm", "image": "debian-12"}
        if draw(st.booleans()):
            node["preset"] = "vm-small"
        if draw(st.booleans()):
            node["spec"] = "base"
        node["vmid"] = 99000 + i
        if draw(st.booleans()):
            node["parent"] = "root-pve"
        nodes.append(node)
    targets = draw(st.lists(st.integers(2, count - 1), min_size=1, max_size=4, unique=True))
    mistakes = {t: draw(st.sampled_from(KINDS)) for t in targets}
    for target, kind in mistakes.items():
        node = nodes[target]
        node[kind] = {
            "preset": f"vm-nope{target}",
            "spec": f"nope{target}",
            "image": f"nope-{target}",
            "parent": f"nobody{target}",
            "name": "first",
            "vmid": 99001,
        }[kind]
    return nodes, mistakes


def render(
    nodes: list[dict[str, object]], suffix: str
) -> tuple[str, dict[tuple[int, str], tuple[int, int]]]:
    """The manifest text, and where each (node, field) value starts (line, column)."""
    lines: list[str] = []
    where: dict[tuple[int, str], tuple[int, int]] = {}
    if suffix == ".yaml":
        lines += ["schema_version: 2", "name: prop", "pattern: tiered", "nodes:"]
        for i, node in enumerate(nodes):
            for j, (key, value) in enumerate(node.items()):
                prefix = ("  - " if j == 0 else "    ") + f"{key}: "
                where[(i, key)] = (len(lines) + 1, len(prefix) + 1)
                lines.append(prefix + str(value))
    else:
        lines += ['manifest "prop" {', '  pattern = "tiered"']
        for i, node in enumerate(nodes):
            where[(i, "name")] = (len(lines) + 1, len("  node ") + 1)
            lines.append(f'  node "{node["name"]}" {{')
            for key, value in node.items():
                if key == "name":
                    continue
                prefix = f"    {key} = "
                where[(i, key)] = (len(lines) + 1, len(prefix) + 1)
                lines.append(prefix + (str(value) if isinstance(value, int) else f'"{value}"'))
            lines.append("  }")
        lines.append("}")
    return "\n".join(lines) + "\n", where


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_manifests(), st.sampled_from([".yaml", ".pvp"]))
def test_each_injected_mistake_is_reported_where_it_is(
    case: tuple[list[dict[str, object]], dict[int, str]], suffix: str
) -> None:
    nodes, mistakes = case
    text, where = render(nodes, suffix)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"prop{suffix}"
        path.write_text(text)
        # Anything but a diagnostic (a bug) escapes `main` as an exception and fails here.
        diags = validate_json(EXAMPLES, path)
    found = [(d["line"], d["col"]) for d in diags]
    expected = sorted(where[(target, kind)] for target, kind in mistakes.items())
    assert found == expected, text  # one each, at its place, in source order, nothing more
    assert {d["severity"] for d in diags} == {"error"}
