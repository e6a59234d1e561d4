"""A one-field manifest change moves only its own node's lines in the committed plan file.

The issue's requirement: "Changing one field of one node in a manifest must change only the
lines of that node's steps and the hash lines of the subplans that enclose it in the
committed plan file (no reordering, no churn)." Plan files are reviewed as line diffs in
pull requests, so the tests compare the encoded files line by line (`difflib`), and map
every changed line to the JSON value it belongs to (which step, which arg, which subplan).

Manifests are YAML v2 written with `yaml.safe_dump(..., sort_keys=False)` for both the base
and the edited version, and an edit only replaces a value the base already writes: no
manifest line moves, so the header's `sources` (manifest positions of step args) must not
change either.

Format /2 writes each step on one line (no step hash: readers compute it) and the values
steps share once, in `templates`. Allowed to change, for an edit of node N whose ancestors
are A1 (root) .. Ak (N's parent):

- the line of any step `node.N.*` (its own args, or which template it uses);
- a `templates` entry that a step of N uses before or after the edit (an entry appears or
  goes when N is the only step with that shared part);
- the line of each `node.Ai.delegate` step (its `subplan` arg), and the `hash` of each
  enclosing subplan, of the plan and of the file (the Merkle path to the root);
- the header's `manifest_digest` and the manifest file's digest in `manifest_files`.

Nothing else: no sibling's or ancestor's other steps, no image step, no `sources` line
(but a `preset` edit's own: the sizes it gives point into the new preset's file).
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as st

from pveplan.dsl import load_manifest
from pveplan.planner._plan import Step
from pveplan.planner._planfile import decode_plan_file, encode_plan_file
from pveplan.planner._planning import build_plan_file
from pveplan.planner.siteconfig import SiteConfig, load_site_config, resolve_manifest
from tests._tiers import examples

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "site-config"
HOST = "sim"

# Three levels of nesting, siblings at every level (one in pull mode), and a flat root VM
# beside the tree. Every node writes every edited field, so any field of any node can be
# changed in place.
TIERED = """\
schema_version: 2
name: churn-tiered
description: pve in pve, vms at every level, a flat sibling
pattern: tiered
nodes:
- name: outer-pve
  type: pve
  spec: pve
  preset: vm-large
  image: pve-9
  vmid: 99100
  cores: 4
  memory: 8192
  disk: 64
- name: mid-pve
  type: pve
  spec: pve
  preset: vm-medium
  image: pve-9
  vmid: 99110
  cores: 2
  memory: 4096
  disk: 32
  parent: outer-pve
- name: monitor
  type: vm
  spec: base
  preset: vm-small
  image: debian-13
  vmid: 99111
  cores: 1
  memory: 1024
  disk: 8
  parent: outer-pve
- name: app-a
  type: vm
  spec: base
  preset: vm-small
  image: debian-12
  vmid: 99121
  cores: 2
  memory: 2048
  disk: 10
  parent: mid-pve
- name: app-b
  type: vm
  spec: base
  preset: vm-xsmall
  image: debian-12
  vmid: 99122
  cores: 1
  memory: 1024
  disk: 8
  parent: mid-pve
  execution:
    mode: pull
- name: side-vm
  type: vm
  spec: base
  preset: vm-small
  image: debian-13
  vmid: 99130
  cores: 2
  memory: 2048
  disk: 12
