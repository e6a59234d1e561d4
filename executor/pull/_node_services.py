"""The executor's `Services` for a node converging itself: no PVE, no SSH, one local host.

The node-local kinds reach the machine through `hosts.channel("local")`, a LocalChannel
(argument vectors, no shell) with `DEBIAN_FRONTEND=noninteractive` so apt never asks.
There is nothing to SSH to, but `Services` wants a pool and a driver key: the pool gets a
key made in memory for this run and is never opened, and any attempt to reach a PVE host
or a VM from here is a ChannelError naming the mistake. Secrets are revealed from the spec
document, which carries the values of exactly the secrets the spec names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .._context import Services
from .._keys import generate_ed25519
from ..channels import Channel, ChannelError, LocalChannel, SshPool, SshTarget
from ._layout import HOME, node_path

if TYPE_CHECKING:
    from pveplan.store import Store

LOCAL_HOST = "local"


class LocalHostAccess:
    """`HostAccess` with a single host, this machine, named `name` in messages."""

    def __init__(self, name: str) -> None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        home = node_path(HOME)
        self._channel = LocalChannel(name, env=env, cwd=home if home.is_dir() else None)

    def _only_local(self, host: str) -> None:
        if host != LOCAL_HOST:
            raise ChannelError(host, "a node converging itself reaches no other host")

    async def channel(self, host: str) -> Channel:
        self._only_local(host)
        return self._channel

    def pve_node(self, host: str) -> str:
        raise ChannelError(host, "a pull-mode node runs no PVE steps")

    def vm_target(self, host: str, address: str, user: str, host_key: str, name: str) -> SshTarget:
        raise ChannelError(host, "a pull-mode node runs no VM steps")

    def snippet_storage(self, host: str) -> tuple[str, str]:
        raise ChannelError(host, "a pull-mode node runs no PVE steps")

    def api(self, host: str) -> None:
        return None  # a node reaches itself over its local channel


def node_services(store: Store, workspace: str, name: str, secrets: Mapping[str, str]) -> Services:
    """Services for running a node-local plan of workspace `workspace` in `store`;
    revealing a secret the document lacks is a KeyError (the kind says which)."""
    private, public = generate_ed25519(f"pveplan-node@{name}")
    return Services(
        store=store,
        workspace=workspace,
        hosts=LocalHostAccess(name),
        pool=SshPool(private),  # never opened: nothing here speaks SSH
        driver_key=(private, public),
        reveal=dict(secrets).__getitem__,
    )
