"""Host networking of a simulated PVE node: its interfaces, pending changes and live links.

PVE keeps a node's network in `/etc/network/interfaces`; API changes go to a shadow copy,
`interfaces.new`, which every read prefers, until a reload (`ifreload -a`) renames it over
the original and brings the `auto` interfaces up. The simulator keeps the same three
things per node in `state["network"][NODE]`: `ifaces` (the applied file), `pending` (the
shadow copy, present only while there are unapplied changes) and `active` (the links that
are up). A VM's NIC can only plug into a bridge that is up, so `missing_bridge` decides
whether a start fails. See docs/simulator.md ("Host networking").
"""

from __future__ import annotations

import copy
import ipaddress
import re
from typing import Any

PHYSICAL_NICS = ("eth0",)
"""The NICs a simulated host has: always present and up, whatever the config says."""
BRIDGE_TYPES = ("bridge", "OVSBridge")
NET_KEY_RE = re.compile(r"^net\d+$")
PREFIX_LENGTH = "8"  # simulated addresses are 127.X.Y.Z: one /8 of loopback


def _eth(priority: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "eth",
        "method": "manual",
        "method6": "manual",
        "families": ["inet"],
        "priority": priority,
        **extra,
    }


def _static(address: str) -> dict[str, Any]:
    return {
        "method": "static",
        "address": address,
        "netmask": PREFIX_LENGTH,
        "cidr": f"{address}/{PREFIX_LENGTH}",
    }


def default_network(address: str | None, *, nested: bool) -> dict[str, Any]:
    """A fresh host's network: a PVE ISO install bridges eth0 as `vmbr0` (which carries the
    host's address); a Debian VM that got proxmox-ve has eth0 only, so its guests need a
    bridge created and applied first."""
    static = _static(address) if address else {}
    if nested:
        ifaces = {"eth0": _eth(3, autostart=1, **static)}
        return {"ifaces": ifaces, "active": ["eth0"]}
    bridge = {
        **_eth(4, autostart=1, bridge_ports="eth0", bridge_stp="off", bridge_fd="0"),
        "type": "bridge",
        **static,
    }
    return {"ifaces": {"eth0": _eth(3), "vmbr0": bridge}, "active": ["eth0", "vmbr0"]}


def add_bridge(network: dict[str, Any], bridge: str) -> None:
    """Give a host a bridge its node file names (in place): applied and up, as on the host
    the node file describes. A bridge it has already is left as it is; one other than
    vmbr0 has no ports (the simulator's hosts have one NIC, which vmbr0 has)."""
    if bridge in network["ifaces"] or bridge in network.get("pending", {}):
        return
    iface = {
        **_eth(5, autostart=1, bridge_ports="none", bridge_stp="off", bridge_fd="0"),
        "type": "bridge",
    }
    network["ifaces"][bridge] = iface
    if "pending" in network:
        network["pending"][bridge] = dict(iface)
    network["active"] = sorted({*network.get("active", ()), bridge})


def node_network(state: dict[str, Any], node: str) -> dict[str, Any]:
    """The network of `node` in `state` (created with the defaults if the state predates
    networking, so an old root keeps working)."""
    networks = state.setdefault("network", {})
    if node not in networks:
        info = state["nodes"].get(node) or {}
        networks[node] = default_network(info.get("address"), nested=info.get("vmid") is not None)
    return networks[node]


def _up(network: dict[str, Any]) -> set[str]:
    return set(network.get("active", ())) | set(PHYSICAL_NICS)


