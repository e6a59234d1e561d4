"""Checks of a node's disks and NICs that a type alone cannot say.

The model gives each value its type and range (a VLAN tag 1-4094, a unicast MAC); these
rules need a value's parts or its neighbours: a shorthand and its list both set, an
`ipconfig` in PVE's `pve-qm-ipconfig` syntax (`ip=dhcp`, `ip=CIDR,gw=ADDR`, `ip6=...`),
an MTU PVE would refuse when the VM starts (below IPv4's 576; on a model other than
virtio PVE ignores it, a warning), a `nameserver` that is not a list of addresses. Each problem is reported at the
value's own position, so `validate` shows the line to fix.
"""

from __future__ import annotations

import ipaddress
import re

from ._errors import Diagnostic
from ._model import Manifest, Nic, Node
from ._positions import Path, SourceMap

IPCONFIG_KEYS = ("ip", "gw", "ip6", "gw6")
MIN_MTU = 576
"""PVE refuses a NIC MTU below IPv4's minimum at start (1 means: the bridge's)."""


def check_devices(manifest: Manifest, smap: SourceMap) -> list[Diagnostic]:
    """Every disk, NIC and DNS problem of `manifest`'s nodes and settings."""
    found: list[Diagnostic] = []
    settings = manifest.settings
    found.extend(_nameserver(settings.nameserver, ("settings", "nameserver"), smap))
    for index, node in enumerate(manifest.nodes):
        at: Path = ("nodes", index)
        if node.disk is not None and node.disks is not None:
            found.append(
                _error(
                    smap,
                    (*at, "disks"),
                    f"node {node.name!r} sets both disk and disks",
                    "disk: N is short for disks: [{size: N}]; keep one of them",
                )
            )
        if node.bridge is not None and node.nics is not None:
            found.append(
                _error(
                    smap,
                    (*at, "nics"),
                    f"node {node.name!r} sets both bridge and nics",
                    "bridge: B is short for nics: [{bridge: B}]; keep one of them",
                )
            )
        found.extend(_unsupported(node, at, smap))
        found.extend(_no_cloud_init(node, at, smap))
        for number, nic in enumerate(node.nics or ()):
            found.extend(_nic(node.name, number, nic, (*at, "nics", number), smap))
        found.extend(_nameserver(node.nameserver, (*at, "nameserver"), smap))
    return found


LISTS = ("disks", "nics")
"""What only a VM made from an image takes: a clone keeps its template's one disk and NIC,
a template is made with one of each, and a container has one root file system and one
NIC; none of their steps has a field for these. Refused where written, never dropped."""
DNS = ("nameserver", "searchdomain")
"""Every guest that boots takes these (a VM and a clone by cloud-init, a container in its
own files); a template is never booted (each clone takes its own, or the settings')."""


def _unsupported(node: Node, at: Path, smap: SourceMap) -> list[Diagnostic]:
    if node.type in ("vm", "pve") and node.clone is None:
        return []
    what = "a clone" if node.clone is not None else f"a {node.type}"
    refused = (*LISTS, *DNS) if node.type == "template" else LISTS
    return [
        _error(
            smap,
            (*at, field),
            f"node {node.name!r} sets {field}, which {what} does not take yet",
            "only a VM made from an image has disk and NIC lists: size the one disk with "
            "disk and set the one NIC's bridge with bridge, or make it a vm with an image"
            if field in LISTS
            else "a template is never booted: set it on the clones made from it",
        )
        for field in refused
        if getattr(node, field) is not None
    ]


CLOUD_INIT_SNIPPETS = ("user_data", "vendor_data")


def _no_cloud_init(node: Node, at: Path, smap: SourceMap) -> list[Diagnostic]:
    """A container runs no cloud-init (PVE writes its settings into its files), and a
    template is never booted (each clone boots with its own): a snippet on either would
    reach nothing, so it is refused where written."""
    if node.type not in ("ct", "template"):
        return []
    why = (
        "a container runs no cloud-init: PVE sets it up from its own options"
        if node.type == "ct"
        else "a template is never booted: give the snippet to the clones made from it"
    )
    return [
        _error(smap, (*at, field), f"node {node.name!r} of type {node.type} sets {field}", why)
        for field in CLOUD_INIT_SNIPPETS
        if getattr(node, field) is not None
    ]


