"""`config.push`: converge a VM on its spec over SSH (timezone, packages, users, services).

Each item is checked before it is changed, with the commands a Debian guest has, so a
second run changes nothing and `--refresh` can tell what drifted (a removed package, a
disabled service) and repair exactly that. Everything runs as the VM's cloud-init user
through `sudo -n`: a password prompt would hang, so it fails instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._context import StepContext
from .._kinds import StepKind, register
from .._model import Outputs, StepFailed
from ..channels import Channel, ChannelError
from ._ssh import vm_target

COMMAND_TIMEOUT = 120.0


class _Guest:
    """Commands on one VM; a failing change is a StepFailed naming the command."""

    def __init__(self, channel: Channel, name: str) -> None:
        self.channel = channel
        self.name = name

    async def check(self, *argv: str) -> tuple[int, str]:
        result = await self.channel.run(argv, timeout=COMMAND_TIMEOUT)
        return result.exit_status, result.stdout.decode(errors="replace")

    async def change(self, *argv: str) -> None:
        result = await self.channel.run(["sudo", "-n", *argv], timeout=COMMAND_TIMEOUT)
        if result.exit_status != 0:
            err = result.stderr.decode(errors="replace").strip().splitlines()
            raise StepFailed(
                f"{self.name}: `{' '.join(argv[:3])}` failed (exit {result.exit_status}): "
                f"{err[-1] if err else 'no message'}"
            )


async def converge(guest: _Guest, spec: Mapping[str, Any], *, repair: bool) -> list[str]:
    """What differs from `spec` on the guest (changed too, when `repair`)."""
    drift: list[str] = []
    timezone = spec.get("timezone")
    if timezone:
        _, current = await guest.check("timedatectl", "show", "-p", "Timezone", "--value")
        if current.strip() != timezone:
            drift.append(f"timezone is {current.strip() or 'unset'}, not {timezone}")
            if repair:
                await guest.change("timedatectl", "set-timezone", timezone)
    missing = [p for p in spec.get("packages") or [] if not await _installed(guest, p)]
    if missing:
        drift.append(f"packages missing: {', '.join(missing)}")
        if repair:
            await guest.change("apt-get", "install", "-y", *missing)
    for user in spec.get("users") or []:
        status, _ = await guest.check("id", user["name"])
        if status != 0:
            drift.append(f"user {user['name']} missing")
            if repair:
                groups = ["-G", "sudo"] if user.get("sudo") else []
                await guest.change("useradd", "-m", "-s", "/bin/bash", *groups, user["name"])
    services = spec.get("services") or {}
    for unit in services.get("enable") or []:
        status, _ = await guest.check("systemctl", "is-enabled", unit)
        if status != 0:
            drift.append(f"service {unit} not enabled")
            if repair:
                await guest.change("systemctl", "enable", "--now", unit)
    for unit in services.get("disable") or []:
        status, _ = await guest.check("systemctl", "is-enabled", unit)
        if status == 0:
            drift.append(f"service {unit} enabled")
            if repair:
                await guest.change("systemctl", "disable", "--now", unit)
    return drift


async def _installed(guest: _Guest, package: str) -> bool:
    status, out = await guest.check("dpkg-query", "-W", "-f=${Status}", package)
    return status == 0 and out.strip().endswith("installed") and "not-installed" not in out


@register
class ConfigPush(StepKind):
    name = "config.push"
    tier = "long"

    async def _guest(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> _Guest:
        target = vm_target(ctx, refs, step.args.get("ssh_user") or "homestak")
        return _Guest(await ctx.services.pool.channel(target), target.name)

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        try:
            guest = await self._guest(ctx, step, refs)
            changed = await converge(guest, step.args, repair=True)
        except ChannelError as exc:
            raise StepFailed(str(exc)) from None
        for line in changed:
            ctx.log(f"repaired: {line}")
        return {"spec": step.args.get("spec"), "changed": len(changed)}

    async def probe(
        self, ctx: StepContext, step: Any, refs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> str | None:
        try:
            guest = await self._guest(ctx, step, refs)
            drift = await converge(guest, step.args, repair=False)
        except ChannelError as exc:
            return str(exc)
        return "; ".join(drift) or None
