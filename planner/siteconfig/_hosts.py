"""Target hosts: nodes/{host}.yaml (PVE installed) else hosts/{host}.yaml (SSH only).

A `HostConfig` is the merge homestak does for `-H HOST`: site.yaml defaults first, then
the host's own file; secrets come last, and only as references (the API token and the
authorised keys are `SecretRef`s, resolved by the executor when it connects). It keeps
the file it came from, so errors about a host can point at it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pveplan import dsl

from .._errors import PlanError
from ._files import list_names, load_struct
from ._model import Frozen, HostFile, NodeFile, SiteDefaults
from ._secrets import SecretRef, ssh_key_id

HostSource = Literal["nodes", "hosts"]


class HostConfig(Frozen):
    """One target host, merged (site.yaml -> its file), with secrets only by name.

    `source` says which kind of file defined it: "nodes" (a PVE node, API reachable) or
    "hosts" (a machine before PVE is installed, SSH only). `ssh_user` None means the
    caller's own user name, which only the CLI may look up.
    """

    name: str
    source: HostSource
    file: str
    pve_node: str
    ssh_host: str
    ssh_user: str | None = None
    api_endpoint: str | None = None
    api_token: SecretRef | None = None
    datastore: str | None = None
    parent_node: str | None = None
    authorized_keys: tuple[SecretRef, ...] = ()
    timezone: str = "UTC"
    bridge: str = "vmbr0"
    dns_servers: tuple[str, ...] = ()
    sim: bool = False
    ssh_port: int = 22
    ssh_host_key: str | None = None
    vm_ssh_port: int = 22
    transport: Literal["api", "ssh"] | None = None
    """The node file's choice; None: the API when `api_endpoint` and the token's secret
    are both there (only the composition root, which may read secrets.yaml, decides)."""
    api_fingerprint: str | None = None
    """The pinned API certificate, normalised to `AB:CD:...` (None: the system's CAs)."""

    @property
    def is_pve(self) -> bool:
        """Whether PVE is installed (a nodes/ file), so VMs can be created on it."""
        return self.source == "nodes"


class Hosts:
    """The host files of one site config, listed once and each read on first use."""

    def __init__(self, root: Path, defaults: SiteDefaults) -> None:
        self._dirs: dict[HostSource, Path] = {"nodes": root / "nodes", "hosts": root / "hosts"}
        self._names: dict[HostSource, tuple[str, ...]] = {
            k: list_names(d) for k, d in self._dirs.items()
        }
        self._defaults = defaults
        self._cache: dict[str, tuple[HostConfig, dsl.SourceMap]] = {}

    def names(self) -> tuple[str, ...]:
        return tuple(sorted({*self._names["nodes"], *self._names["hosts"]}))

    def get(self, name: str) -> HostConfig:
        """The host `name`; `PlanError` listing the known hosts (and the closest) if none."""
        return self.entry(name)[0]

    def entry(self, name: str) -> tuple[HostConfig, dsl.SourceMap]:
        """The host and the source map of its file (for errors about what it names)."""
        found = self._cache.get(name)
        if found is None:
            found = self._cache[name] = self._load(name)
        return found

    def _load(self, name: str) -> tuple[HostConfig, dsl.SourceMap]:
        d = self._defaults
        common = {
            "name": name,
            "timezone": d.timezone or "UTC",
            "bridge": d.bridge or "vmbr0",
            "dns_servers": d.dns_servers,
        }
        if name in self._names["nodes"]:
            path = self._dirs["nodes"] / f"{name}.yaml"
            node, smap = load_struct(NodeFile, path, "node file")
            endpoint_host = urlsplit(node.api_endpoint).hostname if node.api_endpoint else None
            pin = _checked_api(node, smap)
            return HostConfig(
                **common,
                source="nodes",
                file=str(path),
                pve_node=node.node or name,
                ssh_host=node.ip or endpoint_host or name,
                ssh_user=node.ssh_user or d.host_user or None,
                api_endpoint=node.api_endpoint or None,
                api_token=SecretRef(name=f"api_tokens.{node.api_token or name}"),
                datastore=node.datastore or None,
                parent_node=node.parent_node,
                sim=node.sim,
                ssh_port=node.ssh_port,
                ssh_host_key=node.ssh_host_key,
                vm_ssh_port=node.vm_ssh_port,
                transport=node.transport,
                api_fingerprint=pin,
            ), smap
        if name in self._names["hosts"]:
            path = self._dirs["hosts"] / f"{name}.yaml"
            host, smap = load_struct(HostFile, path, "host file")
            access = host.access
            keys = tuple(ssh_key_id(k) for k in access.authorized_keys) if access else ()
            for index, key in enumerate(keys):
                if not key:
                    where = smap.locate(("access", "authorized_keys", index))
                    raise PlanError.at(
                        where, "an authorized key id is empty", "name a key of secrets.ssh_keys"
                    )
            return HostConfig(
                **{**common, "timezone": host.timezone or common["timezone"]},
                source="hosts",
                file=str(path),
                pve_node=name,
                ssh_host=host.ip or _bridge_address(host) or name,
                ssh_user=(access.ssh_user if access else None) or d.host_user or None,
                authorized_keys=tuple(SecretRef(name=f"ssh_keys.{k}") for k in keys),
            ), smap
        raise PlanError.at(
            None,
            f"unknown host {name!r}",
            dsl.did_you_mean(name, self.names(), "hosts")
            + f"; a host is defined by {self._dirs['nodes'] / (name + '.yaml')}"
            + f" or {self._dirs['hosts'] / (name + '.yaml')}",
        )


_HEX64 = re.compile(r"[0-9A-Fa-f]{64}")
_PAIRS = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31}")


