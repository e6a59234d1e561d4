"""cloud-init's first boot inside a simulated VM, called by the host's `qm start`.

Applied the way a Debian cloud image does, once per instance: `write_files`, users with
their authorized keys and sudo rules (also in `/etc/sudoers.d/90-cloud-init-users`), the
SSH host key (the one given, else one generated as sshd would), the hostname, packages,
deferred `write_files`, and records `runcmd`, which `sim._runcmd` runs in the background
once the VM is up.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import time
from pathlib import Path
from typing import Any

from pveplan.sim._apt import install_packages, package_version
from pveplan.sim._hostctl import link_timezone
from pveplan.sim._runcmd import CLOUD_INIT_VERSION, RUNNER_LOG, plan_runcmd, rfc2822, runcmd_entries
from pveplan.sim._state import SimRoot
from pveplan.sim._users import free_id, group_list, new_user, user_record
from pveplan.sim._vm import (
    BASE_SERVICES,
    CLOUD_INIT_SUDOERS,
    DEFAULT_TIMEZONE,
    SUDOERS,
    SYSTEM_GROUPS,
    Guest,
)

DEFAULT_USER = "debian"  # the default user of Debian's cloud images
NOPASSWD_RULE = "ALL=(ALL) NOPASSWD:ALL"
DEFAULT_USER_GROUPS = [
    "adm",
    "audio",
    "cdrom",
    "dialout",
    "dip",
    "floppy",
    "netdev",
    "plugdev",
    "sudo",
    "video",
]
BASE_PACKAGES = (
    "apt",
    "bash",
    "ca-certificates",
    "cloud-init",
    "coreutils",
    "dpkg",
    "openssh-server",
    "qemu-guest-agent",
    "sudo",
    "systemd",
    "systemd-timesyncd",
)
VM_DIRS = (
    "bin",
    "home",
    "root/.ssh",
    "etc/ssh",
    "etc/sudoers.d",
    "etc/systemd/system",
    "var/lib/sim",
    "var/log",
)
CLOUD_LOG = RUNNER_LOG
DEBIAN_SUDOERS = """\
#
# This file MUST be edited with the 'visudo' command as root.
#
# Please consider adding local content in /etc/sudoers.d/ instead of
# directly modifying this file.
#
# See the man page for details on how to write a sudoers file.
#
Defaults\tenv_reset
Defaults\tmail_badpass
Defaults\tsecure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
Defaults\tuse_pty

# Host alias specification

# User alias specification

# Cmnd alias specification

# User privilege specification
root\tALL=(ALL:ALL) ALL

# Allow members of group sudo to execute any command
%sudo\tALL=(ALL:ALL) ALL

# See sudoers(5) for more information on "@include" directives:

@includedir /etc/sudoers.d
"""
"""Debian 12's /etc/sudoers (sudo 1.9.13), trimmed of its commented-out examples."""


# --- cloud-init (called by the host's `qm start`) ----------------------------------------


def apply_cloud_init(
    root: SimRoot, node: str, vmid: int, user_data: str | None, *, hostname: str
) -> None:
    """Boot VM `vmid`: its tree and tools, then cloud-init if its user-data is new.

    `user_data` is what the VM's cloud-init drive carries (None: the VM has no such
    drive, so nobody gets keys). Like cloud-init's per-instance modules, users, keys and
    the hostname are applied once per instance id (a hash of the user-data); a later
    start with the same data changes nothing, one with new data applies it again.
    """
    from pveplan.sim._setup import write_guest_launchers

    guest = Guest(root, node, vmid)
    for sub in VM_DIRS:
        (guest.dir / sub).mkdir(parents=True, exist_ok=True)
    write_guest_launchers(root, node, vmid)
    _seed_base_system(guest, hostname)
    instance = hashlib.sha1((user_data or "").encode()).hexdigest()
    marker = guest.sim / "instance-id"
    if user_data is None or (marker.exists() and marker.read_text() == instance):
        _ensure_host_key(guest, None, hostname)
        return
    cloud = _parse_cloud_config(user_data)
    _write_files(guest, cloud, deferred=False)  # init stage: before users and keys
    _apply_users(guest, cloud)
    _apply_root_keys(guest, cloud)
    _ensure_host_key(guest, cloud.get("ssh_keys"), hostname)
    _apply_system(guest, cloud, hostname)
    _write_files(guest, cloud, deferred=True)  # final stage: after packages and users
    entries, warnings = runcmd_entries(cloud.get("runcmd"))
    for warning in warnings:
        _cloud_log(guest, "cc_runcmd", warning)
    plan_runcmd(guest.dir, instance, entries)  # run after the boot (`_runcmd.launch`)
    marker.write_text(instance)


