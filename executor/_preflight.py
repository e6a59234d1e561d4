"""`preflight`: can this run reach its host, and may it do what its plan will do?

Before an apply, and without changing anything, for the plan's target host:

- over the API: the endpoint answers; its certificate is the pinned one (or a CA vouches
  for it); the token is valid (`GET /version`); and the token holds every privilege the
  plan's steps need (`GET /access/permissions`, read as PVE computes it, against the
  table in `pve/_privileges.py`), each missing one named with its path and the step that
  needs it. Where the plan also needs SSH (snippet files, nested executors), SSH too.
- over SSH (`transport: ssh`): the host answers over SSH with its pinned key and runs
  `pvesh` (`GET /version`), as every run does first.

It returns a report; rendering it and the exit code are the CLI's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import msgspec

from .channels import ChannelError
from .pve import HttpsTransport, PveError
from .pve import requests as build
from .pve._privileges import SSH_KINDS, Need, missing, needs

if TYPE_CHECKING:
    from pveplan.planner import Plan

    from ._context import Services


class Check(msgspec.Struct, frozen=True, kw_only=True):
    """One thing preflight looked at: `ok`, and what it found (or what is wrong)."""

    name: str
    ok: bool
    detail: str


class PreflightReport(msgspec.Struct, frozen=True, kw_only=True):
    host: str
    transport: str
    """"api" or "ssh"."""
    checks: tuple[Check, ...]
    missing: tuple[Need, ...] = ()
    """Privileges the token lacks for the plan (empty over SSH: root needs none)."""

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and not self.missing


def _steps(plans: Iterable[Plan | None]) -> list[tuple[str, str, dict]]:
    found = []
    for plan in plans:
        if plan is not None:
            found += [(s.address, s.kind, s.args) for s in plan.steps if s.host == plan.host]
    return found


async def preflight(
    services: Services, plan: Plan, *, applied: Plan | None = None, nested: bool = False
) -> PreflightReport:
    """Check `plan`'s host for `plan` (and for destroying what `applied`, the plan the
    store records, has and `plan` drops). Changes nothing on the host. With `nested` (a
    tiered plan: a PVE node with children), also that the host's KVM allows nesting."""
    host = plan.host
    steps = _steps((plan, applied))
    api = services.hosts.api(host)
    checks: list[Check] = []
    if api is None:
        checks.append(await _ssh_pve(services, host))
        if nested and checks[-1].ok:
            checks.append(await _nested_virt(services, host))
        return PreflightReport(host=host, transport="ssh", checks=tuple(checks))

    driver = await services.pve(host)
    transport = driver.transport
    assert isinstance(transport, HttpsTransport)
    where = transport.where
    pin = f"pinned {api.fingerprint} ({api.source})" if api.fingerprint else "the system's CAs"
    try:
        version = await driver.version()
    except PveError as exc:
        text = str(exc)
        if text.startswith("cannot reach"):
            checks.append(Check(name="reachable", ok=False, detail=text))
        elif text.startswith("refusing"):
            checks.append(Check(name="reachable", ok=True, detail=where))
            checks.append(Check(name="certificate", ok=False, detail=text))
        else:
            checks.append(Check(name="reachable", ok=True, detail=where))
            checks.append(Check(name="certificate", ok=True, detail=f"verified by {pin}"))
            checks.append(Check(name="token", ok=False, detail=text))
        return PreflightReport(host=host, transport="api", checks=tuple(checks))
    checks.append(Check(name="reachable", ok=True, detail=where))
    checks.append(Check(name="certificate", ok=True, detail=f"verified by {pin}"))
    checks.append(
        Check(
            name="token",
            ok=True,
            detail=f"{transport.token_id} is valid (PVE {version.get('version', '?')})",
        )
    )
    lacking: list[Need] = []
    try:
        granted = await driver.run(build.permissions(transport.token_id))
    except PveError as exc:
        checks.append(Check(name="privileges", ok=False, detail=str(exc)))
    else:
        lacking = missing(granted or {}, needs(steps, driver.node))
        detail = (
            f"{len(lacking)} missing for this plan"
            if lacking
            else f"every privilege this plan needs ({len(needs(steps, driver.node))} checks)"
        )
        checks.append(Check(name="privileges", ok=not lacking, detail=detail))
    if any(kind in SSH_KINDS for _, kind, _ in steps):
        checks.append(await _ssh(services, host, "SSH (cloud-init snippet files)"))
    if nested:
        checks.append(await _nested_virt(services, host))
    return PreflightReport(host=host, transport="api", checks=tuple(checks), missing=tuple(lacking))


async def _ssh(services: Services, host: str, name: str) -> Check:
    try:
        channel = await services.hosts.channel(host)
        result = await channel.run(["true"], timeout=30)
    except ChannelError as exc:
        return Check(name=name, ok=False, detail=str(exc))
    if result.exit_status != 0:
        return Check(name=name, ok=False, detail=f"`true` exited {result.exit_status}")
    return Check(name=name, ok=True, detail=f"{channel.name} answers with its pinned host key")


async def _ssh_pve(services: Services, host: str) -> Check:
    """SSH with the pinned key, then `pvesh get /version` (the ssh transport)."""
    try:
        driver = await services.pve(host)
        version = await driver.version()
    except (ChannelError, PveError) as exc:
        return Check(name="SSH and pvesh", ok=False, detail=str(exc))
    return Check(
        name="SSH and pvesh",
        ok=True,
        detail=f"{host} answers with its pinned host key; PVE {version.get('version', '?')}",
    )


NESTED_PARAMETERS = (
    "/sys/module/kvm_intel/parameters/nested",
    "/sys/module/kvm_amd/parameters/nested",
)
ENABLE_NESTED = (
    "enable it: `echo 'options kvm_intel nested=1' > /etc/modprobe.d/kvm-intel.conf` "
    "(kvm_amd on AMD), then reload the module or reboot"
)


async def _nested_virt(services: Services, host: str) -> Check:
    """KVM's `nested` parameter on the host, over SSH (a nested PVE host's VMs need it)."""
    name = "nested virtualization"
    try:
        channel = await services.hosts.channel(host)
        for path in NESTED_PARAMETERS:
            result = await channel.run(["cat", path], timeout=30)
            if result.exit_status == 0:
                value = result.stdout.decode(errors="replace").strip()
                if value in ("Y", "1"):
                    return Check(name=name, ok=True, detail=f"{path} is {value}")
                return Check(name=name, ok=False, detail=f"{path} is {value!r}: {ENABLE_NESTED}")
    except ChannelError as exc:
        return Check(name=name, ok=False, detail=str(exc))
    return Check(
        name=name,
        ok=False,
        detail="no kvm_intel or kvm_amd module on the host: KVM is off or absent; "
        "a tiered manifest's PVE node needs it",
    )
