"""Checks that span nodes: unique names and vmids, parents that exist, no cycles.

The schema checker sees one value at a time; these rules need the whole tree. They run
on a well-typed `Manifest`, and report at the positions the source map gives, so both
front ends share them. Every rule is one function, and each finding is independent, so a
manifest with three mistakes gets three messages.

They also run on a manifest salvaged from a schema failure (see `convert_salvaged`), so
one pass reports both kinds of mistake. A rule stays silent about what the schema
already refused: a child of a node that was left out has a parent, which is broken, not
unknown; a node whose image was left out has one, which is invalid, not missing.
"""

from __future__ import annotations

from collections.abc import Collection

from ._clones import clone_rules
from ._devices import check_devices
from ._errors import Diagnostic, Location, did_you_mean
from ._model import Manifest
from ._positions import Path, SourceMap

NEEDS_IMAGE = ("vm", "pve", "template")
# Levels of PVE hosts nested in PVE VMs. Each level runs in the one above (and costs it
# a share of its speed), so real labs stop at three or four; the limit is far beyond
# that, and below the depth where a plan's nested subplans are too deep to encode.
MAX_NESTING = 64


def validate_tree(
    manifest: Manifest,
    smap: SourceMap,
    *,
    unchecked: Collection[Path] = (),
    ghosts: Collection[str] = (),
) -> list[Diagnostic]:
    """Every cross-node problem of `manifest`, errors and warnings, in node order.

    `unchecked` are paths whose value the schema refused and left out, `ghosts` names
    of nodes it left out: both were reported already, so no rule reports them again.
    """
    found: list[Diagnostic] = []
    rules = (_unique_names, _unique_vmids, _cycles, _nesting, _hosts_on_roots, _snapshot_replace)
    for rule in rules:
        found.extend(rule(manifest, smap))
    found.extend(_parents(manifest, smap, frozenset(ghosts)))
    found.extend(_required_per_type(manifest, smap, frozenset(unchecked)))
    found.extend(clone_rules(manifest, smap, frozenset(unchecked)))
    found.extend(check_devices(manifest, smap))
    if ("pattern",) not in unchecked:  # a refused pattern is not 'flat', whatever its default
        found.extend(_pattern(manifest, smap))
    return found


def _at(smap: SourceMap, index: int, field: str | None = None) -> Location | None:
    path: tuple[str | int, ...] = ("nodes", index) if field is None else ("nodes", index, field)
    return smap.locate(path)


def _diag(
    smap: SourceMap,
    index: int,
    field: str | None,
    summary: str,
    detail: str = "",
    *,
    warning: bool = False,
) -> Diagnostic:
    return Diagnostic(
        summary=summary,
        detail=detail,
        location=_at(smap, index, field),
        severity="warning" if warning else "error",
    )


def _unique_names(manifest: Manifest, smap: SourceMap) -> list[Diagnostic]:
    # DNS labels are case-insensitive: "Edge" and "edge" would be the same host.
    seen: dict[str, int] = {}
    out = []
    for index, node in enumerate(manifest.nodes):
        key = node.name.casefold()
        if key in seen:
            first = smap.locate(("nodes", seen[key], "name"))
            here = smap.locate(("nodes", index, "name"))
            if first is not None and here is not None and str(first) == str(here):
                detail = (
                    'a loop makes nodes with one name; put the loop variable in it: node "w-${i}"'
                )
            else:
                detail = f"first defined at {first}" if first else "node names must be unique"
            out.append(_diag(smap, index, "name", f"duplicate node name {node.name!r}", detail))
        else:
            seen[key] = index
    return out


