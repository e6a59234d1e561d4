"""`pveplan output`'s formats: JSON, a table, an Ansible inventory, an ssh_config include,
and the known_hosts file the last two point at.

Pure functions of `NodeOutput`s. What reaches a client's configuration is checked, not
trusted: a node name, user, address or key that could break out of its line (a space, a
newline, a quote) is refused with `OutputError`, so nothing a store holds can inject an
ssh_config directive or an ssh option. Paths are absolute and refused when they hold a
character ssh would expand (`%`) or that cannot be quoted (`"`, a newline).

Host keys are never trusted on first use: both client formats set
`StrictHostKeyChecking yes` and a `UserKnownHostsFile` holding exactly the keys pveplan
pinned when it created the VMs. Nested nodes are reached as pveplan reaches them: through
their PVE host, as root there (ssh's ProxyJump; for Ansible, which passes options only
to the first hop, a ProxyCommand chain that carries the same options to every hop).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from typing import Any

import msgspec
import yaml

from ._outputs import NodeOutput

JUMP_USER = "root"
"""Who a nested node's host is entered as on the way (pveplan's own route: its driver key)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}\Z")
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9._-]{0,31}\Z")
_ADDRESS = re.compile(r"[A-Za-z0-9.:-]{1,253}\Z")
_KEY = re.compile(r"[A-Za-z0-9@._-]{1,64} [A-Za-z0-9+/]+={0,2}\Z")


class OutputError(ValueError):
    """A value that cannot be written safely into a client's configuration."""


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.match(value):
        raise OutputError(f"{what} {value!r} cannot be written safely (refused, not quoted)")
    return value


def _check_path(path: str, what: str) -> str:
    if not path.startswith("/") or any(c in path for c in '"%\n\r\t'):
        raise OutputError(
            f"{what} {path!r} must be an absolute path without quotes, '%' or control characters"
        )
    return path


def reachable(nodes: Sequence[NodeOutput]) -> tuple[list[NodeOutput], list[NodeOutput]]:
    """(nodes a client can reach: an address and a pinned key recorded, and every host
    on the way reachable too; the rest)."""
    by_name = {n.name: n for n in nodes}
    ok: list[NodeOutput] = []
    left: list[NodeOutput] = []
    for node in nodes:
        chain = [node, *_hosts_of(node, by_name)]
        if all(n.address and n.host_key for n in chain) and all(
            n.parent is None or n.parent in by_name for n in chain
        ):
            ok.append(node)
        else:
            left.append(node)
    return ok, left


def _hosts_of(node: NodeOutput, by_name: dict[str, NodeOutput]) -> list[NodeOutput]:
    """The nested hosts in front of `node`, nearest first."""
    out: list[NodeOutput] = []
    parent = node.parent
    while parent is not None and parent in by_name and len(out) < 64:
        out.append(by_name[parent])
        parent = by_name[parent].parent
    return out


def _host_pattern(node: NodeOutput) -> str:
    address = _check(_ADDRESS, node.address or "", f"the address of {node.name}")
    if node.port in (None, 22):
        return address
    return f"[{address}]:{node.port}"


def render_known_hosts(nodes: Sequence[NodeOutput]) -> str:
    """One line per reachable node: its address (with the port when not 22) and the key
    pinned at its creation."""
    lines = ["# written by pveplan output: the host keys pinned when the VMs were created"]
    for node in reachable(nodes)[0]:
        key = _check(_KEY, node.host_key or "", f"the host key of {node.name}")
        lines.append(f"{_host_pattern(node)} {key}")
    return "\n".join(lines) + "\n"


def render_ssh_config(
    nodes: Sequence[NodeOutput], known_hosts: str, *, identity: str | None = None, title: str = ""
) -> str:
    """A file to `Include` from ~/.ssh/config: a `Host NAME` block per reachable node."""
    _check_path(known_hosts, "the known_hosts path")
    if identity is not None:
        _check_path(identity, "the identity file")
    lines = [f"# written by pveplan output --format ssh-config{f': {title}' if title else ''}"]
    for node in reachable(nodes)[0]:
        name = _check(_NAME, node.name, "the node name")
        lines += [
            "",
            f"Host {name}",
            f"  HostName {_check(_ADDRESS, node.address or '', f'the address of {name}')}",
        ]
        if node.port not in (None, 22):
            lines.append(f"  Port {int(node.port or 22)}")
        if node.user:
            lines.append(f"  User {_check(_USER, node.user, f'the user of {name}')}")
        lines += [f'  UserKnownHostsFile "{known_hosts}"', "  StrictHostKeyChecking yes"]
        if identity is not None:
            lines += [f'  IdentityFile "{identity}"', "  IdentitiesOnly yes"]
        if node.parent is not None:
            parent = _check(_NAME, node.parent, "the parent name")
            lines.append(f"  ProxyJump {JUMP_USER}@{parent}")
    return "\n".join(lines) + "\n"


