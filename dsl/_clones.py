"""Rules for templates and clones: what a `clone: {from, linked}` may name, checked on the
whole manifest (both front ends share them, at the positions the source map gives).

PVE makes a linked clone only from a template (its disk becomes a thin child of the
template's base disk); a full clone copies any VM. A clone is made on its template's
host, so both must have the same parent and, for root nodes, the same `host:`. A template is never started, so it has no spec
to configure and no children.
"""

from __future__ import annotations

from collections.abc import Collection

from ._errors import Diagnostic, did_you_mean
from ._model import Manifest
from ._positions import Path, SourceMap


def _error(smap: SourceMap, path: Path, summary: str, detail: str = "") -> Diagnostic:
    return Diagnostic(summary=summary, detail=detail, location=smap.locate(path))


def _host(name: str | None) -> str:
    return "the target host" if name is None else f"host {name!r}"


def clone_rules(
    manifest: Manifest, smap: SourceMap, unchecked: Collection[Path] = ()
) -> list[Diagnostic]:
    """Every problem of the manifest's templates and clones, in node order."""
    by_name = {node.name: node for node in manifest.nodes}
    templates = [node.name for node in manifest.nodes if node.type == "template"]
    out: list[Diagnostic] = []
    for index, node in enumerate(manifest.nodes):
        at = ("nodes", index)
        if node.type == "template":
            if node.spec is not None:
                out.append(
                    _error(
                        smap,
                        (*at, "spec"),
                        f"template {node.name!r} has a spec",
                        "a template is never started, so nothing configures it: "
                        "put the spec on the VMs cloned from it",
                    )
                )
            for child in manifest.children(node.name):
                out.append(
                    _error(
                        smap,
                        ("nodes", manifest.nodes.index(child), "parent"),
                        f"node {child.name!r} has template {node.name!r} as its parent",
                        "only a pve node can hold other nodes",
                    )
                )
        clone = node.clone
        if clone is None:
            continue
        if node.type != "vm":
            out.append(
                _error(
                    smap,
                    (*at, "clone"),
                    f"node {node.name!r} of type {node.type!r} cannot be a clone",
                    "only a vm is made by cloning a template",
                )
            )
            continue
        if node.image is not None and (*at, "image") not in unchecked:
            out.append(
                _error(
                    smap,
                    (*at, "image"),
                    f"clone {node.name!r} names an image",
                    f"a clone's disk is its template's ({clone.source}): remove the image",
                )
            )
        where = (*at, "clone", "from")
        source = by_name.get(clone.source)
        if source is None:
            out.append(
                _error(
                    smap,
                    where,
                    f"clone {node.name!r} is made from unknown node {clone.source!r}",
                    did_you_mean(clone.source, templates, "templates"),
                )
            )
            continue
        if source.clone is not None:
            out.append(
                _error(
                    smap,
                    where,
                    f"clone {node.name!r} is made from {source.name!r}, itself a clone",
                    f"clone from a template: {source.name!r}'s own source, "
                    f"{source.clone.source!r}, or a template made for both",
                )
            )
            continue
        if source.type == "template":
            pass
        elif clone.linked:
            out.append(
                _error(
                    smap,
                    where,
                    f"linked clone {node.name!r} is made from {source.name!r}, "
                    f"a {source.type}, not a template",
                    f"PVE makes a linked clone only from a template: make {source.name!r} "
                    "type template, or set linked: false for a full clone",
                )
            )
            continue
        elif source.type != "vm":
            out.append(
                _error(
                    smap,
                    where,
                    f"clone {node.name!r} is made from {source.name!r}, a {source.type}",
                    "clone from a template, or (a full clone) from a vm",
                )
            )
            continue
        if source.parent != node.parent:
            out.append(
                _error(
                    smap,
                    (*at, "parent") if node.parent is not None else where,
                    f"clone {node.name!r} and its source {source.name!r} are on different hosts",
                    "a clone is made on its source's host: give both the same parent",
                )
            )
        elif source.host != node.host:  # root nodes on hosts of the manifest (`host:`)
            out.append(
                _error(
                    smap,
                    (*at, "host") if node.host is not None else where,
                    f"clone {node.name!r} is on {_host(node.host)}, "
                    f"its source {source.name!r} on {_host(source.host)}",
                    "PVE makes a clone on its source's host: give both the same host",
                )
            )
    return out