def _error(smap: SourceMap, path: Path, summary: str, detail: str = "") -> Diagnostic:
    return Diagnostic(summary=summary, detail=detail, location=smap.locate(path))


def _nic(name: str, number: int, nic: Nic, at: Path, smap: SourceMap) -> list[Diagnostic]:
    out = []
    where = f"node {name!r} nics[{number}]"
    if nic.mtu is not None and nic.mtu != 1 and nic.mtu < MIN_MTU:
        out.append(
            _error(
                smap,
                (*at, "mtu"),
                f"{where}: mtu {nic.mtu} is below IPv4's minimum {MIN_MTU}",
                "PVE refuses it when the VM starts; use 576 or more, or 1 for the bridge's MTU",
            )
        )
    if nic.mtu is not None and (nic.model or "virtio") != "virtio":
        out.append(
            Diagnostic(
                summary=f"{where}: mtu is only supported on virtio NICs: PVE ignores it on {nic.model}",
                detail="leave model out (virtio), or remove mtu",
                location=smap.locate((*at, "mtu")),
                severity="warning",
            )
        )
    if nic.ipconfig is not None:
        problem = ipconfig_problem(nic.ipconfig)
        if problem is not None:
            out.append(
                _error(
                    smap,
                    (*at, "ipconfig"),
                    f"{where}: ipconfig {nic.ipconfig!r}: {problem}",
                    "write ip=dhcp, or ip=10.0.0.5/24,gw=10.0.0.1 (and/or ip6=auto|dhcp|CIDR,gw6=ADDR)",
                )
            )
    return out


def ipconfig_problem(text: str) -> str | None:
    """What is wrong with a `pve-qm-ipconfig` value (None: PVE accepts it)."""
    values: dict[str, str] = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if not eq or key not in IPCONFIG_KEYS:
            return f"{part!r} is not one of {', '.join(k + '=' for k in IPCONFIG_KEYS)}"
        if key in values:
            return f"{key} is given twice"
        values[key] = value
    checks = (
        ("ip", ("dhcp",), 4, True),
        ("gw", (), 4, False),
        ("ip6", ("dhcp", "auto"), 6, True),
        ("gw6", (), 6, False),
    )
    for key, words, version, cidr in checks:
        if key in values and values[key] not in words:
            problem = _address_problem(values[key], version, cidr)
            if problem:
                return f"{key}={values[key]} {problem}"
    for gateway, address in (("gw", "ip"), ("gw6", "ip6")):
        if gateway in values and (address not in values or "/" not in values[address]):
            return f"{gateway} needs a static {address}=CIDR (no gateway with dhcp or auto)"
    return None


def _address_problem(text: str, version: int, cidr: bool) -> str | None:
    address, slash, prefix = text.partition("/")
    kind = f"IPv{version} {'CIDR address' if cidr else 'address'}"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return f"is not an {kind}"
    if parsed.version != version or bool(slash) != cidr:
        return f"is not an {kind}"
    # PVE's CIDR formats want a prefix length above 7.
    if cidr and not (re.fullmatch(r"\d+", prefix) and 7 < int(prefix) <= parsed.max_prefixlen):
        return f"has a prefix length outside 8-{parsed.max_prefixlen}"
    return None


def _nameserver(value: str | None, path: Path, smap: SourceMap) -> list[Diagnostic]:
    if value is None:
        return []
    for word in re.split(r"[\s,;]+", value.strip()):
        try:
            ipaddress.ip_address(word)
        except ValueError:
            return [
                _error(
                    smap,
                    path,
                    f"nameserver {word!r} is not an IP address",
                    "give DNS servers as addresses, separated by spaces: 10.0.0.1 10.0.0.2",
                )
            ]
    return []