def _parse_cloud_config(text: str) -> dict[str, Any]:
    """The user-data as cloud-init reads it; unreadable data configures nothing."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _seed_base_system(guest: Guest, hostname: str) -> None:
    """What the image ships with: root, base packages and services, UTC, its hostname."""
    with guest.edit("users") as data:
        data.setdefault("users", {}).setdefault("root", user_record("root", 0, "/bin/bash", []))
        data.setdefault("groups", {})
    with guest.edit("packages") as data:
        for name in BASE_PACKAGES if not data else ():
            data[name] = {"status": "installed", "version": package_version(name)}
    with guest.edit("services") as data:
        for unit in BASE_SERVICES if not data else ():
            data[f"{unit}.service"] = {"enabled": True, "active": True}
    with guest.edit("system") as data:
        data.setdefault("timezone", DEFAULT_TIMEZONE)
        data.setdefault("hostname", hostname)
    hostfile = guest.dir / "etc" / "hostname"
    if not hostfile.exists():
        hostfile.write_text(hostname + "\n")
    sudoers = guest.dir / SUDOERS
    if not sudoers.exists():
        sudoers.write_text(DEBIAN_SUDOERS)
        os.chmod(sudoers, 0o440)
    if not (guest.dir / "etc" / "localtime").is_symlink():
        link_timezone(guest, guest.read("system").get("timezone", DEFAULT_TIMEZONE))


def _cloud_log(guest: Guest, module: str, message: str, level: str = "WARNING") -> None:
    """A line of cloud-init's own log (`/var/log/cloud-init.log`)."""
    path = guest.dir / CLOUD_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    with open(path, "a") as log:
        log.write(f"{stamp},000 - {module}.py[{level}]: {message}\n")


# --- write_files -------------------------------------------------------------------------


def _write_files(guest: Guest, cloud: dict[str, Any], *, deferred: bool) -> None:
    """cloud-init's `write_files` (the entries with `defer: true` when `deferred`): each
    `content` decoded per `encoding`, written (or appended) at `path` inside the VM's tree
    with `permissions` (default 0644). `owner` is recorded, not applied (the simulator is
    not root). A path that would leave the tree is refused, as is an undecodable content;
    either is logged in cloud-init.log and the other entries still get written."""
    entries = cloud.get("write_files")
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, dict) or _cloud_bool(entry.get("defer", False)) != deferred:
            continue
        module = "cc_write_files_deferred" if deferred else "cc_write_files"
        if not entry.get("path"):
            _cloud_log(guest, module, f"No path provided to write for entry {index + 1}")
            continue
        path = str(entry["path"])
        try:
            data = _file_content(entry.get("content"), entry.get("encoding"))
            target = _tree_path(guest.dir, path)
            mode = _file_mode(entry.get("permissions"))
            with open(target, "ab" if _cloud_bool(entry.get("append", False)) else "wb") as out:
                out.write(data)
            os.chmod(target, mode)
        except (OSError, ValueError) as exc:
            _cloud_log(guest, module, f"Failed to write {path}: {exc}")
            continue
        with guest.edit("files") as files:
            files["/" + str(target.relative_to(guest.dir.resolve()))] = {
                "owner": str(entry.get("owner") or "root:root"),
                "permissions": f"{mode:04o}",
            }


