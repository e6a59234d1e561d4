"""A VM's disks, NICs and cloud-init DNS as step args: the manifest's lists, normalised.

A node that writes `disk: 10` and one that writes `disks: [{size: 10}]` mean the same VM,
so they must be the same step: the lists are set on the args only when they say more
than the shorthands can (a second disk, a bus or storage other than the defaults, a
NIC option), and are left `UNSET` otherwise. Plans that use neither keep their bytes
and hashes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from ._stepargs import DEFAULT_BUS, DEFAULT_NIC_MODEL, DiskArgs, NicArgs, SnapshotArgs
from .siteconfig import ResolvedNode, SecretRef

FIRST_IPCONFIG = "ip=dhcp"
"""What the first NIC gets when the manifest gives it no `ipconfig` (as before lists)."""


def device_args(node: ResolvedNode, datastore: str) -> dict[str, Any]:
    """The `disks`, `nics`, `nameserver` and `searchdomain` args of `node`'s create step
    (each only when set: see the module's docstring)."""
    out: dict[str, Any] = {}
    disks = tuple(
        DiskArgs(size=d.size, bus=d.bus or DEFAULT_BUS, storage=d.storage or datastore)
        for d in node.disks
    )
    if disks and disks != (DiskArgs(size=node.disk, bus=DEFAULT_BUS, storage=datastore),):
        out["disks"] = disks
    nics = tuple(_nic(node, index, nic) for index, nic in enumerate(node.nics))
    if nics and nics != (NicArgs(bridge=node.bridge, model=DEFAULT_NIC_MODEL),):
        out["nics"] = nics
    out.update(dns_args(node))
    if node.snapshot_before:
        out["snapshot"] = SnapshotArgs(changes=node.snapshot_before, keep=node.snapshot_keep)
    out.update(snippet_args(node))
    return out


def dns_args(node: ResolvedNode) -> dict[str, str]:
    """The `nameserver` and `searchdomain` args (the node's, else the settings', only when
    set): every guest that boots takes them (a VM and a clone by cloud-init, a container
    in its own files), so none drops them."""
    out: dict[str, str] = {}
    if node.nameserver is not None:
        out["nameserver"] = node.nameserver
    if node.searchdomain is not None:
        out["searchdomain"] = node.searchdomain
    return out


def snippet_args(node: ResolvedNode) -> dict[str, str]:
    """The `user_data` and `vendor_data` args (the snippets' secret names, only when set):
    their text is a secret of the step (`guest_secrets`), so its keyed digest is hashed."""
    out: dict[str, str] = {}
    if node.user_data is not None:
        out["user_data"] = node.user_data.name
    if node.vendor_data is not None:
        out["vendor_data"] = node.vendor_data.name
    return out


def guest_secrets(node: ResolvedNode) -> tuple[SecretRef, ...]:
    """The secrets a guest's create step reveals at apply: its user's public keys and its
    cloud-init snippets (a changed snippet changes the step, in place)."""
    snippets = (ref for ref in (node.user_data, node.vendor_data) if ref is not None)
    return (*node.authorized_keys, *snippets)


def _nic(node: ResolvedNode, index: int, nic: Any) -> NicArgs:
    unset = msgspec.UNSET
    ipconfig = nic.ipconfig
    if index == 0 and ipconfig == FIRST_IPCONFIG:
        ipconfig = None  # the first NIC's default, said out loud
    return NicArgs(
        bridge=nic.bridge or node.bridge,  # resolved: the site's default when unnamed
        model=nic.model or DEFAULT_NIC_MODEL,
        vlan=nic.vlan if nic.vlan is not None else unset,
        mtu=nic.mtu if nic.mtu is not None else unset,
        mac=nic.mac.upper() if nic.mac is not None else unset,
        firewall=nic.firewall if nic.firewall else unset,
        ipconfig=ipconfig if ipconfig is not None else unset,
    )


def device_sources(
    positions: dict[tuple[str | int, ...], tuple[str, int, int]],
    index: int,
    node: ResolvedNode,
    locate: Callable[[tuple[str, int, int]], str],
) -> dict[str, str]:
    """Where each device field was written (`disks[1].size` -> file:line:col), for the
    diff's reasons (an item's own position stands for a field it leaves to its default).
    The boot disk's size is `disk`'s source too, when the manifest lists disks."""
    found: dict[str, str] = {}
    for field, items in (("disks", node.disks), ("nics", node.nics)):
        base = ("nodes", index, field)
        for number, item in enumerate(items):
            label = f"{field}[{number}]"
            at = positions.get((*base, number)) or positions.get(base)
            if at is not None:
                found[label] = locate(at)
            for key in item.__struct_fields__:
                pos = positions.get((*base, number, key))
                if pos is not None:
                    found[f"{label}.{key}"] = locate(pos)
    if "disks[0].size" in found:
        found["disk"] = found["disks[0].size"]
    for field in ("nameserver", "searchdomain", "user_data", "vendor_data"):
        pos = positions.get(("nodes", index, field)) or positions.get(("settings", field))
        if pos is not None:
            found[field] = locate(pos)
    return found
