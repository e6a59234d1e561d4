"""Node-local kinds: a pull-mode node converging itself, one aspect of its spec per step.

`pveplan config apply` runs these on the node, as root, against the node's own store
(`executor.pull._node_apply`). Each is idempotent and written like `config.push`: `apply`
checks and changes only what differs (logging `repaired: ...` per change), `probe` runs
the same checks and changes nothing, so `--refresh`-style runs re-run exactly the steps
whose part of the world drifted. Commands go through the host's channel (a LocalChannel,
argv only); files are written directly under the sysroot (`$PVEPLAN_SYSROOT`, else `/`),
and chowned to their user only when running as root.

Outputs are deliberately constant (`{}`): a step's outputs are part of its dependents'
run keys, and a repair must not make a dependent that did not drift run again.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from msgspec import UNSET

from pveplan.planner import (
    ConvergeTimerArgs,
    PackagesArgs,
    ServicesArgs,
    SshdArgs,
    SshKeysArgs,
    SudoArgs,
    TimezoneArgs,
    UserArgs,
)

from .._context import StepContext
from .._kinds import StepKind, register
from .._model import Outputs, StepFailed
from ..channels import ChannelError
from ..pull._layout import node_path, sysroot, write_private
from ._config import (
    Guest,
    converge_packages,
    converge_services,
    converge_timezone,
    ensure_user,
)

SUDOERS_DIR = "etc/sudoers.d"
SSHD_DROP_IN = "etc/ssh/sshd_config.d/pveplan.conf"
UNIT_DIR = "etc/systemd/system"
CONVERGE_SERVICE = "pveplan-converge.service"
CONVERGE_TIMER = "pveplan-converge.timer"
SHELL = "/bin/bash"
HEADER = "# Written by pveplan from this node's spec; local edits are reverted.\n"


class _NodeKind(StepKind):
    """A node-local aspect: `converge(repair)` returns what differed (and fixes it),
    reading the step's args as its kind's Struct (`ctx.args_as`)."""

    tier: ClassVar[str] = "medium"

    async def converge(self, ctx: StepContext, guest: Guest, *, repair: bool) -> list[str]:
        raise NotImplementedError

    async def _guest(self, ctx: StepContext) -> Guest:
        channel = await ctx.services.hosts.channel(ctx.host)
        return Guest(channel, channel.name, sudo=False)  # the node converges as root

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        try:
            changed = await self.converge(ctx, await self._guest(ctx), repair=True)
        except ChannelError as exc:
            raise StepFailed(str(exc)) from None
        except OSError as exc:
            raise StepFailed(f"{exc.filename or 'file'}: {exc.strerror or exc}") from None
        for line in changed:
            ctx.log(f"repaired: {line}")
        return {}

    async def probe(
        self, ctx: StepContext, step: Any, refs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> str | None:
        try:
            drift = await self.converge(ctx, await self._guest(ctx), repair=False)
        except (ChannelError, OSError) as exc:
            return f"cannot check: {exc}"
        return "; ".join(drift) or None


# --- files under the sysroot ------------------------------------------------------------


def _passwd(name: str) -> list[str] | None:
    """The user's /etc/passwd fields, when the sysroot has that file and lists the user
    (a simulated VM keeps its users elsewhere: then nothing is known from here)."""
    try:
        lines = node_path("etc/passwd").read_text().splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) == 7 and fields[0] == name:
            return fields
    return None


def home_of(name: str) -> Path:
    """The user's home under the sysroot: from passwd, else where useradd -m puts it."""
    fields = _passwd(name)
    if fields is not None and fields[5].startswith("/"):
        return sysroot() / fields[5].lstrip("/")
    return sysroot() / ("root" if name == "root" else f"home/{name}")


async def _owner(guest: Guest, name: str) -> tuple[int, int] | None:
    """(uid, gid) to chown a user's files to; None when not root (chown would fail)."""
    if os.geteuid() != 0:
        return None
    ids = []
    for flag in ("-u", "-g"):
        status, out = await guest.check("id", flag, name)
        if status != 0 or not out.strip().isdigit():
            raise StepFailed(f"cannot tell the uid/gid of user {name} (`id {flag}` failed)")
        ids.append(int(out.strip()))
    return ids[0], ids[1]


def _file_drift(path: Path, content: bytes, mode: int) -> str | None:
    """How `path` differs from `content` with `mode` (None: it does not)."""
    try:
        current = path.read_bytes()
        current_mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return f"{_shown(path)} missing"
    if current != content:
        return f"{_shown(path)} differs from the spec"
    if current_mode != mode:
        return f"{_shown(path)} has mode {current_mode:04o}, not {mode:04o}"
    return None


def _shown(path: Path) -> str:
    """`path` as the node sees it (without the sysroot prefix)."""
    try:
        return "/" + path.relative_to(sysroot()).as_posix()
    except ValueError:
        return str(path)