def interfaces(network: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What the API reads: the pending copy if any, with `active` for links that are up and
    `exists` for physical NICs (PVE takes both from the kernel, not from the file)."""
    config = network.get("pending", network["ifaces"])
    up = _up(network)
    view: dict[str, dict[str, Any]] = {}
    for name, entry in config.items():
        shown = dict(entry)
        if name in up:
            shown["active"] = 1
        if name in PHYSICAL_NICS:
            shown["exists"] = 1
        view[name] = shown
    return view


def list_interfaces(network: dict[str, Any], kind: str | None) -> list[dict[str, Any]]:
    """GET /nodes/{node}/network: every interface (of one `type`), in file order."""
    view = interfaces(network)
    chosen = [
        {"iface": name, **entry}
        for name, entry in view.items()
        if kind in (None, "include_sdn", entry["type"])
        or (kind in ("any_bridge", "any_local_bridge") and entry["type"] in BRIDGE_TYPES)
    ]
    return sorted(chosen, key=lambda entry: (entry.get("priority", 0), entry["iface"]))


def create_interface(network: dict[str, Any], iface: str, params: dict[str, Any]) -> dict[str, str]:
    """POST /nodes/{node}/network: add `iface` to the pending copy; PVE's parameter errors
    (empty when it was added)."""
    config = copy.deepcopy(network.get("pending", network["ifaces"]))
    if iface in config:
        return {"iface": "interface already exists"}
    errors = _duplicate_gateways(config, params) or _cidr_conflicts(params)
    if errors:
        return errors
    entry = _interface_entry(params)
    entry["priority"] = max((e.get("priority", 0) for e in config.values()), default=2) + 1
    config[iface] = entry
    network["pending"] = config
    return {}


def _duplicate_gateways(config: dict[str, Any], params: dict[str, Any]) -> dict[str, str]:
    for key, what in (("gateway", "Default gateway"), ("gateway6", "Default ipv6 gateway")):
        if not params.get(key):
            continue
        for name, entry in config.items():
            if entry.get(key):
                return {key: f"{what} already exists on interface '{name}'."}
    return {}


def _cidr_conflicts(params: dict[str, Any]) -> dict[str, str]:
    errors = {}
    for suffix in ("", "6"):
        if params.get(f"cidr{suffix}"):
            for key in (f"address{suffix}", f"netmask{suffix}"):
                if params.get(key):
                    errors[key] = f"{key} conflicts with cidr{suffix}"
    return errors


def _interface_entry(params: dict[str, Any]) -> dict[str, Any]:
    """The interface as PVE writes it and reads it back: `address/prefix` in the file, so
    address, netmask (the prefix length) and cidr; methods from whether an address is set;
    a bridge's STP off and forward delay 0."""
    entry = {key: value for key, value in params.items() if key != "iface"}
    for suffix in ("", "6"):
        address, netmask = entry.get(f"address{suffix}"), entry.get(f"netmask{suffix}")
        if entry.get(f"cidr{suffix}"):
            address, netmask = str(entry[f"cidr{suffix}"]).split("/", 1)
        if address:
            prefix = ipaddress.ip_network(f"{address}/{netmask}", strict=False).prefixlen
            entry[f"address{suffix}"], entry[f"cidr{suffix}"] = address, f"{address}/{prefix}"
            entry[f"netmask{suffix}"] = str(prefix) if suffix == "" else prefix
    families = [f for f, key in (("inet", "address"), ("inet6", "address6")) if entry.get(key)]
    entry["families"] = families or ["inet"]
    entry["method"] = "static" if entry.get("address") else "manual"
    entry["method6"] = "static" if entry.get("address6") else "manual"
    if entry["type"] == "bridge":
        entry.setdefault("bridge_stp", "off")
        entry.setdefault("bridge_fd", "0")
    return entry


def revert(network: dict[str, Any]) -> None:
    """DELETE /nodes/{node}/network: drop the pending copy."""
    network.pop("pending", None)


def apply_pending(network: dict[str, Any]) -> None:
    """The reload task (`ifreload -a`): the pending copy becomes the config, and exactly
    its `auto` interfaces (plus the physical NICs) are up afterwards."""
    if "pending" in network:
        network["ifaces"] = network.pop("pending")
    network["active"] = sorted(
        name for name, entry in network["ifaces"].items() if entry.get("autostart")
    )


def missing_bridge(network: dict[str, Any], config: dict[str, Any]) -> str | None:
    """The first bridge a VM's NICs name that is not up on its node (None: all are)."""
    up = _up(network)
    for key in sorted((k for k in config if NET_KEY_RE.match(k)), key=lambda k: int(k[3:])):
        options = dict(part.split("=", 1) for part in str(config[key]).split(",") if "=" in part)
        bridge = options.get("bridge")
        entry = network["ifaces"].get(bridge or "")
        if bridge and (bridge not in up or not entry or entry["type"] not in BRIDGE_TYPES):
            return bridge
    return None


def nic_mtu_problem(network: dict[str, Any], config: dict[str, Any]) -> str | None:
    """Why PVE would not start a VM whose virtio NIC asks for an MTU its bridge cannot
    carry: below IPv4's 576, or above the bridge's own MTU (1 means the bridge's). A
    non-virtio NIC's MTU is ignored, as PVE does (with a warning)."""
    for key in sorted((k for k in config if NET_KEY_RE.match(k)), key=lambda k: int(k[3:])):
        parts = [part.split("=", 1) for part in str(config[key]).split(",") if "=" in part]
        options = dict(parts)
        model = parts[0][0] if parts else ""
        if "mtu" not in options or model != "virtio" or "bridge" not in options:
            continue
        mtu = int(options["mtu"])
        entry = network["ifaces"].get(options["bridge"]) or {}
        bridge_mtu = int(entry.get("mtu") or 1500)
        if mtu != 1 and mtu < 576:
            return f"netdev {key}: MTU '{mtu}' is smaller than the IPv4 minimum MTU '576'"
        if mtu > bridge_mtu:
            return f"netdev {key}: MTU '{mtu}' is bigger than the bridge MTU '{bridge_mtu}'"
    return None