def _tree_path(tree: Path, path: str) -> Path:
    """Where absolute VM path `path` is in `tree`, its parent directories made (0755).

    Raises ValueError for a path that would leave the tree: a `..` component, or a
    symlink (a directory on the way, or the file itself) that resolves outside it.
    """
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"'{path}' leaves the VM's tree ('..')")
    if not parts:
        raise ValueError(f"'{path}' is not a file")
    base = tree.resolve()
    current = base
    for part in parts[:-1]:
        step = _inside(base, current / part, path)
        if not step.exists():
            step.mkdir(mode=0o755)
        elif not step.is_dir():
            raise ValueError(f"'{path}': /{step.relative_to(base)} is not a directory")
        current = step
    target = _inside(base, current / parts[-1], path)
    if target.is_dir():
        raise ValueError(f"'{path}' is a directory")
    return target


def _inside(base: Path, step: Path, path: str) -> Path:
    """`step`, through its symlink if it is one; ValueError if that leaves `base`."""
    if not step.is_symlink():
        return step
    resolved = step.resolve()
    if not resolved.is_relative_to(base):
        raise ValueError(f"'{path}' leaves the VM's tree (symlink /{step.relative_to(base)})")
    return resolved


ENCODINGS = {
    "b64": ("base64",),
    "base64": ("base64",),
    "gz": ("gzip",),
    "gzip": ("gzip",),
    "gz+b64": ("base64", "gzip"),
    "gz+base64": ("base64", "gzip"),
    "gzip+b64": ("base64", "gzip"),
    "gzip+base64": ("base64", "gzip"),
    "text/plain": (),
}


def _file_content(content: Any, encoding: Any) -> bytes:
    """A write_files `content` as bytes, decoded as its `encoding` says (cloud-init's
    names; an unknown one is taken as text/plain, as cloud-init does)."""
    if content is None:
        data = b""
    elif isinstance(content, bytes):
        data = content
    else:
        data = str(content).encode()
    for step in ENCODINGS.get(str(encoding or "text/plain").strip().lower(), ()):
        if step == "base64":
            data = base64.b64decode(data)
        else:
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                raise ValueError(f"cannot gunzip: {exc}") from exc
    return data


def _file_mode(value: Any) -> int:
    """`permissions` as cloud-init decodes it: a number as is (YAML reads 0600 as octal),
    a string as octal; anything else the default 0644."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value) & 0o7777
        if value is not None:
            return int(str(value), 8) & 0o7777
    except ValueError:
        pass
    return 0o644


def _sudo_rules(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(rule) for rule in value]
    return []


def _cloud_users(cloud: dict[str, Any]) -> list[dict[str, Any]]:
    """cloud-init's `users` (with `default` expanded, `user:` renaming it) as dicts."""
    default = {
        "name": str(cloud.get("user") or DEFAULT_USER),
        "gecos": "Debian",
        "sudo": NOPASSWD_RULE,
        "groups": DEFAULT_USER_GROUPS,
        "shell": "/bin/bash",
        "ssh_authorized_keys": list(cloud.get("ssh_authorized_keys") or []),
    }
    entries = cloud.get("users", ["default"])
    users = []
    for entry in entries if isinstance(entries, list) else ["default"]:
        if entry == "default":
            users.append(default)
        elif isinstance(entry, str):
            users.append({"name": entry})
        elif isinstance(entry, dict) and entry.get("name"):
            users.append(entry)
    return users


def _apply_users(guest: Guest, cloud: dict[str, Any]) -> None:
    with guest.edit("users") as data:
        users, groups = data.setdefault("users", {}), data.setdefault("groups", {})
        for entry in _cloud_users(cloud):
            name = str(entry["name"])
            wanted = group_list(entry.get("groups"))
            for group in wanted:
                if group not in SYSTEM_GROUPS and group not in groups:
                    groups[group] = free_id({**SYSTEM_GROUPS, **groups}.values(), 1001)
            record = users.get(name) or new_user(
                users, name, str(entry.get("shell") or "/bin/bash")
            )
            record["groups"] = sorted(set(record["groups"]) | set(wanted))
            record["sudo"] = _sudo_rules(entry.get("sudo")) or record["sudo"]
            if entry.get("gecos"):
                record["comment"] = str(entry["gecos"])
            keys = [str(key).strip() for key in entry.get("ssh_authorized_keys") or []]
            _write_authorized_keys(guest, name, keys)
            _write_sudo_rules(guest, name, _sudo_rules(entry.get("sudo")))


