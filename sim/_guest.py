"""Inside a simulated VM: cloud-init's first boot, and the Debian tools pveplan runs there.

A simulated VM is a directory tree (`vms/NODE/VMID/`). Its first start applies cloud-init
the way a Debian cloud image would, once per instance: `write_files`, users with their
authorized keys and sudo rules (also in `/etc/sudoers.d/90-cloud-init-users`), the SSH
host key, the hostname, packages, deferred `write_files`, and records `runcmd`, which
`sim._runcmd` runs in the background once the VM is up. Afterwards pveplan (or the
VM itself) configures the guest with `sudo`, `apt-get`, `dpkg-query`, `systemctl`,
`timedatectl`, `useradd`, `usermod`, `id`, `getent`, `hostnamectl` and `cloud-init status`;
the launchers in the VM's `bin/` run `main` here, which answers with the stdout, stderr
and exit codes of the Debian commands and records the effect in `var/lib/sim/*.json`.
The caller is `$USER` (the daemon sets it per SSH login); `sudo` runs its command with
USER=root, which is what the root-only commands check, if the VM's sudoers files (or the
rules cloud-init recorded) let the caller in without a password. Installing `proxmox-ve`
makes the VM a simulated PVE host in its own right (`sim._setup.make_nested_host`).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import fnmatch
import gzip
import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pveplan.sim._runcmd import (
    BOOT_FINISHED,
    CLOUD_INIT_VERSION,
    DATASOURCE,
    RUNNER_LOG,
    plan_runcmd,
    read_record,
    rfc2822,
    runcmd_entries,
)
from pveplan.sim._setup import PVE_VERSION, NodeNameTaken, make_nested_host
from pveplan.sim._state import SimRoot, write_json_atomic

DEFAULT_USER = "debian"  # the default user of Debian's cloud images
DEFAULT_TIMEZONE = "Etc/UTC"
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
SYSTEM_GROUPS = {
    "root": 0,
    "adm": 4,
    "dialout": 20,
    "cdrom": 24,
    "floppy": 25,
    "sudo": 27,
    "audio": 29,
    "dip": 30,
    "video": 44,
    "plugdev": 46,
    "staff": 50,
    "users": 100,
    "netdev": 106,
    "systemd-journal": 999,
}
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
BASE_SERVICES = ("cloud-init", "cron", "qemu-guest-agent", "ssh", "systemd-timesyncd")
# The units a package ships (Debian enables and starts them on install).
PACKAGE_UNITS: dict[str, tuple[str, ...]] = {
    "openssh-server": ("ssh",),
    "docker.io": ("docker",),
    "docker-ce": ("docker",),
    "apache2": ("apache2",),
    "nginx": ("nginx",),
    "chrony": ("chrony",),
    "cron": ("cron",),
    "fail2ban": ("fail2ban",),
    "mariadb-server": ("mariadb",),
    "postgresql": ("postgresql",),
    "redis-server": ("redis-server",),
    "nfs-kernel-server": ("nfs-server",),
    "unattended-upgrades": ("unattended-upgrades",),
    "qemu-guest-agent": ("qemu-guest-agent",),
    "prometheus-node-exporter": ("prometheus-node-exporter",),
    "pve-manager": ("pveproxy", "pvedaemon", "pvestatd", "pvescheduler", "spiceproxy"),
    "pve-cluster": ("pve-cluster",),
    "pve-firewall": ("pve-firewall",),
    "pve-ha-manager": ("pve-ha-crm", "pve-ha-lrm"),
    "qemu-server": ("qmeventd",),
}
PVE_PACKAGE = "proxmox-ve"
# What apt pulls in with a package (only where the simulator needs it: PVE's services).
PACKAGE_DEPENDS: dict[str, tuple[str, ...]] = {
    PVE_PACKAGE: (
        "pve-manager",
        "qemu-server",
        "pve-cluster",
        "pve-firewall",
        "pve-ha-manager",
        "proxmox-default-kernel",
    ),
}
PACKAGE_VERSIONS = {
    PVE_PACKAGE: f"{PVE_VERSION['release']}.0",
    "pve-manager": PVE_VERSION["version"],
}
PACKAGE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+.\-]+(=[\w.:~+\-]+)?$")
USER_NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\$?$")
HOSTNAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,62})(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,62}))*$")
UNIT_DIRS = ("etc/systemd/system", "lib/systemd/system", "usr/lib/systemd/system")
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
SUDOERS = Path("etc/sudoers")
SUDOERS_D = Path("etc/sudoers.d")
CLOUD_INIT_SUDOERS = SUDOERS_D / "90-cloud-init-users"
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


# --- the VM's recorded state ----------------------------------------------------------


class Guest:
    """One simulated VM's tree, and its state files under `var/lib/sim/`."""

    def __init__(self, root: SimRoot, node: str, vmid: int) -> None:
        self.root = root
        self.node = node
        self.vmid = vmid
        self.dir = root.vm_dir(node, vmid)
        self.sim = self.dir / "var" / "lib" / "sim"

    @property
    def caller(self) -> str:
        """Who runs the command: the login user the daemon set, root when unset."""
        return os.environ.get("USER") or os.environ.get("LOGNAME") or "root"

    def read(self, name: str) -> dict[str, Any]:
        try:
            return json.loads((self.sim / f"{name}.json").read_text())
        except FileNotFoundError:
            return {}

    @contextlib.contextmanager
    def edit(self, name: str) -> Iterator[dict[str, Any]]:
        """A state file to change in place, under the guest's lock (concurrent SSH runs)."""
        self.sim.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.sim / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = self.read(name)
            yield data
            write_json_atomic(self.sim / f"{name}.json", data)
        finally:
            os.close(fd)

    def home(self, user: str) -> Path:
        return self.dir / "root" if user == "root" else self.dir / "home" / user

    def users(self) -> dict[str, Any]:
        return self.read("users").get("users", {})

    def groups(self) -> dict[str, int]:
        return {**SYSTEM_GROUPS, **self.read("users").get("groups", {})}


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()


