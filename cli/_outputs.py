"""What `pveplan output` reports per node, gathered from the store's records alone.

A workspace's applied plan says which nodes exist, where each sits in the tree (its
parent: the nested PVE host whose delegate runs it), its type and login user (the
`ssh.wait` step's user). The values come from what the runs recorded: a top-level node's
vmid and pinned host key are outputs of its live `create` resource, its address an
output of its `wait_ip` step; a nested node's come back through its host's
`subplan.delegate` outputs (`node.NAME.vm_id|ip|host_key`). Nothing here contacts a
host: a VM changed or destroyed by hand since is not noticed (that is `plan`'s drift
probe's job). Pure functions of values, so they are tested without a store.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import msgspec

from pveplan.planner import Plan

NodeStatus = Literal["applied", "partial", "absent"]
"""`applied`: every step of the node is recorded done for the applied plan (a nested
node: its host's last delegate run reported it); `partial`: its VM is recorded but some
step of the applied plan is not (a later run failed half-way); `absent`: no VM recorded."""

_DELEGATE_FIELDS = {"vm_id": "vmid", "ip": "address", "host_key": "host_key"}


class NodeOutput(msgspec.Struct, frozen=True, kw_only=True):
    """One node as `output` reports it; None where the store records nothing."""

    name: str
    type: str
    """vm, ct or pve (a VM that became a PVE host)."""
    parent: str | None
    """The nested PVE host this node runs on; None: the workspace's target host."""
    host: str
    """The PVE host it runs on: `parent`, else the host it names (`host:`), else the
    target host."""
    vmid: int | None = None
    address: str | None = None
    port: int | None = None
    """The SSH port its address answers on (None: unknown, clients assume 22)."""
    user: str | None = None
    """The login user its spec sets up (homestak's `homestak` by default)."""
    host_key: str | None = None
    """The OpenSSH public key line pinned at creation (no comment)."""
    fingerprint: str | None = None
    """`SHA256:...`, as `ssh-keygen -l` prints it."""
    status: NodeStatus = "absent"


def key_fingerprint(line: str) -> str | None:
    """The SHA-256 fingerprint of an OpenSSH public key line, or None if it is not one."""
    parts = line.split()
    if len(parts) < 2:
        return None
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return None
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def key_without_comment(line: str) -> str:
    """`ssh-ed25519 AAAA... comment` -> `ssh-ed25519 AAAA...` (known_hosts wants no comment)."""
    return " ".join(line.split()[:2])


def _levels(plan: Plan, parent: str | None = None) -> Iterator[tuple[str | None, Plan]]:
    """Each level of the tree with the node that hosts it (None: the target host)."""
    yield parent, plan
    for address, subplan in plan.subplans.items():
        host = address.split(".")[1]
        yield from _levels(subplan, host)


def _node_of(address: str) -> tuple[str, str] | None:
    parts = address.split(".")
    if len(parts) == 3 and parts[0] == "node":
        return parts[1], parts[2]
    return None


def collect_nodes(
    plan: Plan,
    resources: Mapping[str, Mapping[str, Any]],
    results: Mapping[str, Mapping[str, Any]],
    *,
    port: int | None = None,
) -> list[NodeOutput]:
    """Every node of the applied `plan` (all levels), hosts before the nodes inside them.

    `resources`: the workspace's live resources (address -> outputs); `results`: for the
    top level's steps, the outputs of the successful result recorded for the step hash
    the plan applied (address -> outputs; a step missing has none). `port`: the SSH
    port the target host's VMs answer on (nested hosts' VMs answer on the same one).
    """
    nested: dict[str, dict[str, Any]] = {}
    for address, outputs in results.items():
        if address.endswith(".delegate"):
            for key, value in outputs.items():
                parts = key.split(".")
                if len(parts) == 3 and parts[0] == "node" and parts[2] in _DELEGATE_FIELDS:
                    nested.setdefault(parts[1], {})[_DELEGATE_FIELDS[parts[2]]] = value
    found: list[NodeOutput] = []
    for parent, level in _levels(plan):
        kinds: dict[str, set[str]] = {}
        users: dict[str, str] = {}
        vmids: dict[str, int] = {}
        placed: dict[str, str] = {}
        order: list[str] = []
        for step in level.steps:
            node = _node_of(step.address)
            if node is None:
                continue
            name, _ = node
            if name not in kinds:
                kinds[name] = set()
                order.append(name)
            kinds[name].add(step.kind)
            if step.kind == "ssh.wait" and isinstance(step.args.get("user"), str):
                users[name] = step.args["user"]
            vmid = step.args.get("vmid")
            if step.kind.endswith(".create") and isinstance(vmid, int):
                vmids[name] = vmid
            if step.kind.endswith(".create"):
                placed[name] = step.host  # a root may sit on another host (`host:`)
        for name in order:
            if parent is None:
                values, status = _top_level(name, level, resources, results)
            else:
                values = nested.get(name, {})
                status = "applied" if values.get("vmid") is not None else "absent"
            key = values.get("host_key")
            key = key_without_comment(key) if isinstance(key, str) and key.strip() else None
            vmid = values.get("vmid", vmids.get(name))
            address = values.get("address")
            found.append(
                NodeOutput(
                    name=name,
                    type=_type_of(kinds[name]),
                    parent=parent,
                    host=parent or placed.get(name, plan.host),
                    vmid=vmid if isinstance(vmid, int) and not isinstance(vmid, bool) else None,
                    address=address if isinstance(address, str) and address else None,
                    port=port,
                    user=users.get(name),
                    host_key=key,
                    fingerprint=key_fingerprint(key) if key else None,
                    status=status,
                )
            )
    return _tree_order(found)


def _top_level(
    name: str,
    level: Plan,
    resources: Mapping[str, Mapping[str, Any]],
    results: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, Any], NodeStatus]:
    create = resources.get(f"node.{name}.create")
    if create is None:
        return {}, "absent"
    values: dict[str, Any] = {"vmid": create.get("vm_id"), "host_key": create.get("host_key")}
    waited = results.get(f"node.{name}.wait_ip", {})
    values["address"] = waited.get("ip")
    if values["host_key"] is None:  # a container's: read through its host at wait_ip
        values["host_key"] = waited.get("host_key")
    mine = [s.address for s in level.steps if s.address.startswith(f"node.{name}.")]
    status: NodeStatus = "applied" if all(a in results for a in mine) else "partial"
    return values, status


def _type_of(kinds: set[str]) -> str:
    if "pve.install" in kinds:
        return "pve"
    if "pve.ct.create" in kinds:
        return "ct"
    return "vm"


def _tree_order(nodes: list[NodeOutput]) -> list[NodeOutput]:
    """Hosts first, each followed by the nodes nested in it, depth first."""
    children: dict[str | None, list[NodeOutput]] = {}
    for node in nodes:
        children.setdefault(node.parent, []).append(node)
    out: list[NodeOutput] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(reversed(children.get(node.name, [])))
    return out
