"""What changes, node by node: the summary a reviewer reads first, like `terraform plan`'s
list of resources, above the step list.

Derived from the change list alone, never stored: a step's node is its address
(`node.<name>.<step>`, `image.<image>.ensure`), a node's type its steps' kinds (a create of
`pve.vm.*` or `pve.ct.*`, a delegate for a PVE host that has children), and what changed
the arg names in the reasons of the steps that carry a cause. A pve host whose only change
is a delegate re-run for its subplan is not listed: its nested nodes are, under its path.
"""

from __future__ import annotations

from collections.abc import Iterable

from ._diff import Action, Change
from ._plan import Frozen

PVE_KINDS = frozenset({"subplan.delegate", "pve.install"})


class NodeChange(Frozen, kw_only=True):
    """One node (or image) that changes, for the summary; not a plan or file format."""

    path: tuple[str, ...] = ()
    """The delegate addresses leading to the level it lives in, as a `Change`'s `path`."""
    host: str
    """The host of that level: the target host, or the nested PVE host it lives on."""
    name: str
    type: str
    """`vm`, `ct`, `pve` (a PVE host with children), `image`, `storage`; `step` for other
    addresses."""
    action: Action
    fields: tuple[str, ...] = ()
    """What changed: the changed args (`memory`, `disk`), `secret <name>`, `version`."""
    via: tuple[str, ...] = ()
    """Other nodes or images whose change reaches it (`image debian-12`), when it has no
    change of its own from them."""

    @property
    def label(self) -> str:
        """`root-pve › leaf-pve › edge`: the host path (past the target host), then the name."""
        return " › ".join((*(host_of(address) for address in self.path), self.name))


def host_of(delegate: str) -> str:
    """`node.leaf-pve.delegate` -> `leaf-pve`: the host a subplan runs on, from its delegate."""
    if delegate.startswith("node.") and delegate.count(".") >= 2:
        return delegate[len("node.") :].rsplit(".", 1)[0]
    return delegate


def resource_of(address: str) -> tuple[str, str]:
    """(kind of resource, name) a step belongs to: `node.db.start` -> ("node", "db")."""
    if address.startswith("node.") and address.count(".") >= 2:
        return "node", address[len("node.") :].rsplit(".", 1)[0]
    if address.startswith("image.") and address.endswith(".ensure") and address.count(".") >= 2:
        return "image", address[len("image.") : -len(".ensure")]
    if address.startswith("storage.") and address.endswith(".content"):
        return "storage", address[len("storage.") : -len(".content")]
    return "step", address


def node_changes(changes: Iterable[Change]) -> list[NodeChange]:
    """One entry per node or image that changes, in plan order (a level's destroyed nodes
    after its others, as in the change list)."""
    groups: dict[tuple[tuple[str, ...], str, str], list[Change]] = {}
    for change in changes:
        groups.setdefault((change.path, *resource_of(change.address)), []).append(change)
    out = []
    for (path, resource, name), steps in groups.items():
        counted = [c for c in steps if c.action != "unchanged" and not _from_below(c)]
        if not counted:
            continue
        out.append(
            NodeChange(
                path=path,
                host=steps[0].host,
                name=name,
                type=_type(resource, name, steps),
                action=_action({c.action for c in counted}),
                fields=_fields(counted),
                via=_via(path, resource, name, counted),
            )
        )
    return out


def _from_below(change: Change) -> bool:
    """A dependent whose cause lies in a subplan below it: a delegate re-run, nothing more."""
    cause = change.cause
    return cause is not None and len(cause[0]) > len(change.path)


def _type(resource: str, name: str, steps: list[Change]) -> str:
    if resource != "node":
        return resource
    kinds = {c.kind for c in steps}
    if kinds & PVE_KINDS:
        return "pve"
    if "pve.template.create" in kinds:
        return "template"
    if "pve.clone.create" in kinds:  # a clone is a vm
        return "vm"
    for family in ("vm", "ct"):
        if any(kind.startswith(f"pve.{family}.") for kind in kinds):
            return family
    return "node"


def _action(actions: set[Action]) -> Action:
    if "replace" in actions:
        return "replace"
    if actions == {"create"}:
        return "create"
    if actions == {"destroy"}:
        return "destroy"
    return "update"


def _fields(counted: list[Change]) -> tuple[str, ...]:
    """Changed arg names, secrets and versions from the reasons, first seen first."""
    out: dict[str, None] = {}
    for change in counted:
        if change.cause is not None:
            continue
        for reason in change.reasons:
            subject = reason.subject
            if subject is not None:
                out[subject] = None
    return tuple(out)


def _via(path: tuple[str, ...], resource: str, name: str, counted: list[Change]) -> tuple[str, ...]:
    """Other resources of the same level whose change is the cause of some of these steps."""
    out: dict[str, None] = {}
    for change in counted:
        cause = change.cause
        if cause is None or cause[0] != path:
            continue
        other = resource_of(cause[1])
        if other != (resource, name):
            out[other[1] if other[0] == "node" else " ".join(other)] = None
    return tuple(out)