def _package_version(name: str) -> str:
    if name in PACKAGE_VERSIONS:
        return PACKAGE_VERSIONS[name]
    digest = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)
    return f"{digest % 9 + 1}.{digest % 17}.{digest % 5}-{digest % 3 + 1}"


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
        data.setdefault("users", {}).setdefault("root", _user_record("root", 0, "/bin/bash", []))
        data.setdefault("groups", {})
    with guest.edit("packages") as data:
        for name in BASE_PACKAGES if not data else ():
            data[name] = {"status": "installed", "version": _package_version(name)}
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
        _link_timezone(guest, guest.read("system").get("timezone", DEFAULT_TIMEZONE))


def _link_timezone(guest: Guest, timezone: str) -> None:
    """/etc/localtime -> /usr/share/zoneinfo/TZ and /etc/timezone, as Debian keeps them."""
    etc = guest.dir / "etc"
    link = etc / "localtime"
    tmp = etc / ".localtime.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(f"/usr/share/zoneinfo/{timezone}")
    os.replace(tmp, link)
    (etc / "timezone").write_text(timezone + "\n")


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


def _user_record(
    name: str, uid: int, shell: str, groups: list[str], sudo: list[str] | None = None
) -> dict[str, Any]:
    home = "/root" if name == "root" else f"/home/{name}"
    return {
        "uid": uid,
        "gid": uid,
        "home": home,
        "shell": shell,
        "groups": groups,
        "sudo": sudo or [],
    }


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


def _group_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [g.strip() for g in value.split(",") if g.strip()]
    return [str(g) for g in value] if isinstance(value, list) else []


def _apply_users(guest: Guest, cloud: dict[str, Any]) -> None:
    with guest.edit("users") as data:
        users, groups = data.setdefault("users", {}), data.setdefault("groups", {})
        for entry in _cloud_users(cloud):
            name = str(entry["name"])
            wanted = _group_list(entry.get("groups"))
            for group in wanted:
                if group not in SYSTEM_GROUPS and group not in groups:
                    groups[group] = _free_id({**SYSTEM_GROUPS, **groups}.values(), 1001)
            record = users.get(name) or _new_user(
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


def _new_user(users: dict[str, Any], name: str, shell: str) -> dict[str, Any]:
    uid = 0 if name == "root" else _free_id((u["uid"] for u in users.values()), 1000)
    users[name] = _user_record(name, uid, shell, [])
    return users[name]


def _free_id(taken: Any, start: int) -> int:
    used = set(taken)
    return next(n for n in range(start, 60000) if n not in used)


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
        _link_timezone(guest, str(cloud["timezone"]))
    (guest.dir / "etc" / "hostname").write_text(hostname + "\n")
    packages = [str(p) for p in cloud.get("packages") or [] if isinstance(p, str)]
    if packages:
        _install_packages(guest, packages)


# --- sudo ------------------------------------------------------------------------------


SUDO_TAGS = {
    "NOPASSWD", "PASSWD", "NOEXEC", "EXEC", "SETENV", "NOSETENV", "LOG_INPUT", "NOLOG_INPUT",
    "LOG_OUTPUT", "NOLOG_OUTPUT", "MAIL", "NOMAIL", "FOLLOW", "NOFOLLOW", "INTERCEPT",
    "NOINTERCEPT",
}  # fmt: skip
SUDOERS_OTHER = re.compile(
    r"^(Defaults\b|Defaults[:@!>]|(User|Runas|Host|Cmnd|Cmd)_Alias\b|[@#]include(dir)?\b)"
)
SUDOERS_RULE = re.compile(
    r"^(?P<users>[^\s,=]+(?:\s*,\s*[^\s,=]+)*)\s+"
    r"(?P<hosts>[^\s,=]+(?:\s*,\s*[^\s,=]+)*)\s*=\s*(?P<spec>\S.*)$"
)


class SudoersError(ValueError):
    """A sudoers source sudo cannot parse: sudo then refuses to run anything."""

    def __init__(self, path: str, line: int) -> None:
        super().__init__(f"{path} near line {line}")
        self.path, self.line = path, line


def _sudoers_sources(guest: Guest) -> list[Path]:
    """/etc/sudoers, then /etc/sudoers.d/* in lexical order, skipping what sudo's
    `@includedir` skips: names with a '.' or ending in '~'."""
    sources = [guest.dir / SUDOERS] if (guest.dir / SUDOERS).is_file() else []
    drop_ins = guest.dir / SUDOERS_D
    if drop_ins.is_dir():
        sources += sorted(
            path
            for path in drop_ins.iterdir()
            if path.is_file() and "." not in path.name and not path.name.endswith("~")
        )
    return sources


def _sudoers_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, logical line) of a sudoers file: continuations joined, comments
    (a '#' not starting `#include` or a `#uid`) and blank lines dropped."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        line, pending = pending + raw, ""
        if not line.lstrip().startswith(("#include", "#includedir")):
            line = re.sub(r"(^|\s)#(?!\d).*$", "", line)
        if line.strip():
            yield start, line.strip()


def _sudoers_rules(guest: Guest) -> list[tuple[str, str, str]]:
    """Every user spec of the VM's sudoers sources, in order, as (users, hosts, spec);
    SudoersError for a line that is none of the forms sudo knows."""
    rules = []
    for path in _sudoers_sources(guest):
        shown = "/" + str(path.relative_to(guest.dir))
        if path.stat().st_mode & 0o002:
            _err(f"sudo: {shown} is world writable")
            continue
        for number, line in _sudoers_lines(path.read_text(errors="replace")):
            if SUDOERS_OTHER.match(line):
                continue
            match = SUDOERS_RULE.match(line)
            if match is None:
                raise SudoersError(shown, number)
            rules.append((match["users"], match["hosts"], match["spec"]))
    return rules