def _unique_vmids(manifest: Manifest, smap: SourceMap) -> list[Diagnostic]:
    # PVE allocates vmids per cluster, and pveplan treats every host of one manifest as
    # one cluster (nodes on `host: mother` and on the target host included): a pinned
    # vmid may appear once in the whole manifest, and the error names both places.
    seen: dict[int, int] = {}
    out = []
    for index, node in enumerate(manifest.nodes):
        if node.vmid is None:
            continue
        if node.vmid in seen:
            first = manifest.nodes[seen[node.vmid]]
            where = smap.locate(("nodes", seen[node.vmid], "vmid"))
            hosts = {first.host, node.host}
            across = " (on another host)" if len(hosts) > 1 else ""
            out.append(
                _diag(
                    smap,
                    index,
                    "vmid",
                    f"vmid {node.vmid} of {node.name!r} is already used by {first.name!r}{across}",
                    (f"{first.name!r} pins it at {where}; " if where else "")
                    + "a vmid must be unique in the cluster, and the hosts of one manifest "
                    "are one cluster: pin another vmid, or leave it out to have one allocated",
                )
            )
        else:
            seen[node.vmid] = index
    return out


def _hosts_on_roots(manifest: Manifest, smap: SourceMap) -> list[Diagnostic]:
    """`host:` places a root node; a child is created on its parent, a nested PVE host."""
    return [
        _diag(
            smap,
            index,
            "host",
            f"node {node.name!r} names host {node.host!r} but has parent {node.parent!r}",
            "a child is created on its parent; put host: on the root of its subtree",
        )
        for index, node in enumerate(manifest.nodes)
        if node.host is not None and node.parent is not None
    ]


REPLACE_SNAPSHOT = (
    "a snapshot before a replace protects nothing: PVE destroys a VM's snapshots with the "
    "VM; back the VM up first (vzdump) or keep its data on a disk of its own, and list only "
    "`resize` in snapshot_before"
)


def _snapshot_replace(manifest: Manifest, smap: SourceMap) -> list[Diagnostic]:
    """`snapshot_before: [replace]` is refused (`REPLACE_SNAPSHOT` says why and what instead)."""

    def replaces(policy: object) -> bool:
        on = getattr(policy, "changes", policy)
        return isinstance(on, tuple) and "replace" in on

    found = [
        _diag(smap, index, "snapshot_before", f"node {node.name!r}: {REPLACE_SNAPSHOT}")
        for index, node in enumerate(manifest.nodes)
        if replaces(node.snapshot_before)
    ]
    if replaces(manifest.settings.snapshot_before):
        location = smap.locate(("settings", "snapshot_before"))
        found.append(Diagnostic(summary=f"settings: {REPLACE_SNAPSHOT}", location=location))
    return found


def _parents(manifest: Manifest, smap: SourceMap, ghosts: frozenset[str]) -> list[Diagnostic]:
    by_name = {node.name: node for node in manifest.nodes}
    out = []
    for index, node in enumerate(manifest.nodes):
        if node.parent is None or (node.parent in ghosts and node.parent not in by_name):
            continue
        if node.parent == node.name:
            out.append(
                _diag(smap, index, "parent", f"node {node.name!r} names itself as its parent")
            )
            continue
        parent = by_name.get(node.parent)
        if parent is None:
            out.append(
                _diag(
                    smap,
                    index,
                    "parent",
                    f"node {node.name!r} has unknown parent {node.parent!r}",
                    did_you_mean(node.parent, by_name, "nodes"),
                )
            )
        elif parent.type != "pve":
            out.append(
                _diag(
                    smap,
                    index,
                    "parent",
                    f"node {node.name!r} has parent {parent.name!r} of type {parent.type!r}",
                    "only pve nodes can have children; make the parent type pve or remove the parent",
                )
            )
    return out


