"""How the executor reaches PVE hosts and their VMs: `HostAccess` over one SSH pool.

The composition root describes each host as a `HostInfo` (from the site config, or from
the simulator's daemon for a simulated host); from there the code path is the same for
real and simulated hosts. PVE's operations go over the host's HTTPS API with a token when
its `HostInfo` has `api` (`ApiAccess`), else as `pvesh` over SSH with a pinned host key;
SSH is opened only when something needs it (snippet files, nested executors), so an API
host that never needs it is never reached over SSH.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

import msgspec
import trio

from .channels import Channel, ChannelError, CommandResult, SshPool, SshTarget

SNIPPET_STORAGE = ("local", "/var/lib/vz")
"""PVE's `local` dir storage, where cloud-init snippets go (content type `snippets`)."""


class ApiAccess(msgspec.Struct, frozen=True, kw_only=True):
    """How to reach a host's PVE API: what `HttpsTransport` is made from."""

    endpoint: str
    """`https://HOST:8006` (the node file's `api_endpoint`)."""
    token_secret: str
    """The secret holding `USER@REALM!TOKENID=SECRET` (`api_tokens.NAME`), revealed when
    the first call connects."""
    fingerprint: str | None = None
    """The pinned certificate (`AB:CD:...`); None: the system's CAs."""
    source: str | None = None
    """The node file these come from (named when the host cannot be reached)."""


class HostInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One PVE host as the executor needs it. `host_key` may be empty for a host reached
    through its API: SSH to it then fails, when first needed, saying to pin the key."""

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
    api: ApiAccess | None = None
    """PVE's API with a token (the `api` transport); None: `pvesh` over SSH."""


class LazyChannel:
    """A `Channel` opened on first use: an API host's SSH, only when a step needs it."""

    def __init__(self, name: str, opener: Callable[[], Awaitable[Channel]]) -> None:
        self.name = name
        self._opener = opener
        self._channel: Channel | None = None
        self._lock = trio.Lock()

    async def _get(self) -> Channel:
        async with self._lock:
            if self._channel is None:
                self._channel = await self._opener()
            return self._channel

    async def run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 60.0
    ) -> CommandResult:
        return await (await self._get()).run(argv, input=input, timeout=timeout)

    async def put_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        await (await self._get()).put_file(path, data, mode)

    async def get_file(self, path: str) -> bytes | None:
        return await (await self._get()).get_file(path)


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
        if not info.host_key:
            where = info.pinned_in or "its node file"
            raise ChannelError(
                host,
                f"SSH is needed here (snippet files, nested executors) but {where} pins no"
                " SSH host key: add `ssh_host_key: <the host's ed25519 public key line>`"
                " (check it out of band: cat /etc/ssh/ssh_host_ed25519_key.pub)",
            )
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

    def api(self, host: str) -> ApiAccess | None:
        return self.info(host).api

    def vm_target(self, host: str, address: str, user: str, host_key: str, name: str) -> SshTarget:
        return SshTarget(
            host=address, port=self.info(host).vm_ssh_port, user=user, host_key=host_key, name=name
        )

    def snippet_storage(self, host: str) -> tuple[str, str]:
        return SNIPPET_STORAGE