def _split_top(text: str) -> list[str]:
    """`text` split at the commas outside parentheses."""
    items, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += char
    return [*items, current.strip()]


def _sudo_user_matches(guest: Guest, item: str, user: str) -> bool:
    record = guest.users().get(user) or {}
    groups = {user, *record.get("groups", [])}
    if item == "ALL" or item == user:
        return True
    if item.startswith("%#"):
        return item[2:] in {str(guest.groups().get(g, record.get("gid"))) for g in groups}
    if item.startswith("%"):
        return item[1:] in groups
    return item.startswith("#") and item[1:] == str(record.get("uid"))


def _sudo_command_matches(spec: str, command: list[str]) -> bool:
    """A sudoers command (ALL, or a path with optional arguments, globs allowed; `""`
    means no arguments) against the command sudo was asked to run. The simulator's
    tools live in the VM's bin/, so a path matches by its base name."""
    if spec == "ALL":
        return True
    words = spec.split()
    if not fnmatch.fnmatchcase(os.path.basename(command[0]), os.path.basename(words[0])):
        return False
    if len(words) == 1:
        return True
    if words[1:] == ['""']:
        return len(command) == 1
    return fnmatch.fnmatchcase(" ".join(command[1:]), " ".join(words[1:]))


def _sudo_decision(
    guest: Guest, rules: list[tuple[str, str, str]], user: str, target: str, command: list[str]
) -> bool | None:
    """Whether the last rule that lets `user` run `command` as `target` says NOPASSWD
    (None: no rule does; a negated command that matches counts as a refusal)."""
    hostname = guest.read("system").get("hostname", "")
    decision: bool | None = None
    for users, hosts, spec in rules:
        if not any(_sudo_user_matches(guest, u.strip(), user) for u in users.split(",")):
            continue
        if not {h.strip() for h in hosts.split(",")} & {"ALL", hostname, hostname.split(".")[0]}:
            continue
        runas: list[str] | None = None
        nopasswd = False
        for item in _split_top(spec):
            if item.startswith("("):
                inner, _, item = item[1:].partition(")")
                runas = [u.strip() for u in inner.split(":")[0].split(",") if u.strip()]
                item = item.strip()
            while (tag := re.match(r"([A-Z_]+)\s*:\s*", item)) and tag[1] in SUDO_TAGS:
                nopasswd = {"NOPASSWD": True, "PASSWD": False}.get(tag[1], nopasswd)
                item = item[tag.end() :]
            negated = item.startswith("!")
            allowed_as = runas if runas is not None else ["root"]
            if not ("ALL" in allowed_as or target in allowed_as):
                continue
            if _sudo_command_matches(item.lstrip("!").strip(), command):
                decision = nopasswd and not negated
    return decision


def _sudo_allowed(guest: Guest, user: str, target: str, command: list[str]) -> bool:
    """Whether `user` may run `command` as `target` without a password (the only way
    without a terminal): root always; others by the VM's sudoers files (the last
    matching rule decides, as in sudo) or the rules cloud-init recorded for them.
    Raises SudoersError when a sudoers file does not parse (sudo refuses everyone)."""
    rules = _sudoers_rules(guest)
    if user == "root":
        return True
    if _sudo_decision(guest, rules, user, target, command):
        return True
    record = guest.users().get(user) or {}
    recorded = [(user, *rule.split("=", 1)) for rule in record.get("sudo", []) if "=" in rule]
    return bool(_sudo_decision(guest, recorded, user, target, command))


def _resolve_command(guest: Guest, command: str) -> str | None:
    bindir = guest.dir / "bin"
    name = command.rsplit("/", 1)[-1]
    if (bindir / name).is_file():
        return str(bindir / name)
    if "/" in command:
        return command if os.access(command, os.X_OK) else None
    return shutil.which(command)


def sudo(guest: Guest, argv: list[str]) -> int:
    """`sudo [-n] [-E] [-H] [-u USER] CMD ARGS...`: runs CMD as root (USER=root)."""
    target, index = "root", 0
    non_interactive = False
    while index < len(argv) and argv[index].startswith("-"):
        flag = argv[index]
        index += 1
        if flag == "--":
            break
        if flag == "-u" and index < len(argv):
            target, index = argv[index], index + 1
        elif flag == "-n":
            non_interactive = True
        elif flag not in ("-E", "-H", "-S"):
            _err(f"sudo: invalid option -- '{flag.lstrip('-')[:1]}'")
            return 1
    command = argv[index:]
    if not command:
        _err("usage: sudo -h | -K | -k | -V\nusage: sudo [-AbEHknPS] [-u user] command [arg ...]")
        return 1
    try:
        allowed = _sudo_allowed(guest, guest.caller, target, command)
    except SudoersError as exc:
        _err(f">>> {exc.path}: syntax error near line {exc.line} <<<")
        _err(f"sudo: parse error in {exc}")
        _err("sudo: no valid sudoers sources found, quitting")
        _err("sudo: error initializing audit plugin sudoers_audit")
        return 1
    if not allowed:
        if not non_interactive:
            _err(
                "sudo: a terminal is required to read the password; either use the -S option "
                "to read from standard input or configure an askpass helper"
            )
        _err("sudo: a password is required")
        return 1
    return _exec_as(guest, target, command)


def _exec_as(guest: Guest, target: str, command: list[str]) -> int:
    path = _resolve_command(guest, command[0])
    if path is None:
        _err(f"sudo: {command[0]}: command not found")
        return 1
    env = {**os.environ, "USER": target, "LOGNAME": target, "HOME": str(guest.home(target))}
    env["SUDO_USER"] = guest.caller
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(path, [command[0], *command[1:]], env)
    return 1  # not reached


# --- apt-get and dpkg-query --------------------------------------------------------------

APT_OPTIONS_WITH_VALUE = ("-o", "-t", "-c", "--option", "--target-release")