def _cycles(manifest: Manifest, smap: SourceMap) -> list[Diagnostic]:
    """Each parent cycle, once. Linear: a walk stops at a node already known to reach a root."""
    parent_of = {node.name: node.parent for node in manifest.nodes}
    index_of = {node.name: i for i, node in enumerate(manifest.nodes)}
    settled: set[str] = set()  # nodes whose ancestry was walked: acyclic, or reported
    out = []
    for node in manifest.nodes:
        chain = [node.name]
        current = node.parent
        while current is not None and current in parent_of and current not in settled:
            if current in chain:
                cycle = [*chain[chain.index(current) :], current]
                if current != parent_of[current]:  # self-parents are reported by _parents
                    out.append(
                        _diag(
                            smap,
                            index_of[current],
                            "parent",
                            "parent cycle: " + " -> ".join(cycle),
                            "a node cannot be its own ancestor",
                        )
                    )
                break
            chain.append(current)
            current = parent_of[current]
        settled.update(chain)
    return out


def _nesting(manifest: Manifest, smap: SourceMap) -> list[Diagnostic]:
    """Nodes nested deeper than MAX_NESTING, each at the first level past it."""
    parent_of = {node.name: node.parent for node in manifest.nodes}
    depth: dict[str, int] = {}
    for node in manifest.nodes:
        chain: list[str] = []
        current: str | None = node.name
        while current is not None and current not in depth and current not in chain:
            chain.append(current)
            current = parent_of.get(current)
        if current in chain:  # a cycle: reported by _cycles, its nodes have no depth
            depth.update(dict.fromkeys(chain, 0))
            continue
        # the walk ended at a root (None), a node of known depth or an unknown parent
        base = depth.get(current, -1) if current is not None else -1
        for offset, name in enumerate(reversed(chain), start=1):
            depth[name] = base + offset
    return [
        _diag(
            smap,
            index,
            "parent",
            f"node {node.name!r} is nested {depth[node.name]} levels deep, "
            f"more than the {MAX_NESTING} pveplan supports",
            "flatten the tree: give deeper nodes a parent nearer the root",
        )
        for index, node in enumerate(manifest.nodes)
        if depth[node.name] == MAX_NESTING + 1
    ]


def _required_per_type(
    manifest: Manifest, smap: SourceMap, unchecked: frozenset[Path]
) -> list[Diagnostic]:
    out = []
    for index, node in enumerate(manifest.nodes):
        if (
            node.type in NEEDS_IMAGE
            and node.image is None
            and node.clone is None  # a clone's image is its template's
            and ("nodes", index, "image") not in unchecked
        ):
            out.append(
                _diag(smap, index, None, f"node {node.name!r} of type {node.type!r} needs an image")
            )
        if (
            node.type == "ct"
            and node.template is None
            and ("nodes", index, "template") not in unchecked
        ):
            out.append(
                _diag(
                    smap,
                    index,
                    None,
                    f"node {node.name!r} of type 'ct' needs a template",
                    "name the LXC template, e.g. template: debian-13-standard",
                )
            )
        if node.type == "ct" and node.image is not None:
            out.append(
                _diag(
                    smap,
                    index,
                    "image",
                    f"node {node.name!r} of type 'ct' sets an image, which only VMs boot from",
                    "a container is made from its template: remove image",
                )
            )
        if node.type != "ct":
            for field in CT_ONLY:
                if getattr(node, field) is not None:
                    out.append(
                        _diag(
                            smap,
                            index,
                            field,
                            f"node {node.name!r} of type {node.type!r} sets {field}, "
                            "which only a container (type ct) has",
                            f"remove {field}, or make the node type ct",
                        )
                    )
    return out


CT_ONLY = ("template", "swap", "nesting", "unprivileged")
"""Node fields only a container has: on a VM they would silently do nothing."""


def _pattern(manifest: Manifest, smap: SourceMap) -> list[Diagnostic]:
    if manifest.pattern != "flat":
        return []
    for index, node in enumerate(manifest.nodes):
        if node.parent is not None:
            return [
                _diag(
                    smap,
                    index,
                    "parent",
                    f"pattern is 'flat' but node {node.name!r} has a parent",
                    "set pattern: tiered for a nested manifest",
                    warning=True,
                )
            ]
    return []
