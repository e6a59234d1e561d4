"""How the executor reaches PVE hosts and their VMs: `HostAccess` over one SSH pool.

The composition root describes each host as a `HostInfo` (from the site config, or from
the simulator's daemon for a simulated host); from there the code path is the same for
real and simulated hosts: SSH with a pinned host key, `pvesh` on the far end.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from .channels import Channel, ChannelError, SshPool, SshTarget

SNIPPET_STORAGE = ("local", "/var/lib/vz")
"""PVE's `local` dir storage, where cloud-init snippets go (content type `snippets`)."""


class HostInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One PVE host as the executor needs it."""

    name: str
    pve_node: str
    ssh_host: str
    ssh_port: int = 22
    ssh_user: str = "root"
    host_key: str
    vm_ssh_port: int = 22
    """The port VMs on this host answer SSH on (the simulator's port, else 22)."""
    pinned_in: str | None = None
    """The node file whose `ssh_host_key` pins this host's key (None: the simulator's)."""


class SiteHostAccess:
    """`HostAccess` for a fixed set of hosts, over a shared SSH pool."""

    def __init__(self, hosts: Mapping[str, HostInfo], pool: SshPool) -> None:
        self.hosts = dict(hosts)
        self.pool = pool

    def info(self, host: str) -> HostInfo:
        try:
            return self.hosts[host]
        except KeyError:
            raise ChannelError(host, "no access to this host is configured") from None

    async def channel(self, host: str) -> Channel:
        info = self.info(host)
        return await self.pool.channel(
            SshTarget(
                host=info.ssh_host,
                port=info.ssh_port,
                user=info.ssh_user,
                host_key=info.host_key,
                name=host,
                pinned_in=info.pinned_in,
            )
        )

    def pve_node(self, host: str) -> str:
        return self.info(host).pve_node

    def vm_target(self, host: str, address: str, user: str, host_key: str, name: str) -> SshTarget:
        return SshTarget(
            host=address, port=self.info(host).vm_ssh_port, user=user, host_key=host_key, name=name
        )

    def snippet_storage(self, host: str) -> tuple[str, str]:
        return SNIPPET_STORAGE