def _split_apt_args(argv: list[str]) -> tuple[list[str], list[str]]:
    options, words = [], []
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg in APT_OPTIONS_WITH_VALUE:
            options += [arg, argv[index] if index < len(argv) else ""]
            index += 1
        elif arg.startswith("-"):
            options.append(arg)
        else:
            words.append(arg)
    return options, words


def _apt_lock_error(command: str) -> int:
    if command == "update":
        _err("E: Could not open lock file /var/lib/apt/lists/lock - open (13: Permission denied)")
        _err("E: Unable to lock directory /var/lib/apt/lists/")
    else:
        _err(
            "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)"
        )
        _err(
            "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), "
            "are you root?"
        )
    return 100


def apt_get(guest: Guest, argv: list[str]) -> int:
    """`apt-get [-y] update|install|remove|purge|upgrade PKG...` (root only)."""
    _options, words = _split_apt_args(argv)
    if not words:
        _out("apt 2.6.1 (amd64)\nUsage: apt-get [options] command\n")
        return 1
    command, packages = words[0], words[1:]
    actions: dict[str, Callable[[Guest, list[str]], int]] = {
        "update": _apt_update,
        "install": _apt_install,
        "remove": lambda g, p: _apt_remove(g, p, purge=False),
        "purge": lambda g, p: _apt_remove(g, p, purge=True),
        "upgrade": _apt_noop,
        "dist-upgrade": _apt_noop,
        "full-upgrade": _apt_noop,
        "autoremove": _apt_noop,
        "clean": lambda g, p: 0,
    }
    if command not in actions:
        _err(f"E: Invalid operation {command}")
        return 100
    if guest.caller != "root":
        return _apt_lock_error(command)
    return actions[command](guest, packages)


def _apt_reading() -> None:
    _out("Reading package lists...\nBuilding dependency tree...\nReading state information...\n")


def _apt_update(guest: Guest, packages: list[str]) -> int:
    suites = ("bookworm", "bookworm-updates")
    for index, suite in enumerate(suites, 1):
        _out(f"Hit:{index} http://deb.debian.org/debian {suite} InRelease\n")
    _out("Hit:3 http://security.debian.org/debian-security bookworm-security InRelease\n")
    _out("Reading package lists...\n")
    with guest.edit("system") as data:
        data["apt_updated"] = True
    return 0


def _apt_noop(guest: Guest, packages: list[str]) -> int:
    _apt_reading()
    _out("Calculating upgrade...\n0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n")
    return 0


def _apt_install(guest: Guest, packages: list[str]) -> int:
    _apt_reading()
    bad = [name for name in packages if not PACKAGE_NAME_RE.match(name)]
    if bad:
        _err(f"E: Unable to locate package {bad[0]}")
        return 100
    installed = _install_packages(guest, [name.split("=")[0] for name in packages])
    return 0 if installed is not None else 100


def _install_packages(guest: Guest, names: list[str]) -> list[str] | None:
    """Mark `names` and what they pull in installed (enabling and starting their units, as
    Debian does); the packages new to the VM, or None (after an `E:` line) on failure.

    `proxmox-ve` makes the VM a PVE host first, so a host that cannot be (its name is
    taken) leaves nothing half-installed.
    """
    wanted = list(dict.fromkeys(names))
    pulled = [d for name in wanted for d in PACKAGE_DEPENDS.get(name, ()) if d not in wanted]
    if PVE_PACKAGE in wanted and not _become_pve_host(guest):
        return None
    with guest.edit("packages") as data:
        new = [
            n
            for n in dict.fromkeys(wanted + pulled)
            if data.get(n, {}).get("status") != "installed"
        ]
        for name in wanted:
            if name not in new:
                _out(f"{name} is already the newest version ({data[name]['version']}).\n")
        extra = [name for name in pulled if name in new]
        if extra:
            _out(
                "The following additional packages will be installed:\n  " + " ".join(extra) + "\n"
            )
        if new:
            _out("The following NEW packages will be installed:\n  " + " ".join(new) + "\n")
        _out(f"0 upgraded, {len(new)} newly installed, 0 to remove and 0 not upgraded.\n")
        for name in new:
            data[name] = {"status": "installed", "version": _package_version(name)}
            _out(f"Setting up {name} ({data[name]['version']}) ...\n")
    _package_units(guest, new, present=True)
    return new


def _become_pve_host(guest: Guest) -> bool:
    """Make this VM a PVE host named after its hostname; False (said on stderr) if it can't."""
    hostname = guest.read("system").get("hostname")
    try:
        make_nested_host(guest.root, guest.node, guest.vmid, hostname)
    except NodeNameTaken as exc:
        _err(f"E: {exc}")
        return False
    except ValueError as exc:
        _err(f"E: cannot set up {PVE_PACKAGE}: {exc}")
        return False
    return True


def _package_units(guest: Guest, packages: list[str], *, present: bool) -> None:
    units = [f"{unit}.service" for name in packages for unit in PACKAGE_UNITS.get(name, ())]
    with guest.edit("services") as data:
        for unit in units:
            if present:
                data[unit] = {"enabled": True, "active": True}
            else:
                data.pop(unit, None)


def _apt_remove(guest: Guest, packages: list[str], *, purge: bool) -> int:
    _apt_reading()
    with guest.edit("packages") as data:
        gone = [
            n
            for n in packages
            if data.get(n, {}).get("status") == "installed" or (purge and n in data)
        ]
        for name in packages:
            if name not in gone:
                _out(f"Package '{name}' is not installed, so not removed\n")
        if gone:
            shown = [f"{name}*" if purge else name for name in gone]
            _out("The following packages will be REMOVED:\n  " + " ".join(shown) + "\n")
        _out(f"0 upgraded, 0 newly installed, {len(gone)} to remove and 0 not upgraded.\n")
        for name in gone:
            version = data[name]["version"]
            if data[name]["status"] == "installed":
                _out(f"Removing {name} ({version}) ...\n")
            if purge:
                _out(f"Purging configuration files for {name} ({version}) ...\n")
                del data[name]
            else:
                data[name]["status"] = "config-files"
    _package_units(guest, gone, present=False)  # prerm stops them; their unit files go
    return 0