def normalize_api_fingerprint(text: str) -> str | None:
    """`text` as `AB:CD:...` (32 uppercase pairs), from what people paste: PVE's and
    openssl's colon form in any case, or 64 bare hex digits, optionally after `sha256:`
    or openssl's `SHA256 Fingerprint=`; None if it is not a SHA-256 fingerprint."""
    value = text.strip()
    for prefix in ("sha256 fingerprint=", "sha256:", "sha256="):
        if value.lower().startswith(prefix):
            value = value[len(prefix) :].strip()
    if _HEX64.fullmatch(value):
        value = ":".join(value[i : i + 2] for i in range(0, 64, 2))
    return value.upper() if _PAIRS.fullmatch(value) else None


def _checked_api(node: NodeFile, smap: dsl.SourceMap) -> str | None:
    """The node file's API settings, checked: its normalised pin (or None)."""
    if node.transport == "api" and not node.api_endpoint:
        raise PlanError.at(
            smap.locate(("transport",)),
            "transport: api needs api_endpoint",
            'add api_endpoint: "https://HOST:8006" (and the token in secrets.yaml api_tokens),'
            " or use transport: ssh",
        )
    if node.api_endpoint and urlsplit(node.api_endpoint).scheme.lower() != "https":
        raise PlanError.at(
            smap.locate(("api_endpoint",)),
            "api_endpoint must be an https:// URL",
            "pveplan sends the API token only over verified TLS: https://HOST:8006",
        )
    if node.api_fingerprint is None:
        return None
    pin = normalize_api_fingerprint(node.api_fingerprint)
    if pin is None:
        raise PlanError.at(
            smap.locate(("api_fingerprint",)),
            "api_fingerprint is not a SHA-256 certificate fingerprint",
            'write it as PVE prints it: 32 hex pairs, "AB:CD:...:EF" (on the host:'
            " `pvenode cert info`, the pve-ssl.pem entry's fingerprint)",
        )
    return pin


def _bridge_address(host: HostFile) -> str | None:
    """The address of vmbr0 without its prefix length (homestak's fallback for SSH)."""
    if host.network is None:
        return None
    iface = host.network.interfaces.get("vmbr0")
    if iface is None or not iface.address:
        return None
    return iface.address.split("/", 1)[0]
