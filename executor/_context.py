"""What a run needs from the outside world, handed to each step kind.

`Services` is built by `run_session` from what the composition root hands in (by
`serve_stdio` on a nested host, or by a test) and owns the things that outlive one step:
the SSH pool, how to reach each PVE host, the driver's own SSH key, the store (for secrets
made at run time) and how to reveal a site secret by name. A `StepContext` is one step's
view of it: the step, its args as its kind's Struct, and a `log` that turns into run events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

import msgspec

from pveplan.planner import StepArgs, args_as, args_of

from ._model import Event

if TYPE_CHECKING:
    from pathlib import Path

    from pveplan.planner import Plan, Step
    from pveplan.store import Store

    from ._hosts import ApiAccess
    from .channels import Channel, SshPool, SshTarget
    from .pve import HttpsTransport, PveDriver
    from .remote import Bundle


A = TypeVar("A", bound=StepArgs)


class HostAccess(Protocol):
    """How to reach the PVE hosts a plan names, and the VMs on them."""

    async def channel(self, host: str) -> Channel:
        """A command channel to PVE host `host` (where `pvesh`/`qm` run)."""
        ...

    def pve_node(self, host: str) -> str:
        """The PVE node name of `host` (the `{node}` of API paths)."""
        ...

    def vm_target(self, host: str, address: str, user: str, host_key: str, name: str) -> SshTarget:
        """How to SSH to a VM at `address` on `host` (the port differs on the simulator)."""
        ...

    def snippet_storage(self, host: str) -> tuple[str, str]:
        """(storage id, its path on the host) where cloud-init snippets are written."""
        ...

    def api(self, host: str) -> ApiAccess | None:
        """How to reach `host`'s PVE API with a token, or None: `pvesh` over the channel."""
        ...


class SpecServerRef(msgspec.Struct, frozen=True, kw_only=True):
    """The spec server pull nodes fetch from: its URL and its certificate's SHA-256
    fingerprint, which the nodes pin. Known only at run time (the certificate is made on
    the machine that serves), so it is passed to the run, never written into a plan."""

    url: str
    fingerprint: str


class Services:
    """The long-lived parts a run uses; built once per command."""

    def __init__(
        self,
        *,
        store: Store,
        workspace: str,
        hosts: HostAccess,
        pool: SshPool,
        driver_key: tuple[bytes, str],
        reveal: Callable[[str], str],
        bundle: Callable[[], Bundle] | None = None,
        extra_keys: tuple[str, ...] = (),
        site_root: Path | None = None,
        spec_server: SpecServerRef | None = None,
    ) -> None:
        self.store = store
        self.workspace = workspace
        self.hosts = hosts
        self.pool = pool
        self.driver_private_key, self.driver_public_key = driver_key
        self.reveal = reveal
        self._bundle = bundle
        self.extra_keys = extra_keys
        """Public keys of the executors above this one (and the driver): every VM this run
        creates trusts them too, so the driver reaches any node through the chain."""
        self.site_root = site_root
        """The site config this run came from (what nested hosts get a copy of)."""
        self.spec_server = spec_server
        """Where this run's pull nodes fetch their specs (None: no server is running)."""
        self.snapshots: list[tuple[str, str, int, str]] = []
        """(address, host, vmid, snapname) of each snapshot this run took before a change and
        removes when the whole run succeeded (`snapshot_before` without `keep`)."""
        self.probe_live = True
        """Whether the nested levels of this run probe their own VMs before they run
        (`executor.with_level_drift`); `apply --refresh=false` turns it off."""
        self._drivers: dict[str, PveDriver] = {}
        self._transports: list[HttpsTransport] = []

    def bundle(self) -> Bundle:
        """The pveplan bundle nested hosts run (built or found on first use)."""
        if self._bundle is None:
            raise RuntimeError("this run has no pveplan bundle to ship to nested hosts")
        return self._bundle()

    @property
    def trusted_keys(self) -> list[str]:
        """The keys every VM of this run trusts: ours, and those of the levels above."""
        return [self.driver_public_key, *self.extra_keys]

    async def pve(self, host: str) -> PveDriver:
        """The PVE driver of `host`: one per host, shared by every step (it holds the run's
        vmid claims), even by steps that asked for it at once. Over the host's HTTPS API
        when it has one (`HostAccess.api`; its SSH channel then opens only if a step needs
        it), else `pvesh` over its channel."""
        driver = self._drivers.get(host)
        if driver is not None:
            return driver
        from .pve import HttpsTransport, PveDriver

        api = self.hosts.api(host)
        if api is None:
            channel = await self.hosts.channel(host)
            # Another step may have made one while this one waited for the channel.
            return self._drivers.setdefault(host, PveDriver(channel, self.hosts.pve_node(host)))
        from ._hosts import LazyChannel

        secret = api.token_secret
        transport = HttpsTransport(
            api.endpoint,
            lambda: self.reveal(secret),
            token_name=secret,
            fingerprint=api.fingerprint,
            source=api.source,
        )
        self._transports.append(transport)
        lazy = LazyChannel(host, lambda: self.hosts.channel(host))
        driver = PveDriver(lazy, self.hosts.pve_node(host), transport=transport)
        return self._drivers.setdefault(host, driver)

    async def aclose(self) -> None:
        """Close the API connections this run opened (the SSH pool has its own owner)."""
        transports, self._transports = self._transports, []
        for transport in transports:
            await transport.aclose()


class StepContext:
    """One step's handle on the run: services, its args, and a log that becomes events."""

    def __init__(
        self,
        services: Services,
        step: Step,
        emit: Callable[[Event], None],
        plan: Plan | None = None,
        args: StepArgs | None = None,
    ) -> None:
        self.services = services
        self.step = step
        self.args = args if args is not None else args_of(step)
        """The step's args as its kind's Struct (the scheduler decodes them once, first,
        and reports args that do not fit as the step's failure)."""
        self.plan = plan
        self.host = step.host
        self.address = step.address
        self._emit = emit

    @property
    def workspace(self) -> str:
        return self.services.workspace

    def args_as(self, cls: type[A]) -> A:
        """The step's args as `cls`, the kind's own Struct."""
        return args_as(self.args, cls)

    def log(self, message: str) -> None:
        """A line for the run record and `--verbose` (never a secret)."""
        self._emit(
            Event(address=self.address, kind="log", host=self.host, at=time.time(), message=message)
        )

    def forward(self, event: Event) -> None:
        """Pass on an event of a remote run (a delegate's), unchanged."""
        self._emit(event)

    async def pve(self) -> PveDriver:
        return await self.services.pve(self.host)

    def secret_name(self, purpose: str, address: str | None = None) -> str:
        """The store's name for a run-time secret owned by `address` (default: this step),
        e.g. a VM's host key, owned by its create step."""
        return f"{purpose}/{self.workspace}/{address or self.address}"