DPKG_STATUS = {"installed": "install ok installed", "config-files": "deinstall ok config-files"}


def _dpkg_fields(name: str, record: dict[str, Any]) -> dict[str, str]:
    status = DPKG_STATUS[record["status"]]
    abbrev = "ii " if record["status"] == "installed" else "rc "
    return {
        "Package": name,
        "binary:Package": name,
        "Version": record["version"],
        "Status": status,
        "db:Status-Abbrev": abbrev,
        "Architecture": "amd64",
    }


def _dpkg_format(fmt: str, fields: dict[str, str]) -> str:
    text = re.sub(r"\$\{([^}:;]+(?::[^};]+)?)(;-?\d+)?\}", lambda m: fields.get(m[1], ""), fmt)
    return text.replace("\\n", "\n").replace("\\t", "\t")


def _dpkg_query_args(argv: list[str]) -> tuple[str | None, str, list[str]]:
    """(action, format, packages) of a dpkg-query command line."""
    action, fmt, names = None, "${binary:Package}\t${Version}\n", []
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg in ("-W", "--show", "-s", "--status", "-l", "--list"):
            action = {"--show": "-W", "--status": "-s", "--list": "-l"}.get(arg, arg)
        elif arg.startswith(("-f=", "--showformat=")):
            fmt = arg.split("=", 1)[1]
        elif arg.startswith("-f") and len(arg) > 2:
            fmt = arg[2:]
        elif arg in ("-f", "--showformat") and index < len(argv):
            fmt, index = argv[index], index + 1
        else:
            names.append(arg)
    return action, fmt, names


def dpkg_query(guest: Guest, argv: list[str]) -> int:
    """`dpkg-query -W [-f=FORMAT] PKG...` and `dpkg-query -s PKG`."""
    action, fmt, names = _dpkg_query_args(argv)
    if action is None:
        _err("dpkg-query: error: need an action option\n\nType dpkg-query --help for help.")
        return 2
    packages = guest.read("packages")
    names = names or sorted(packages)
    code = 0
    for name in names:
        record = packages.get(name)
        if record is None:
            _err(f"dpkg-query: no packages found matching {name}")
            code = 1
        elif action == "-s":
            fields = _dpkg_fields(name, record)
            _out(
                "".join(
                    f"{k}: {fields[k]}\n" for k in ("Package", "Status", "Architecture", "Version")
                )
            )
        else:
            _out(_dpkg_format(fmt, _dpkg_fields(name, record)))
    return code


# --- systemctl ---------------------------------------------------------------------------

SYSTEMCTL_MUTATIONS = ("enable", "disable", "start", "stop", "restart", "reload", "daemon-reload")
UNIT_ALIASES = {"sshd.service": "ssh.service"}  # Debian's openssh-server: Alias=sshd.service
NO_INSTALL_CONFIG = """\
The unit files have no installation config (WantedBy=, RequiredBy=, Also=,
Alias= settings in the [Install] section, and DefaultInstance= for template
units). This means they are not meant to be enabled or disabled using systemctl.
"""


def _unit_name(name: str) -> str:
    unit = name if "." in name else f"{name}.service"
    return UNIT_ALIASES.get(unit, unit)


def _unit_file(guest: Guest, unit: str) -> Path | None:
    """The unit's file in the VM's tree (what a user or package wrote), if any."""
    return next((guest.dir / d / unit for d in UNIT_DIRS if (guest.dir / d / unit).is_file()), None)


def _unit_exists(guest: Guest, unit: str, services: dict[str, Any]) -> bool:
    """A unit is known if its file is in the tree, or an installed package brought it
    (a unit recorded from a file is gone once its file is)."""
    if _unit_file(guest, unit) is not None:
        return True
    record = services.get(unit)
    return record is not None and not record.get("file")


def _install_targets(guest: Guest, unit: str) -> list[tuple[str, str]] | None:
    """(symlink directory, target) pairs of the unit's [Install] section, e.g.
    `("wants", "timers.target")`; None when the unit file has no installation config.
    A unit without a file (a package's) is wanted by multi-user.target."""
    path = _unit_file(guest, unit)
    if path is None:
        return [("wants", "multi-user.target")]
    section, targets, aliases = "", [], False
    for raw in path.read_text(errors="replace").splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Install" and "=" in line:
            key, _, value = (part.strip() for part in line.partition("="))
            if key in ("WantedBy", "RequiredBy"):
                kind = "wants" if key == "WantedBy" else "requires"
                targets += [(kind, target) for target in value.split()]
            aliases = aliases or key in ("Alias", "Also")
    return targets or ([] if aliases else None)


def _unit_source(guest: Guest, unit: str) -> str:
    path = _unit_file(guest, unit)
    return "/" + str(path.relative_to(guest.dir)) if path else f"/lib/systemd/system/{unit}"


def systemctl(guest: Guest, argv: list[str]) -> int:
    """`systemctl enable|disable|start|stop|restart|reload [--now] UNIT...`, `is-enabled`,
    `is-active`, `daemon-reload`."""
    flags = {arg for arg in argv if arg.startswith("-")}
    words = [arg for arg in argv if not arg.startswith("-")]
    if not words:
        _out("  UNIT  LOAD  ACTIVE  SUB  DESCRIPTION\n")
        return 0
    verb, units = words[0], [_unit_name(u) for u in words[1:]]
    quiet = bool(flags & {"-q", "--quiet"})
    if verb in ("is-enabled", "is-active"):
        if not units:
            _err("Too few arguments.")
            return 1
        return _systemctl_query(guest, verb, units, quiet)
    if verb not in SYSTEMCTL_MUTATIONS:
        _err(f'Unknown command verb "{verb}".')
        return 1
    if guest.caller != "root":
        return _systemctl_denied(verb, units)
    if verb == "daemon-reload":
        return 0
    if not units:
        _err("Too few arguments.")
        return 1
    return _systemctl_change(guest, verb, units, "--now" in flags, quiet)


