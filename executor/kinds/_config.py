"""`config.push`: converge a VM on its spec over SSH (timezone, packages, users, services).

Each item is checked before it is changed, with the commands a Debian guest has, so a
second run changes nothing and `--refresh` can tell what drifted (a removed package, a
disabled service) and repair exactly that. Everything runs as the VM's cloud-init user
through `sudo -n`: a password prompt would hang, so it fails instead.

The per-aspect functions (`converge_timezone`, `converge_packages`, `ensure_user`,
`converge_services`) are shared with the node-local kinds of pull mode (`_node`), which
run the same checks and changes as root on the node itself, without sudo: a `Guest` says
which of the two it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pveplan.planner import ConfigPushArgs, SpecArgs

from .._context import StepContext
from .._kinds import StepKind, register
from .._model import Outputs, StepFailed
from ..channels import Channel, ChannelError
from ._ssh import vm_target

COMMAND_TIMEOUT = 120.0
INSTALL_TIMEOUT = 900.0
"""apt-get install of a spec's packages may download a lot on a slow mirror."""


class Guest:
    """Commands on one machine; a failing change is a StepFailed naming the command.

    `sudo`: changes run through `sudo -n` (a login user over SSH); False when the caller
    is root already (a node converging itself). Checks never need it.
    """

    def __init__(self, channel: Channel, name: str, *, sudo: bool = True) -> None:
        self.channel = channel
        self.name = name
        self.sudo = sudo

    async def check(self, *argv: str) -> tuple[int, str]:
        result = await self.channel.run(argv, timeout=COMMAND_TIMEOUT)
        return result.exit_status, result.stdout.decode(errors="replace")

    async def change(self, *argv: str, timeout: float = COMMAND_TIMEOUT) -> None:
        prefix = ["sudo", "-n"] if self.sudo else []
        result = await self.channel.run([*prefix, *argv], timeout=timeout)
        if result.exit_status != 0:
            err = result.stderr.decode(errors="replace").strip().splitlines()
            raise StepFailed(
                f"{self.name}: `{' '.join(argv[:3])}` failed (exit {result.exit_status}): "
                f"{err[-1] if err else 'no message'}"
            )


async def converge_timezone(guest: Guest, timezone: str | None, *, repair: bool) -> list[str]:
    """The system time zone is `timezone` (None: not managed)."""
    if not timezone:
        return []
    _, current = await guest.check("timedatectl", "show", "-p", "Timezone", "--value")
    if current.strip() == timezone:
        return []
    if repair:
        await guest.change("timedatectl", "set-timezone", timezone)
    return [f"timezone is {current.strip() or 'unset'}, not {timezone}"]


async def converge_packages(
    guest: Guest, packages: Sequence[str], *, repair: bool, update_lists: bool = False
) -> list[str]:
    """Every package is installed. `update_lists`: when the install fails, refresh the
    package lists once and retry (a fresh cloud image may have none yet)."""
    missing = [p for p in packages if not await installed(guest, p)]
    if not missing:
        return []
    if repair:
        install = ("apt-get", "install", "-y", *missing)
        try:
            await guest.change(*install, timeout=INSTALL_TIMEOUT)
        except StepFailed:
            if not update_lists:
                raise
            await guest.change("apt-get", "update", timeout=INSTALL_TIMEOUT)
            await guest.change(*install, timeout=INSTALL_TIMEOUT)
    return [f"packages missing: {', '.join(missing)}"]


async def installed(guest: Guest, package: str) -> bool:
    status, out = await guest.check("dpkg-query", "-W", "-f=${Status}", package)
    return status == 0 and out.strip().endswith("installed") and "not-installed" not in out


async def ensure_user(guest: Guest, name: str, sudo: bool, *, repair: bool) -> list[str]:
    """The user exists (created with a home, bash, and the sudo group when `sudo`)."""
    status, _ = await guest.check("id", name)
    if status == 0:
        return []
    if repair:
        groups = ["-G", "sudo"] if sudo else []
        await guest.change("useradd", "-m", "-s", "/bin/bash", *groups, name)
    return [f"user {name} missing"]


async def converge_services(
    guest: Guest, enable: Sequence[str], disable: Sequence[str], *, repair: bool
) -> list[str]:
    """`enable` units are enabled (and started), `disable` ones disabled (and stopped)."""
    drift: list[str] = []
    for unit in enable:
        status, _ = await guest.check("systemctl", "is-enabled", unit)
        if status != 0:
            drift.append(f"service {unit} not enabled")
            if repair:
                await guest.change("systemctl", "enable", "--now", unit)
    for unit in disable:
        status, _ = await guest.check("systemctl", "is-enabled", unit)
        if status == 0:
            drift.append(f"service {unit} enabled")
            if repair:
                await guest.change("systemctl", "disable", "--now", unit)
    return drift


async def converge(guest: Guest, spec: SpecArgs, *, repair: bool) -> list[str]:
    """What differs from `spec` on the guest (changed too, when `repair`)."""
    drift = await converge_timezone(guest, spec.timezone, repair=repair)
    drift += await converge_packages(guest, spec.packages, repair=repair)
    for user in spec.users:
        drift += await ensure_user(guest, user.name, user.sudo, repair=repair)
    services = spec.services
    drift += await converge_services(guest, services.enable, services.disable, repair=repair)
    return drift


@register
class ConfigPush(StepKind):
    name = "config.push"
    tier = "long"

    async def _guest(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Guest:
        target = vm_target(ctx, refs, ctx.args_as(ConfigPushArgs).ssh_user or "homestak")
        # A container is reached as root (its template has no other user, nor sudo).
        sudo = target.user != "root"
        return Guest(await ctx.services.pool.channel(target), target.name, sudo=sudo)

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        try:
            guest = await self._guest(ctx, step, refs)
            changed = await converge(guest, ctx.args_as(ConfigPushArgs), repair=True)
        except ChannelError as exc:
            raise StepFailed(str(exc)) from None
        for line in changed:
            ctx.log(f"repaired: {line}")
        return {"spec": ctx.args_as(ConfigPushArgs).spec, "changed": len(changed)}

    async def probe(
        self, ctx: StepContext, step: Any, refs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> str | None:
        try:
            guest = await self._guest(ctx, step, refs)
            drift = await converge(guest, ctx.args_as(ConfigPushArgs), repair=False)
        except ChannelError as exc:
            return str(exc)
        return "; ".join(drift) or None