"""

EXAMPLE_MANIFESTS = ("n3-deep", "n2-tiered", "workers-20", "lab")
EDITED_FIELDS = ("memory", "cores", "disk", "vmid", "spec", "preset")
# Fields whose edit only replaces values in the plan file. `spec` is the exception: the
# specs differ in list lengths (packages, services) and in `pve` (null or an object), so
# it legitimately inserts and deletes lines -- but only inside the node's own steps.
SAME_SHAPE_FIELDS = frozenset(EDITED_FIELDS) - {"spec"}
SIZE_FIELDS = ("cores", "memory", "disk")
# The model's bounds (dsl/_model.py: Cores, MemoryMb, DiskGb, VmId).
BOUNDS = {
    "cores": (1, 1024),
    "memory": (16, 16_777_216),
    "disk": (1, 1_000_000),
    "vmid": (100, 999_999_999),
}

Path_ = tuple[str | int, ...]


# ---- building plan files ------------------------------------------------------------------


class Planner:
    """Manifest data -> plan file text, in-process, against one loaded site config."""

    def __init__(self, site: SiteConfig, workdir: Path) -> None:
        self.site = site
        self.workdir = workdir
        self.cache: dict[str, str] = {}  # manifest text -> plan file text (bases repeat)

    def plan_text(self, data: dict[str, Any], tag: str, text: str | None = None) -> str:
        """The plan file of manifest `data` (written as `text`, default `dump(data)`)."""
        text = dump(data) if text is None else text
        if text not in self.cache:
            self.cache[text] = self._plan(text, data["name"], tag)
        return self.cache[text]

    def _plan(self, text: str, name: str, tag: str) -> str:
        # The same file name for base and edit (under different directories): the header
        # keys `manifest_files` by the path relative to the manifest's directory.
        folder = self.workdir / tag
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.yaml"
        path.write_text(text)
        loaded = load_manifest(str(path))
        resolved = resolve_manifest(loaded, self.site, HOST)
        plan_file = build_plan_file(loaded, resolved, self.site, HOST, planned_against=None)
        return encode_plan_file(plan_file).decode()


def dump(data: dict[str, Any]) -> str:
    """`yaml.safe_dump(data, sort_keys=False)`, with libyaml when there is one (faster)."""
    return yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)


@pytest.fixture(scope="module")
def planner(tmp_path_factory: pytest.TempPathFactory) -> Planner:
    root = tmp_path_factory.mktemp("churn")
    site_root = root / "site-config"
    shutil.copytree(EXAMPLES, site_root)  # its secrets.yaml holds dummies: fine for digests
    workdir = root / "manifests"
    workdir.mkdir()
    return Planner(load_site_config(site_root), workdir)


def example(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / "manifests" / f"{name}.yaml").read_text())


BASES: dict[str, dict[str, Any]] = {
    **{name: example(name) for name in EXAMPLE_MANIFESTS},
    "churn-tiered": yaml.safe_load(TIERED),
}
SPECS = sorted(p.stem for p in (EXAMPLES / "specs").glob("*.yaml"))
PRESETS = {p.stem: yaml.safe_load(p.read_text()) for p in (EXAMPLES / "presets").glob("*.yaml")}


# ---- the JSON path of every line ----------------------------------------------------------


@functools.lru_cache(maxsize=16)
def line_paths(text: str) -> tuple[Path_, ...]:
    """The JSON path of the value each line of a pretty plan file holds, opens or closes.

    Relies on the plan-file layout (one key or list item per line, containers opened at
    the end of a line and closed on a line of their own), which is part of the format.
    """
    decoder = json.JSONDecoder()
    stack: list[list[Any]] = []  # [path of the container, is a list, next index]
    paths: list[Path_] = []
    for line in text.splitlines():
        body = line.strip().removesuffix(",")
        if body in ("}", "]"):
            paths.append(stack.pop()[0])
            continue
        value = body
        path: Path_ = ()
        if stack:
            top = stack[-1]
            if top[1]:
                path = (*top[0], top[2])
                top[2] += 1
            else:
                key, end = decoder.raw_decode(body)
                assert body[end : end + 2] == ": ", line
                path = (*top[0], key)
                value = body[end + 2 :]
        if value in ("{", "["):
            stack.append([path, value == "[", 0])
        paths.append(path)
    assert not stack
    return tuple(paths)


def describe(path: Path_, doc: dict[str, Any]) -> str:
    """A line's place: `node.x.create: args.memory`, `plan/node.p.delegate: hash`, ...

    Steps are named by address (unique in the whole tree, except `image.*`, which get
    their plan's name in front); plan-level lines by the chain of delegates down to them.
    """
    if not path:
        return "file: {}"
    if path[0] == "templates" and len(path) > 1:
        return f"template {path[1]}: " + ".".join(map(str, path[2:]))
    if path[0] != "plan":
        return f"{'file' if len(path) == 1 else path[0]}: " + ".".join(map(str, path[1:] or path))
    plan, chain, rest = doc["plan"], ["plan"], list(path[1:])
    while len(rest) >= 2 and rest[0] == "subplans":
        plan = plan["subplans"][rest[1]]
        chain.append(str(rest[1]))
        rest = rest[2:]
    if len(rest) >= 2 and rest[0] == "steps":
        address = plan["steps"][rest[1]]["address"]
        if address.startswith("image."):
            address = "/".join(chain) + ":" + address
        return f"{address}: " + ".".join(map(str, rest[2:]))
    return "/".join(chain) + ": " + ".".join(map(str, rest))


def ancestors(data: dict[str, Any], node: str) -> list[str]:
    """The node's ancestors, root first."""
    parents = {n["name"]: n.get("parent") for n in data["nodes"]}
    chain: list[str] = []
    parent = parents[node]
    while parent is not None:
        chain.insert(0, parent)
        parent = parents[parent]
    return chain


def merkle_path(data: dict[str, Any], node: str) -> set[str]:
    """The lines that must change above an edited node: its delegates' lines (their
    `subplan` arg), the enclosing subplans' hashes, the plan's, the file's, and the manifest
    digests in the header (the header is not hashed, but records what was read)."""
    lines = {
        "file: hash",
        "plan: hash",
        "header: manifest_digest",
        f"header: manifest_files.{data['name']}.yaml",
    }
    chain = ["plan"]
    for parent in ancestors(data, node):
        delegate = f"node.{parent}.delegate"
        lines.add(f"{delegate}: ")
        chain.append(delegate)
        lines.add("/".join(chain) + ": hash")
    return lines


def own(line: str, node: str) -> bool:
    return line.startswith(f"node.{node}.")


def templates_of(doc: dict[str, Any], node: str) -> set[str]:
    """The `templates` entries (as `describe` names them) that the steps of `node` use."""
    plans, keys = [doc["plan"]], set()
    while plans:
        plan = plans.pop()
        keys |= {s["template"] for s in plan["steps"] if own(s["address"], node)}
        plans.extend(plan.get("subplans", {}).values())
    return {f"template {key}" for key in keys}


def model_step(text: str, address: str) -> Step:
    """The step at `address` anywhere in the plan tree, as the reader decodes it."""
    for _, found in decode_plan_file(text.encode(), "plan.json").plan.walk():
        if found.address == address:
            return found
    raise KeyError(address)


# ---- the diff -----------------------------------------------------------------------------


class LineDiff:
    """The line diff of two plan files, each changed line described by its JSON place."""

    def __init__(self, before: str, after: str) -> None:
        self.before_text, self.after_text = before, after
        self.before, self.after = before.splitlines(), after.splitlines()
        self.before_paths, self.after_paths = line_paths(before), line_paths(after)
        self.before_doc, self.after_doc = json.loads(before), json.loads(after)
        before_doc, after_doc = self.before_doc, self.after_doc
        # Common head and tail first (cheap, and the same result): difflib without its
        # autojunk heuristic is slow on the many repeated lines (`},`) of a big plan file.
        head = 0
        limit = min(len(self.before), len(self.after))
        while head < limit and self.before[head] == self.after[head]:
            head += 1
        tail = 0
        while tail < limit - head and self.before[-1 - tail] == self.after[-1 - tail]:
            tail += 1
        matcher = difflib.SequenceMatcher(
            None,
            self.before[head : len(self.before) - tail],
            self.after[head : len(self.after) - tail],
            autojunk=False,
        )
        self.opcodes = [
            (tag, i1 + head, i2 + head, j1 + head, j2 + head)
            for tag, i1, i2, j1, j2 in matcher.get_opcodes()
            if tag != "equal"
        ]
        self.removed: list[tuple[int, str]] = []  # (line number, description)
        self.added: list[tuple[int, str]] = []
        for _, i1, i2, j1, j2 in self.opcodes:
            self.removed += [
                (i + 1, describe(self.before_paths[i], before_doc)) for i in range(i1, i2)
            ]
            self.added += [(j + 1, describe(self.after_paths[j], after_doc)) for j in range(j1, j2)]

    @property
    def changed(self) -> set[str]:
        return {d for _, d in self.removed} | {d for _, d in self.added}

    def changed_steps(self) -> set[str]:
        return {d.split(": ")[0] for d in self.changed if d.startswith("node.")}

    def unified(self) -> str:
        return "".join(
            difflib.unified_diff(self.before, self.after, "base", "edited", n=1, lineterm="\n")
        )

    def churn(self, allowed: set[str], node: str) -> list[str]:
        """Changed lines that are neither the node's own nor on its Merkle path, and
        `templates` entries added, dropped or changed that no step of the node uses. (The
        table is compared as JSON: its entries share many equal lines, so a line diff may
        pair an added entry's lines with a neighbour's.)"""
        templates = templates_of(self.before_doc, node) | templates_of(self.after_doc, node)
        before, after = self.before_doc["templates"], self.after_doc["templates"]
        moved = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        bad = [f"template {k}" for k in sorted(moved) if f"template {k}" not in templates]

        def fine(d: str) -> bool:
            return own(d, node) or d in allowed or d.startswith("template ")

        bad += [f"-{n}: {d}" for n, d in self.removed if not fine(d)]
        bad += [f"+{n}: {d}" for n, d in self.added if not fine(d)]
        return bad

    def changed_args(self, address: str) -> set[str]:
        """The args of the step at `address` whose value changed, as decoded."""
        before = model_step(self.before_text, address).args
        after = model_step(self.after_text, address).args
        return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


ADDRESS = re.compile(r'"address": "([^"]+)"')


def check_edit(
    planner: Planner, base: dict[str, Any], index: int, field: str, value: Any
) -> LineDiff:
    """Edit one field of one node; assert the plan file's line diff is exactly local."""
    edited = copy.deepcopy(base)
    node = edited["nodes"][index]
    name = node["name"]
    assert field in node and node[field] != value, "edits replace a value the base writes"
    node[field] = value
    base_text, edited_text = dump(base), dump(edited)
    changed_yaml = [
        (a, b)
        for a, b in zip(base_text.splitlines(), edited_text.splitlines(), strict=True)
        if a != b
    ]
    assert len(changed_yaml) == 1, changed_yaml  # one manifest line, in place
    before = planner.plan_text(base, "base", base_text)
    after = planner.plan_text(edited, "edited", edited_text)
    diff = LineDiff(before, after)
    context = f"{base['name']}: {name}.{field} {base['nodes'][index][field]!r} -> {value!r}"

    # 1. Shape. A same-shape edit only replaces lines in place: equal line counts in every
    # hunk, and the JSON path of every line is the same before and after (so nothing
    # moved, nothing was reordered). A `spec` edit may grow or shrink the node's lists,
    # but outside the node's own steps the file's shape must be identical.
    if field in SAME_SHAPE_FIELDS - {"preset"}:
        odd = [op for op in diff.opcodes if op[0] != "replace" or op[2] - op[1] != op[4] - op[3]]
        assert not odd, f"{context}: lines inserted/deleted/moved: {odd}\n{diff.unified()}"
        assert diff.before_paths == diff.after_paths, context
    elif field == "preset":  # a preset file may become used or unused: its `source_files` line

        def files_apart(paths: tuple[Path_, ...]) -> list[Path_]:
            return [p for p in paths if p[:2] != ("header", "source_files")]

        assert files_apart(diff.before_paths) == files_apart(diff.after_paths), context
    else:

        def shape(paths: tuple[Path_, ...], doc: dict[str, Any]) -> list[Path_]:
            return [p for p in paths if not own(describe(p, doc), name) and p[:1] != ("templates",)]

        assert shape(diff.before_paths, diff.before_doc) == shape(
            diff.after_paths, diff.after_doc
        ), context

    addresses = ADDRESS.findall(diff.before_text)
    assert addresses == ADDRESS.findall(diff.after_text), context

    # 2. Locality: every changed line is the node's own or on its Merkle path.
    allowed = set(merkle_path(edited, name))
    if field == "preset":  # the sizes a preset gives point into the new preset's file
        allowed.add(f"header: sources.node.{name}.create")
        # The old preset's file may go from `source_files` and the new one's come (a line
        # diff also shows the entry before them, for its comma): compared as JSON here.
        files = (diff.before_doc["header"], diff.after_doc["header"])
        before_files, after_files = (h.get("source_files", {}) for h in files)
        moved = {
            k
            for k in before_files.keys() | after_files.keys()
            if before_files.get(k) != after_files.get(k)
        }
        assert moved <= {f"{base['nodes'][index]['preset']}.yaml", f"{value}.yaml"}, context
        allowed |= {"header: source_files"} | {f"header: source_files.{k}" for k in after_files}
        allowed |= {f"header: source_files.{k}" for k in before_files}
    churn = diff.churn(allowed, name)
    assert not churn, (
        f"{context}: churn outside node {name!r}:\n" + "\n".join(churn) + "\n" + diff.unified()
    )

    # 3. The edit shows, where it should. (A preset edit can be a no-op for the plan when
    # the node overrides every size the new preset changes; then nothing in the plan body
    # may change.)
    before_doc, after_doc = diff.before_doc, diff.after_doc
    create = model_step(diff.after_text, f"node.{name}.create").args
    if field in SIZE_FIELDS or field == "vmid":
        assert create[field] == value, context
    elif field == "preset":
        preset = PRESETS[value]
        for size in SIZE_FIELDS:
            assert create[size] == node.get(size, preset[size]), (context, size)
    else:  # push nodes' config.push has `spec`; pull nodes' config.await_report `spec_name`
        config = model_step(diff.after_text, f"node.{name}.config").args
        assert config.get("spec_name", config["spec"]) == value, context
    body_changed = before_doc["plan"] != after_doc["plan"]
    if body_changed:
        assert diff.changed_steps() & {f"node.{name}.create", f"node.{name}.config"}, context
        missing = merkle_path(edited, name) - diff.changed
        assert not missing, f"{context}: Merkle path lines that did not change: {sorted(missing)}"
    else:
        assert field == "preset", f"{context}: the plan body did not change"
        assert diff.changed == {
            "header: manifest_digest",
            f"header: manifest_files.{base['name']}.yaml",
        }
    return diff


# ---- the property -------------------------------------------------------------------------


@st.composite
def edits(draw: st.DrawFn) -> tuple[str, int, str, Any]:
    """(manifest, node index, field, new value): one field the node writes, a new value."""
    manifest = draw(st.sampled_from(sorted(BASES)))
    nodes = BASES[manifest]["nodes"]
    index = draw(st.integers(0, len(nodes) - 1))
    node = nodes[index]
    # Only fields the base already writes: a new key would add a manifest line and move the
    # positions recorded in the header's `sources` (legitimately, but not this test's point).
    field = draw(st.sampled_from([f for f in EDITED_FIELDS if f in node]))
    current = node[field]
    if field == "spec":
        values = st.sampled_from([s for s in SPECS if s != current])
    elif field == "preset":
        values = st.sampled_from(sorted(p for p in PRESETS if p != current))
    else:
        low, high = BOUNDS[field]
        taken = {n.get("vmid") for n in nodes} if field == "vmid" else {current}
        values = st.integers(low, high).filter(lambda v: v not in taken)
    return manifest, index, field, draw(values)


@settings(max_examples=examples(40), deadline=None)
@given(edit=edits())
def test_one_field_edit_changes_only_that_nodes_lines(
    planner: Planner, edit: tuple[str, int, str, Any]
) -> None:
    """Any manifest, node, field and value: the line diff is the node's steps + Merkle path."""
    manifest, index, field, value = edit
    event(f"field: {field}")
    event(f"manifest: {manifest}")
    check_edit(planner, BASES[manifest], index, field, value)


@pytest.mark.slow  # every value on every node: the property above samples them
def test_every_spec_and_preset_edit_is_local(planner: Planner) -> None:
    """`spec` and `preset` have few values: try every other value on every node of every
    base (specs are resolved once and shared, "whichever node names it first", so which
    node is edited matters)."""
    count = 0
    for base in BASES.values():
        for index, node in enumerate(base["nodes"]):
            for value in [s for s in SPECS if s != node["spec"]]:
                check_edit(planner, base, index, "spec", value)
                count += 1
            for value in sorted(p for p in PRESETS if p != node["preset"]):
                check_edit(planner, base, index, "preset", value)
                count += 1
    assert count == (len(SPECS) - 1 + len(PRESETS) - 1) * sum(
        len(b["nodes"]) for b in BASES.values()
    )


# ---- exact diffs, n3-deep -----------------------------------------------------------------

EDGE_CHAIN = {
    "node.leaf-pve.delegate: ",
    "node.root-pve.delegate: ",
    "file: hash",
    "plan: hash",
    "plan/node.root-pve.delegate: hash",
    "plan/node.root-pve.delegate/node.leaf-pve.delegate: hash",
    "header: manifest_digest",
    "header: manifest_files.n3-deep.yaml",
}
# The lines an edit of edge's sizes touches: its create step, and the delegates above it
# (no other step of edge: they refer to its create step, but a /2 file holds no step hash).
EDGE_STEPS = {"node.edge.create", "node.leaf-pve.delegate", "node.root-pve.delegate"}


def n3_deep(index: int = 2, **fields: Any) -> dict[str, Any]:
    """n3-deep, with one node (default `edge`, its deepest VM) given extra fields."""
    data = example("n3-deep")
    data["nodes"][index].update(fields)
    return data


SMALL = PRESETS["vm-small"]  # edge's preset


@pytest.mark.parametrize(
    ("field", "value", "edge_args"),
    [
        ("memory", 3072, {"args.memory"}),
        ("cores", 3, {"args.cores"}),
        ("disk", 12, {"args.disk"}),
        ("vmid", 99032, {"args.vmid"}),
        # vm-small -> vm-medium: memory 2048 -> 4096, disk 10 -> 20, cores 2 -> 2 (no line).
        ("preset", "vm-medium", {"args.memory", "args.disk"}),
    ],
)
def test_n3_deep_edge_edit_exact_lines(
    planner: Planner, field: str, value: Any, edge_args: set[str]
) -> None:
    """Editing the deepest VM of n3-deep changes exactly: the line of its create step (the
    edited arg), the line of the delegate at each level above it (its `subplan` arg), both
    subplans' hashes, the plan's and the file's hash, and the manifest digests in the header.
    Nothing of root-pve or leaf-pve but their delegates; no other step of edge."""
    base = n3_deep(**SMALL) if field in SIZE_FIELDS else n3_deep()
    diff = check_edit(planner, base, 2, field, value)
    expected = EDGE_CHAIN | {"node.edge.create: "}
    if field == "preset":  # the sizes now point into vm-medium.yaml instead of vm-small.yaml
        expected.add("header: sources.node.edge.create")
        # ... which no other node uses: its `source_files` entry goes (and the comma of the
        # entry before it, vm-medium.yaml, which another node uses)
        expected |= {"header: source_files.vm-small.yaml", "header: source_files.vm-medium.yaml"}
        assert len(diff.removed) == len(diff.added) + 1 == len(expected)
    else:
        assert len(diff.removed) == len(diff.added) == len(expected)  # one line each, in place
    assert diff.changed == expected, diff.unified()
    assert diff.changed_steps() == EDGE_STEPS
    assert {f"args.{a}" for a in diff.changed_args("node.edge.create")} == edge_args


def test_n3_deep_edge_spec_edit_inserts_lines_only_in_edges_steps(planner: Planner) -> None:
    """base -> pve for edge: the pve spec has more packages, services and a `pve` object, so
    edge's create (cloud-init packages) and config steps now use other templates (the ones
    the PVE hosts of n3-deep already share); above edge only the Merkle path changes."""
    diff = check_edit(planner, n3_deep(), 2, "spec", "pve")
    assert diff.changed_steps() == EDGE_STEPS | {"node.edge.config"}
    assert diff.changed >= EDGE_CHAIN
    assert (
        "proxmox-ve"
        in model_step(diff.after_text, "node.edge.create").args["cloud_init"]["packages"]
    )
    config = model_step(diff.after_text, "node.edge.config").args
    assert config["spec"] == "pve" and config["pve"]["remove_subscription_nag"] is True
    assert diff.changed_args("node.edge.config") >= {"spec", "pve", "packages", "services"}
    outside = {d for d in diff.changed if not d.startswith(("node.edge.", "template "))}
    assert outside <= EDGE_CHAIN


def test_n3_deep_root_memory_edit_touches_no_descendant(planner: Planner) -> None:
    """Editing the root PVE node changes the line of its create step, the plan's and file's
    hash -- and no line of either subplan: the children do not depend on their host's size.
    Every other step of root-pve re-runs (they refer to its create step, through the pinned
    host key), which the decoded hashes show; the file holds no step hash to churn."""
    diff = check_edit(planner, n3_deep(0, memory=8192), 0, "memory", 12288)
    assert diff.changed_steps() == {"node.root-pve.create"}
    assert not [d for d in diff.changed if d.startswith(("plan/", "node.leaf-pve", "node.edge"))]
    before = decode_plan_file(diff.before_text.encode(), "before").plan
    after = decode_plan_file(diff.after_text.encode(), "after").plan
    moved = {s.address for s in after.steps if s.hash != before.step(s.address).hash}
    assert moved == {
        f"node.root-pve.{s}"
        for s in [
            "create",
            "wait_ip",
            "start",
            "wait_ssh",
            "config",
            "bootstrap",
            "site_config",
            "driver_key",
            "next_hop_key",
            "pve_install",
            "bridge",
            "node_file",
            "api_token",
            "own_key",
            "delegate",
        ]
    }


def test_rewritten_bases_plan_like_the_examples(planner: Planner) -> None:
    """The tests edit `yaml.safe_dump`ed copies of the example manifests: they compile to the
    same plan body as the files in examples/, so the properties hold for the real examples.
    And writing a preset's sizes out explicitly does not change the plan body."""
    for name in EXAMPLE_MANIFESTS:
        original = planner.site.root / "manifests" / f"{name}.yaml"
        loaded = load_manifest(str(original))
        resolved = resolve_manifest(loaded, planner.site, HOST)
        plan_file = build_plan_file(loaded, resolved, planner.site, HOST, planned_against=None)
        rewritten = decode_plan_file(planner.plan_text(BASES[name], "base").encode(), name)
        assert plan_file.plan == rewritten.plan, name
    explicit = json.loads(planner.plan_text(n3_deep(**SMALL), "base"))
    implicit = json.loads(planner.plan_text(n3_deep(), "base"))
    assert (explicit["plan"], explicit["templates"]) == (implicit["plan"], implicit["templates"])