def _systemctl_denied(verb: str, units: list[str]) -> int:
    if verb in ("enable", "disable", "daemon-reload"):
        _err(
            f"Failed to {verb.replace('daemon-reload', 'reload daemon')}{' unit' if units else ''}: Access denied"
        )
        return 1
    _err(f"Failed to {verb} {units[0] if units else ''}: Interactive authentication required.")
    _err(f"See system logs and 'systemctl status {units[0] if units else ''}' for details.")
    return 1


def _systemctl_query(guest: Guest, verb: str, units: list[str], quiet: bool) -> int:
    """`is-enabled` (0 if any is enabled or static; 1 otherwise, an unknown unit's error
    on stderr) and `is-active` (0 if any is active, else 3: systemd's "not running")."""
    services = guest.read("services")
    ok = False
    for unit in units:
        record = services.get(unit)
        if verb == "is-enabled":
            if not _unit_exists(guest, unit, services):
                _err(f"Failed to get unit file state for {unit}: No such file or directory")
                continue
            if record and record.get("enabled"):
                state = "enabled"
            elif _install_targets(guest, unit) is None:
                state = "static"
            else:
                state = "disabled"
        else:
            state = "active" if record and record.get("active") else "inactive"
        ok = ok or state in ("enabled", "static", "active")
        if not quiet:
            _out(state + "\n")
    if verb == "is-active":
        return 0 if ok else 3  # systemd's LSB code for "not running"
    return 0 if ok else 1


def _systemctl_change(guest: Guest, verb: str, units: list[str], now: bool, quiet: bool) -> int:
    with guest.edit("services") as services:
        for unit in units:
            if not _unit_exists(guest, unit, services):
                return _unit_missing(verb, unit)
            record = services.setdefault(unit, {"enabled": False, "active": False})
            if _unit_file(guest, unit) is not None and unit not in _packaged_units(guest):
                record["file"] = True
            code = _change_unit(guest, unit, record, verb, now, quiet)
            if code:
                return code
    return 0


def _packaged_units(guest: Guest) -> set[str]:
    installed = [n for n, r in guest.read("packages").items() if r.get("status") == "installed"]
    names = [*BASE_SERVICES, *(u for n in installed for u in PACKAGE_UNITS.get(n, ()))]
    return {f"{name}.service" for name in names}


def _unit_missing(verb: str, unit: str) -> int:
    if verb in ("enable", "disable"):
        _err(f"Failed to {verb} unit: Unit file {unit} does not exist.")
        return 1
    what = "not loaded" if verb == "stop" else "not found"
    _err(f"Failed to {verb} {unit}: Unit {unit} {what}.")
    return 5


def _change_unit(
    guest: Guest, unit: str, record: dict[str, Any], verb: str, now: bool, quiet: bool
) -> int:
    """One unit's enable/disable (with --now: start/stop) or start/stop/restart/reload,
    with systemctl's messages; the exit code (0, or 1 for a reload of an inactive unit)."""
    targets = _install_targets(guest, unit)
    links = [f"/etc/systemd/system/{target}.{kind}/{unit}" for kind, target in targets or []]
    if verb == "enable":
        if targets is None:
            _err(NO_INSTALL_CONFIG)
        elif not record["enabled"] and not quiet:
            for link in links:
                _err(f"Created symlink {link} → {_unit_source(guest, unit)}.")
        record["enabled"] = record["enabled"] or targets is not None
        record["active"] = record["active"] or now
    elif verb == "disable":
        if record["enabled"] and not quiet:
            for link in links:
                _err(f'Removed "{link}".')
        record["enabled"] = False
        record["active"] = record["active"] and not now
    elif verb == "reload":
        if not record["active"]:
            _err(f"Job for {unit} invalid.")
            return 1
    else:
        record["active"] = verb != "stop"
    return 0


# --- timedatectl, hostnamectl, useradd, id ------------------------------------------------


def _valid_timezone(name: str) -> bool:
    import zoneinfo

    if name in ("UTC", "Etc/UTC"):
        return True
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def timedatectl(guest: Guest, argv: list[str]) -> int:
    """`timedatectl set-timezone TZ`, `timedatectl show [-p Timezone] [--value]`."""
    words = [arg for arg in argv if not arg.startswith("-")]
    verb = words[0] if words else "status"
    timezone = guest.read("system").get("timezone", DEFAULT_TIMEZONE)
    if verb == "set-timezone":
        return _set_timezone(guest, words[1:])
    if verb == "show":
        return _timedatectl_show(argv, timezone)
    if verb == "status":
        _out(
            f"                Time zone: {timezone}\nSystem clock synchronized: yes\n              NTP service: active\n          RTC in local TZ: no\n"
        )
        return 0
    _err(f'Unknown command verb "{verb}".')
    return 1


def _set_timezone(guest: Guest, args: list[str]) -> int:
    if len(args) != 1:
        _err("Too few arguments." if not args else "Too many arguments.")
        return 1
    if guest.caller != "root":
        _err("Failed to set time zone: Interactive authentication required.")
        return 1
    if not _valid_timezone(args[0]):
        _err(f"Failed to set time zone: Invalid or not installed time zone '{args[0]}'")
        return 1
    with guest.edit("system") as data:
        data["timezone"] = args[0]
    _link_timezone(guest, args[0])
    return 0


def _timedatectl_show(argv: list[str], timezone: str) -> int:
    props = {
        "Timezone": timezone,
        "LocalRTC": "no",
        "CanNTP": "yes",
        "NTP": "yes",
        "NTPSynchronized": "yes",
    }
    wanted: list[str] = []
    for index, arg in enumerate(argv):
        if arg in ("-p", "--property") and index + 1 < len(argv):
            wanted += argv[index + 1].split(",")
        elif arg.startswith("--property="):
            wanted += arg.split("=", 1)[1].split(",")
    value_only = "--value" in argv
    for name in wanted or list(props):
        if name in props:
            _out(f"{props[name]}\n" if value_only else f"{name}={props[name]}\n")
    return 0


