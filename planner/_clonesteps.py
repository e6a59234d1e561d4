"""The steps of templates and clones: a template node is one step (create from its image,
then make it a template), a clone's create step clones it instead of importing an image.

A clone refers to its template's create step (`template` ref: its vmid), so the clone
runs after the template is made, and a new template moves every clone's step hash. A
clone's disk starts at the template's size and only grows: a clone's own `disk` asking
for less is an error here, at plan time, rather than a refusal from PVE at apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pveplan import dsl

from ._errors import PlanError
from ._stepargs import CloudInit, TemplateCreateArgs, VmCloneArgs
from ._vmdevices import dns_args, snippet_args
from .siteconfig import ResolvedManifest, ResolvedNode


def template_args(node: ResolvedNode, guest: Mapping[str, Any]) -> TemplateCreateArgs:
    """A template node's one step: the VM its image makes, sized as the node says."""
    assert node.image is not None  # validated: a template needs an image
    fields = {key: value for key, value in guest.items() if key != "type"}
    return TemplateCreateArgs(**fields, image=node.image.name)


def clone_args(
    resolved: ResolvedManifest,
    node: ResolvedNode,
    guest: Mapping[str, Any],
    cloud_init: CloudInit,
    where: dsl.Location | None,
) -> VmCloneArgs:
    """A clone's create step. `where` is the manifest position of the clone's `disk`,
    for the error a too-small one gets."""
    clone = node.clone
    assert clone is not None
    source = resolved.node(clone.source)
    fields = dict(guest)
    if node.inherits_disk:  # a preset's size is a floor, not an ask
        fields["disk"] = max(node.disk, source.disk) if node.preset else source.disk
    elif node.disk < source.disk:
        raise PlanError.at(
            where,
            f"clone {node.name!r} asks for a {node.disk} GiB disk, "
            f"but its source {source.name!r} has {source.disk} GiB",
            "a clone starts with its source's disk, and PVE only grows a disk: ask for "
            f"at least {source.disk} GiB, or leave disk out to take the template's size",
        )
    return VmCloneArgs(
        **fields,
        source=clone.source,
        linked=clone.linked,
        cloud_init=cloud_init,
        **dns_args(node),
        **snippet_args(node),
    )