def _ssh_options(known_hosts: str, identity: str | None) -> list[str]:
    options = ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes"]
    if identity is not None:
        options += ["-i", identity, "-o", "IdentitiesOnly=yes"]
    return options


def _proxy_command(
    node: NodeOutput, by_name: dict[str, NodeOutput], known_hosts: str, identity: str | None
) -> list[str]:
    """`-o ProxyCommand=...` reaching `node` through its host (recursively through the
    host's own host), every hop with the pinned keys; [] for a top-level node."""
    if node.parent is None:
        return []
    host = by_name[node.parent]
    address = _check(_ADDRESS, node.address or "", f"the address of {node.name}")
    target = f"[{address}]" if ":" in address else address
    argv = [
        "ssh",
        "-W",
        f"{target}:{node.port or 22}",
        "-p",
        str(host.port or 22),
        *_ssh_options(known_hosts, identity),
        *_proxy_command(host, by_name, known_hosts, identity),
        "-l",
        JUMP_USER,
        _check(_ADDRESS, host.address or "", f"the address of {host.name}"),
    ]
    return ["-o", f"ProxyCommand={shlex.join(argv)}"]


def _group(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def render_ansible_inventory(
    nodes: Sequence[NodeOutput], known_hosts: str, *, identity: str | None = None, title: str = ""
) -> str:
    """An Ansible YAML inventory: every reachable node with its connection variables,
    in a group per type (`vm`, `pve`, `ct`) and per parent (`parent_HOST`)."""
    _check_path(known_hosts, "the known_hosts path")
    if identity is not None:
        _check_path(identity, "the identity file")
    ok, _ = reachable(nodes)
    by_name = {n.name: n for n in nodes}
    groups: dict[str, dict[str, Any]] = {}
    for node in ok:
        name = _check(_NAME, node.name, "the node name")
        hostvars: dict[str, Any] = {"ansible_host": _check(_ADDRESS, node.address or "", name)}
        if node.port not in (None, 22):
            hostvars["ansible_port"] = node.port
        if node.user:
            hostvars["ansible_user"] = _check(_USER, node.user, f"the user of {name}")
        if identity is not None:
            hostvars["ansible_ssh_private_key_file"] = identity
        options = [
            *_ssh_options(known_hosts, None),
            *_proxy_command(node, by_name, known_hosts, identity),
        ]
        hostvars["ansible_ssh_common_args"] = shlex.join(options)
        hostvars["pveplan_type"] = node.type
        hostvars["pveplan_vmid"] = node.vmid
        hostvars["pveplan_parent"] = node.parent or node.host
        hostvars["pveplan_host_key_fingerprint"] = node.fingerprint
        groups.setdefault(node.type, {})[name] = hostvars
        groups.setdefault(f"parent_{_group(node.parent or node.host)}", {})[name] = None
    document = {"all": {"children": {g: {"hosts": h} for g, h in groups.items()}}}
    header = (
        f"# written by pveplan output --format ansible-inventory{f': {title}' if title else ''}\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def render_json(nodes: Sequence[NodeOutput], about: dict[str, Any]) -> str:
    """`about` (workspace, manifest, host, plan) and every node, as one JSON object."""
    document = {**about, "nodes": [msgspec.to_builtins(n) for n in nodes]}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def render_table(nodes: Sequence[NodeOutput]) -> str:
    """Aligned columns: node (inside its hosts), type, vmid, address, status, key."""
    by_name = {n.name: n for n in nodes}
    rows = [("node", "type", "vmid", "address", "status", "host key")]
    for node in nodes:
        label = " › ".join([*(h.name for h in reversed(_hosts_of(node, by_name))), node.name])
        rows.append(
            (
                label,
                node.type,
                "-" if node.vmid is None else str(node.vmid),
                node.address or "-",
                node.status,
                node.fingerprint or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(line.rstrip() for line in lines) + "\n"