def hostnamectl(guest: Guest, argv: list[str]) -> int:
    """`hostnamectl set-hostname NAME`, `hostnamectl [hostname|status]`."""
    words = [arg for arg in argv if not arg.startswith("-")]
    verb = words[0] if words else "status"
    current = guest.read("system").get("hostname", "localhost")
    if verb == "hostname" and len(words) == 1:
        _out(current + "\n")
        return 0
    if verb in ("set-hostname", "hostname") and len(words) == 2:
        return _set_hostname(guest, words[1])
    if verb == "status":
        _out(f" Static hostname: {current}\n  Operating System: Debian GNU/Linux 12 (bookworm)\n")
        return 0
    _err(
        f'Unknown command verb "{verb}".'
        if verb not in ("set-hostname", "hostname")
        else "Too few arguments."
    )
    return 1


def _set_hostname(guest: Guest, name: str) -> int:
    if guest.caller != "root":
        _err("Could not set static hostname: Interactive authentication required.")
        return 1
    if not HOSTNAME_RE.match(name) or len(name) > 64:
        _err(f"Invalid static hostname '{name}'")
        return 1
    with guest.edit("system") as data:
        data["hostname"] = name
    (guest.dir / "etc" / "hostname").write_text(name + "\n")
    return 0


USERADD_VALUE_OPTIONS = {
    "-s": "shell",
    "--shell": "shell",
    "-G": "groups",
    "--groups": "groups",
    "-c": "comment",
    "--comment": "comment",
    "-d": "home",
    "--home-dir": "home",
    "-u": "uid",
    "--uid": "uid",
    "-g": "gid",
    "--gid": "gid",
}
USERADD_FLAGS = {
    "-m",
    "--create-home",
    "-M",
    "--no-create-home",
    "-U",
    "--user-group",
    "-N",
    "--no-user-group",
    "-r",
    "--system",
}


def _useradd_args(argv: list[str]) -> tuple[dict[str, str], set[str], list[str]] | str:
    """(options, flags, names), or the invalid option."""
    values: dict[str, str] = {}
    flags: set[str] = set()
    names: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg in USERADD_VALUE_OPTIONS and index < len(argv):
            values[USERADD_VALUE_OPTIONS[arg]], index = argv[index], index + 1
        elif arg in USERADD_FLAGS:
            flags.add(arg)
        elif arg.startswith("-"):
            return arg
        else:
            names.append(arg)
    return values, flags, names


def useradd(guest: Guest, argv: list[str]) -> int:
    """`useradd [-m] [-s SHELL] [-G GROUPS] NAME` (root only)."""
    parsed = _useradd_args(argv)
    if isinstance(parsed, str) or len(parsed[2]) != 1:
        if isinstance(parsed, str):
            _err(f"useradd: unrecognized option '{parsed}'")
        _err("Usage: useradd [options] LOGIN")
        return 2
    values, flags, (name,) = parsed
    if guest.caller != "root":
        _err("useradd: Permission denied.\nuseradd: cannot lock /etc/passwd; try again later.")
        return 1
    if not USER_NAME_RE.match(name):
        _err(f"useradd: invalid user name '{name}': use --badname to ignore")
        return 3
    return _add_user(guest, name, values, bool(flags & {"-m", "--create-home"}))


def _add_user(guest: Guest, name: str, values: dict[str, str], create_home: bool) -> int:
    wanted = _group_list(values.get("groups", ""))
    with guest.edit("users") as data:
        users, groups = data.setdefault("users", {}), data.setdefault("groups", {})
        if name in users:
            _err(f"useradd: user '{name}' already exists")
            return 9
        missing = [
            g for g in wanted if g not in SYSTEM_GROUPS and g not in groups and g not in users
        ]
        if missing:
            _err(f"useradd: group '{missing[0]}' does not exist")
            return 6
        record = _new_user(users, name, values.get("shell", "/bin/sh"))
        record["groups"] = sorted(set(wanted))
        if values.get("comment"):
            record["comment"] = values["comment"]
    if create_home:
        guest.home(name).mkdir(parents=True, exist_ok=True)
    return 0


def _gid_of(guest: Guest, group: str, users: dict[str, Any]) -> int:
    if group in users:
        return int(users[group]["gid"])
    return guest.groups().get(group, 0)


def id_command(guest: Guest, argv: list[str]) -> int:
    """`id [-u|-g|-G] [-n] [NAME]`."""
    flags = {arg for arg in argv if arg.startswith("-")}
    names = [arg for arg in argv if not arg.startswith("-")]
    name = names[0] if names else guest.caller
    users = guest.users()
    record = users.get(name)
    if record is None:
        _err(f"id: '{name}': no such user")
        return 1
    named = bool(flags & {"-n", "--name", "-un", "-gn", "-Gn", "-nu", "-ng", "-nG"})
    extra = sorted((_gid_of(guest, g, users), g) for g in record["groups"])
    groups = [(int(record["gid"]), name), *extra]
    if flags & {"-u", "--user", "-un", "-nu"}:
        _out(f"{name if named else record['uid']}\n")
    elif flags & {"-g", "--group", "-gn", "-ng"}:
        _out(f"{name if named else record['gid']}\n")
    elif flags & {"-G", "--groups", "-Gn", "-nG"}:
        _out(" ".join(g if named else str(gid) for gid, g in groups) + "\n")
    else:
        listed = ",".join(f"{gid}({g})" for gid, g in groups)
        _out(f"uid={record['uid']}({name}) gid={record['gid']}({name}) groups={listed}\n")
    return 0