def _read_own(path: Path) -> bytes | None:
    """A file in a directory its user controls (None: absent). A symlink there is refused:
    root following it would copy whatever it points to (/etc/shadow) into the user's file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError:
        if path.is_symlink():
            raise StepFailed(f"{_shown(path)} is a symbolic link: refusing to follow it") from None
        raise
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise StepFailed(f"{_shown(path)} is not a regular file")
        return handle.read()


def _user_dir(path: Path, owner: tuple[int, int] | None) -> None:
    """`path` (in the user's home) exists as a real directory, 0700, owned by the user."""
    path.mkdir(mode=0o700, exist_ok=True)
    if path.is_symlink():
        raise StepFailed(f"{_shown(path)} is a symbolic link: refusing to follow it")
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fchmod(fd, 0o700)
        if owner is not None:
            os.fchown(fd, *owner)
    finally:
        os.close(fd)


# --- the kinds --------------------------------------------------------------------------


@register
class NodeTimezone(_NodeKind):
    name = "node.timezone"
    tier = "short"

    async def converge(self, ctx: StepContext, guest: Guest, *, repair: bool) -> list[str]:
        return await converge_timezone(guest, ctx.args_as(TimezoneArgs).timezone, repair=repair)


@register
class NodePackages(_NodeKind):
    name = "node.packages"
    tier = "extended"

    async def converge(self, ctx: StepContext, guest: Guest, *, repair: bool) -> list[str]:
        packages = ctx.args_as(PackagesArgs).packages
        return await converge_packages(guest, packages, repair=repair, update_lists=True)


@register
class NodeUser(_NodeKind):
    """The user exists, with bash as its shell and in the sudo group when `sudo`."""

    name = "node.user"
    tier = "short"

    async def converge(self, ctx: StepContext, guest: Guest, *, repair: bool) -> list[str]:
        user = ctx.args_as(UserArgs)
        name, sudo = user.name, user.sudo
        drift = await ensure_user(guest, name, sudo, repair=repair)
        if drift and not repair:
            return drift  # nothing more to check on a user that does not exist
        fields = _passwd(name)
        if fields is not None and fields[6] != SHELL:
            drift.append(f"user {name} has shell {fields[6]}, not {SHELL}")
            if repair:
                await guest.change("usermod", "-s", SHELL, name)
        if sudo:
            _, groups = await guest.check("id", "-nG", name)
            if "sudo" not in groups.split():
                drift.append(f"user {name} not in group sudo")
                if repair:
                    await guest.change("usermod", "-aG", "sudo", name)
        return drift


@register
class NodeSshKeys(_NodeKind):
    """The spec's keys are in the user's authorized_keys. Others are never removed:
    cloud-init put the driver's key there, and the driver still needs it."""

    name = "node.ssh_keys"
    tier = "short"

    async def converge(self, ctx: StepContext, guest: Guest, *, repair: bool) -> list[str]:
        keys = ctx.args_as(SshKeysArgs)
        user = keys.user
        path = home_of(user) / ".ssh" / "authorized_keys"
        if path.parent.is_symlink():
            raise StepFailed(f"{_shown(path.parent)} is a symbolic link: refusing to follow it")
        lines = (_read_own(path) or b"").decode(errors="replace").splitlines()
        present = {token for line in lines for token in line.split()}
        missing: list[tuple[str, str]] = []
        for name in keys.keys:
            key = _public_key(ctx, name)
            if key.split()[1] not in present:
                missing.append((name, key))
        if not missing:
            return []
        if repair:
            owner = await _owner(guest, user)
            _user_dir(path.parent, owner)
            text = "".join(f"{line}\n" for line in [*lines, *(key for _, key in missing)])
            write_private(path, text.encode(), 0o600, owner)
        return [f"user {user} lacks the key {', '.join(n for n, _ in missing)}"]


def _public_key(ctx: StepContext, name: str) -> str:
    """A spec key's value: one OpenSSH public key line, nothing that could add lines."""
    try:
        value = ctx.services.reveal(name).strip()
    except KeyError:
        raise StepFailed(f"the spec names the key {name}, but its document has no value") from None
    fields = value.split()
    if (
        "\n" in value
        or "\r" in value
        or len(fields) < 2
        or not fields[0].startswith(("ssh-", "ecdsa-", "sk-"))
    ):
        raise StepFailed(f"the key {name} is not one OpenSSH public key line")
    return value


def sudoers_rule(user: str, nopasswd: bool) -> str:
    """The drop-in's rule: NOPASSWD as the posture says, else sudo asks for a password."""
    return f"{user} ALL=(ALL) NOPASSWD:ALL" if nopasswd else f"{user} ALL=(ALL:ALL) ALL"


@register
class NodeSudo(_NodeKind):
    """`/etc/sudoers.d/pveplan-NAME` (no dot: sudo skips such files), mode 0440."""

    name = "node.sudo"
    tier = "short"

    async def converge(self, ctx: StepContext, guest: Guest, *, repair: bool) -> list[str]:
        sudo = ctx.args_as(SudoArgs)
        user = sudo.user
        path = node_path(f"{SUDOERS_DIR}/pveplan-{user}")
        content = (HEADER + sudoers_rule(user, sudo.nopasswd) + "\n").encode()
        drift = _file_drift(path, content, 0o440)
        if drift is None:
            return []
        if repair:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            write_private(path, content, 0o440, (0, 0) if os.geteuid() == 0 else None)
        return [drift]


@register
class NodeServices(_NodeKind):
    name = "node.services"

    async def converge(self, ctx: StepContext, guest: Guest, *, repair: bool) -> list[str]:
        services = ctx.args_as(ServicesArgs)
        return await converge_services(guest, services.enable, services.disable, repair=repair)


def sshd_drop_in(args: SshdArgs) -> bytes:
    """The posture's SSH settings as sshd_config lines (only those the posture sets)."""
    lines = [HEADER.rstrip("\n")]
    for value, option in (
        (args.port, "Port"),
        (args.permit_root_login, "PermitRootLogin"),
        (args.password_authentication, "PasswordAuthentication"),
    ):
        if value is not UNSET:
            lines.append(f"{option} {value}")
    return ("\n".join(lines) + "\n").encode()


@register
class NodeSshd(_NodeKind):
    """The posture's sshd settings as a drop-in; sshd reloaded when it changed (Debian's
    unit runs `sshd -t` before reloading, so a bad file never takes sshd down)."""

    name = "node.sshd"
    tier = "short"

    async def converge(self, ctx: StepContext, guest: Guest, *, repair: bool) -> list[str]:
        path = node_path(SSHD_DROP_IN)
        content = sshd_drop_in(ctx.args_as(SshdArgs))
        drift = _file_drift(path, content, 0o644)
        if drift is None:
            return []
        if repair:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            write_private(path, content, 0o644)
            await guest.change("systemctl", "reload", "ssh")
        return [drift]


@register
class NodeFail2ban(_NodeKind):
    """The posture asks for fail2ban: installed, enabled and running."""

    name = "node.fail2ban"
    tier = "extended"

    async def converge(self, ctx: StepContext, guest: Guest, *, repair: bool) -> list[str]:
        drift = await converge_packages(guest, ["fail2ban"], repair=repair, update_lists=True)
        return drift + await converge_services(guest, ["fail2ban"], [], repair=repair)


def converge_units(args: ConvergeTimerArgs) -> dict[str, bytes]:
    """The timer that re-runs `spec get` then `config apply` every `interval`."""
    launcher = f"/root/.pveplan/bundles/{args.bundle}/bundle/run.py"
    service = (
        f"{HEADER}"
        "[Unit]\n"
        "Description=pveplan: fetch this node's spec and converge on it\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        "WorkingDirectory=/root\n"
        "Environment=HOME=/root\n"
        f"ExecStart=/usr/bin/python3 -I -S {launcher} spec get\n"
        f"ExecStart=/usr/bin/python3 -I -S {launcher} config apply\n"
    )
    timer = (
        f"{HEADER}"
        "[Unit]\n"
        f"Description=pveplan: converge this node every {args.interval}\n"
        "\n"
        "[Timer]\n"
        f"OnBootSec={args.boot}\n"
        f"OnUnitActiveSec={args.interval}\n"
        "\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )
    return {CONVERGE_SERVICE: service.encode(), CONVERGE_TIMER: timer.encode()}


@register
class NodeConvergeTimer(_NodeKind):
    """`run.trigger: schedule`: a systemd timer that converges the node again and again."""

    name = "node.converge_timer"
    tier = "short"

    async def converge(self, ctx: StepContext, guest: Guest, *, repair: bool) -> list[str]:
        drift: list[str] = []
        for unit, content in converge_units(ctx.args_as(ConvergeTimerArgs)).items():
            path = node_path(f"{UNIT_DIR}/{unit}")
            found = _file_drift(path, content, 0o644)
            if found is not None:
                drift.append(found)
                if repair:
                    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
                    write_private(path, content, 0o644)
        if drift and repair:
            await guest.change("systemctl", "daemon-reload")
        enabled, _ = await guest.check("systemctl", "is-enabled", CONVERGE_TIMER)
        active, _ = await guest.check("systemctl", "is-active", CONVERGE_TIMER)
        if enabled != 0 or active != 0:
            drift.append(f"{CONVERGE_TIMER} not enabled and running")
            if repair:
                await guest.change("systemctl", "enable", "--now", CONVERGE_TIMER)
        return drift