def _write_sudo_rules(guest: Guest, user: str, rules: list[str]) -> None:
    """cloud-init's `/etc/sudoers.d/90-cloud-init-users` (0440): a header when it creates
    the file, then `# User rules for USER` and one `USER RULE` line per rule (lines the
    file already has are not repeated)."""
    if not rules:
        return
    path = guest.dir / CLOUD_INIT_SUDOERS
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = path.read_text() if path.exists() else ""
    lines = [f"{user} {rule}" for rule in rules if f"{user} {rule}" not in existing.splitlines()]
    if not lines:
        return
    if not existing:
        existing = f"# Created by cloud-init v. {CLOUD_INIT_VERSION} on {rfc2822()}\n"
    path.write_text(existing + "\n" + f"# User rules for {user}\n" + "\n".join(lines) + "\n")
    os.chmod(path, 0o440)


def _apply_root_keys(guest: Guest, cloud: dict[str, Any]) -> None:
    """cloud-init's `disable_root: false`: the top-level `ssh_authorized_keys` (the default
    user's) let root in as well. With `disable_root` true, its default, real cloud-init adds
    them behind a command that only says to log in as the default user; here root gets none.
    """
    if _cloud_bool(cloud.get("disable_root", True)):
        return
    keys = [str(key).strip() for key in cloud.get("ssh_authorized_keys") or []]
    if keys:
        _write_authorized_keys(guest, "root", keys)


def _cloud_bool(value: Any) -> bool:
    """A cloud-config boolean as cloud-init reads it (YAML booleans or their spellings)."""
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "no", "off", "0")
    return bool(value)


def _write_authorized_keys(guest: Guest, user: str, keys: list[str]) -> None:
    ssh = guest.home(user) / ".ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    os.chmod(ssh, 0o700)
    path = ssh / "authorized_keys"
    existing = path.read_text().splitlines() if path.exists() else []
    lines = existing + [key for key in keys if key and key not in existing]
    path.write_text("".join(line + "\n" for line in lines))
    os.chmod(path, 0o600)


def _ensure_host_key(guest: Guest, keys: Any, hostname: str) -> None:
    """The host key cloud-init installs (`ssh_keys`), or one generated as sshd would."""
    private = guest.dir / "etc" / "ssh" / "ssh_host_ed25519_key"
    given = keys if isinstance(keys, dict) else {}
    if given.get("ed25519_private"):
        _write_secret(private, str(given["ed25519_private"]).strip() + "\n")
        public = str(given.get("ed25519_public") or "").strip()
        private.with_suffix(".pub").write_text(public + "\n" if public else "")
        return
    if private.exists():
        return
    from pveplan.executor import generate_ed25519  # as sshd would: a fresh key at first boot

    key, public_line = generate_ed25519(f"root@{hostname}")
    _write_secret(private, key.decode())
    private.with_suffix(".pub").write_text(public_line + "\n")


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def _apply_system(guest: Guest, cloud: dict[str, Any], fallback: str) -> None:
    hostname = str(cloud.get("hostname") or str(cloud.get("fqdn") or "").split(".")[0] or fallback)
    with guest.edit("system") as data:
        data["hostname"] = hostname
        if cloud.get("timezone"):
            data["timezone"] = str(cloud["timezone"])
    if cloud.get("timezone"):
        link_timezone(guest, str(cloud["timezone"]))
    (guest.dir / "etc" / "hostname").write_text(hostname + "\n")
    packages = [str(p) for p in cloud.get("packages") or [] if isinstance(p, str)]
    if packages:
        install_packages(guest, packages)