def getent(guest: Guest, argv: list[str]) -> int:
    """`getent passwd|group [KEY...]`: entries in /etc/passwd and /etc/group format; exit 2
    when a key is not found (nothing printed for it), 1 for an unknown database."""
    if not argv:
        _err("getent: wrong number of arguments")
        return 1
    database, keys = argv[0], argv[1:]
    if database not in ("passwd", "group"):
        _err(
            f"Unknown database: {database}\nTry `getent --help' or `getent --usage' for more information."
        )
        return 1
    entries = _passwd_entries(guest) if database == "passwd" else _group_entries(guest)
    if not keys:
        _out("".join(line + "\n" for _, _, line in entries))
        return 0
    code = 0
    for key in keys:
        found = [line for name, number, line in entries if key in (name, str(number))]
        if found:
            _out(found[0] + "\n")
        else:
            code = 2
    return code


def _passwd_entries(guest: Guest) -> list[tuple[str, int, str]]:
    entries = []
    for name, record in sorted(guest.users().items(), key=lambda item: item[1]["uid"]):
        gecos = record.get("comment", "root" if name == "root" else "")
        fields = [name, "x", record["uid"], record["gid"], gecos, record["home"], record["shell"]]
        entries.append((name, int(record["uid"]), ":".join(map(str, fields))))
    return entries


def _group_entries(guest: Guest) -> list[tuple[str, int, str]]:
    users = guest.users()
    groups = {**guest.groups(), **{name: int(r["gid"]) for name, r in users.items()}}
    entries = []
    for group, gid in sorted(groups.items(), key=lambda item: item[1]):
        members = sorted(n for n, r in users.items() if group in r.get("groups", []))
        entries.append((group, gid, f"{group}:x:{gid}:{','.join(members)}"))
    return entries


USERMOD_USAGE = "Usage: usermod [options] LOGIN"


def usermod(guest: Guest, argv: list[str]) -> int:
    """`usermod [-a] -G GROUP[,GROUP...] [-s SHELL] [-c COMMENT] NAME` (root only)."""
    values: dict[str, str] = {}
    append, names, index = False, [], 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg in ("-a", "--append"):
            append = True
        elif arg in ("-aG", "-Ga"):
            append = True
            values["groups"], index = (argv[index] if index < len(argv) else ""), index + 1
        elif arg in USERADD_VALUE_OPTIONS and index < len(argv):
            values[USERADD_VALUE_OPTIONS[arg]], index = argv[index], index + 1
        elif arg.startswith("-"):
            _err(f"usermod: invalid option -- '{arg.lstrip('-')[:1]}'\n{USERMOD_USAGE}")
            return 2
        else:
            names.append(arg)
    if len(names) != 1:
        _err(USERMOD_USAGE)
        return 2
    if append and "groups" not in values:
        _err(f"usermod: -a flag is ONLY allowed with the -G flag\n{USERMOD_USAGE}")
        return 2
    if guest.caller != "root":
        _err("usermod: Permission denied.\nusermod: cannot lock /etc/passwd; try again later.")
        return 1
    return _modify_user(guest, names[0], values, append)


def _modify_user(guest: Guest, name: str, values: dict[str, str], append: bool) -> int:
    with guest.edit("users") as data:
        users, groups = data.setdefault("users", {}), data.setdefault("groups", {})
        record = users.get(name)
        if record is None:
            _err(f"usermod: user '{name}' does not exist")
            return 6
        if "groups" in values:
            wanted = _group_list(values["groups"])
            known = {*SYSTEM_GROUPS, *groups, *users}
            missing = [g for g in wanted if g not in known]
            if missing:
                _err(f"usermod: group '{missing[0]}' does not exist")
                return 6
            kept = set(record["groups"]) if append else set()
            record["groups"] = sorted(kept | set(wanted))
        if "shell" in values:
            record["shell"] = values["shell"]
        if "comment" in values:
            record["comment"] = values["comment"]
    return 0


def cloud_init(guest: Guest, argv: list[str]) -> int:
    """`cloud-init status [--wait] [--long]`: running until the final stage (runcmd) has
    finished, then done, or error when the last runcmd entry failed (exit 1)."""
    words = [arg for arg in argv if not arg.startswith("-")]
    if words[:1] != ["status"]:
        _err("usage: cloud-init [-h] [--version] [--debug] [--force] {status,...} ...")
        return 2
    wait = bool({"-w", "--wait"} & set(argv))
    status = _cloud_status(guest)
    while wait and status == "running":
        _out(".")
        time.sleep(0.25)
        status = _cloud_status(guest)
    if wait:
        _out("\n")
    _out(f"status: {status}\n")
    if {"-l", "--long"} & set(argv):
        _out(f"detail:\n{DATASOURCE}\n")
    return 1 if status == "error" else 0


def _cloud_status(guest: Guest) -> str:
    record = read_record(guest.dir)
    if record.get("started") is not None and not record.get("finished"):
        return "running"
    if record.get("commands") and not record.get("started"):
        return "running"  # planned at the start, the runner not spawned yet
    exits = record.get("exits") or [0]
    cut_short = record.get("stopped") and not (guest.dir / BOOT_FINISHED).exists()
    return "error" if cut_short or exits[-1] != 0 else "done"


# --- entry point -------------------------------------------------------------------------

TOOLS: dict[str, Callable[[Guest, list[str]], int]] = {
    "sudo": sudo,
    "apt-get": apt_get,
    "dpkg-query": dpkg_query,
    "systemctl": systemctl,
    "timedatectl": timedatectl,
    "useradd": useradd,
    "id": id_command,
    "hostnamectl": hostnamectl,
    "getent": getent,
    "usermod": usermod,
    "cloud-init": cloud_init,
}


def main(tool: str, argv: list[str], root: str, node: str, vmid: int) -> int:
    """Run guest tool `tool` inside VM `vmid` of host `node` in simulator `root`."""
    command = TOOLS.get(tool)
    if command is None:
        _err(f"{tool}: command not found")
        return 127
    return command(Guest(SimRoot(root), node, int(vmid)), list(argv))
