"""Inside a simulated VM: cloud-init's first boot, and the Debian tools pveplan runs there.

A simulated VM is a directory tree (`vms/NODE/VMID/`). Its first start applies cloud-init
the way a Debian cloud image would: users with their authorized keys and sudo rules, the
SSH host key, the hostname. Afterwards pveplan configures the guest over SSH with `sudo`,
`apt-get`, `dpkg-query`, `systemctl`, `timedatectl`, `useradd`, `id` and `hostnamectl`;
the launchers in the VM's `bin/` run `main` here, which answers with the stdout, stderr
and exit codes of the Debian commands and records the effect in `var/lib/sim/*.json`.
The caller is `$USER` (the daemon sets it per SSH login); `sudo` runs its command with
USER=root, which is what the root-only commands check. Installing `proxmox-ve` makes the
VM a simulated PVE host in its own right (`executor.sim._setup.make_nested_host`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from executor.sim._setup import PVE_VERSION, NodeNameTaken, make_nested_host
from executor.sim._state import SimRoot, write_json_atomic

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
VM_DIRS = ("bin", "home", "root/.ssh", "etc/ssh", "etc/systemd/system", "var/lib/sim")


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
    from executor.sim._setup import write_guest_launchers

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
    _apply_users(guest, cloud)
    _apply_root_keys(guest, cloud)
    _ensure_host_key(guest, cloud.get("ssh_keys"), hostname)
    _apply_system(guest, cloud, hostname)
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
            keys = [str(key).strip() for key in entry.get("ssh_authorized_keys") or []]
            _write_authorized_keys(guest, name, keys)


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
    from executor._keys import generate_ed25519  # as sshd would: a fresh key at first boot

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
    (guest.dir / "etc" / "hostname").write_text(hostname + "\n")
    packages = [str(p) for p in cloud.get("packages") or [] if isinstance(p, str)]
    if packages:
        _install_packages(guest, packages)


# --- sudo ------------------------------------------------------------------------------


def _sudo_allowed(guest: Guest, user: str) -> bool:
    """Whether `user` may run sudo without a password (the only way without a terminal)."""
    if user == "root":
        return True
    record = guest.users().get(user)
    return bool(record) and any("NOPASSWD" in rule for rule in record.get("sudo", []))


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
    if not _sudo_allowed(guest, guest.caller):
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
            _out("The following packages will be REMOVED:\n  " + " ".join(gone) + "\n")
        _out(f"0 upgraded, 0 newly installed, {len(gone)} to remove and 0 not upgraded.\n")
        for name in gone:
            _out(f"Removing {name} ({data[name]['version']}) ...\n")
            if purge:
                del data[name]
            else:
                data[name]["status"] = "config-files"
    _package_units(guest, gone, present=False)
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


def _unit_name(name: str) -> str:
    return name if "." in name else f"{name}.service"


def _unit_exists(guest: Guest, unit: str, services: dict[str, Any]) -> bool:
    return unit in services or any((guest.dir / d / unit).is_file() for d in UNIT_DIRS)


def systemctl(guest: Guest, argv: list[str]) -> int:
    """`systemctl enable|disable|start|stop|restart [--now] UNIT...`, `is-enabled`, `is-active`."""
    flags = {arg for arg in argv if arg.startswith("-")}
    words = [arg for arg in argv if not arg.startswith("-")]
    if not words:
        _out("  UNIT  LOAD  ACTIVE  SUB  DESCRIPTION\n")
        return 0
    verb, units = words[0], [_unit_name(u) for u in words[1:]]
    quiet = bool(flags & {"-q", "--quiet"})
    if verb in ("is-enabled", "is-active"):
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
    return _systemctl_change(guest, verb, units, "--now" in flags)


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
    services = guest.read("services")
    ok = False
    for unit in units:
        record = services.get(unit)
        if verb == "is-enabled":
            if record is None and not _unit_exists(guest, unit, services):
                _err(f"Failed to get unit file state for {unit}: No such file or directory")
                continue
            state = "enabled" if record and record.get("enabled") else "disabled"
        else:
            state = "active" if record and record.get("active") else "inactive"
        ok = ok or state in ("enabled", "active")
        if not quiet:
            _out(state + "\n")
    if verb == "is-active":
        return 0 if ok else 3  # systemd's LSB code for "not running"
    return 0 if ok else 1


def _systemctl_change(guest: Guest, verb: str, units: list[str], now: bool) -> int:
    with guest.edit("services") as services:
        for unit in units:
            if not _unit_exists(guest, unit, services):
                return _unit_missing(verb, unit)
            record = services.setdefault(unit, {"enabled": False, "active": False})
            _change_unit(unit, record, verb, now)
    return 0


def _unit_missing(verb: str, unit: str) -> int:
    if verb in ("enable", "disable"):
        _err(f"Failed to {verb} unit: Unit file {unit} does not exist.")
        return 1
    what = "not loaded" if verb == "stop" else "not found"
    _err(f"Failed to {verb} {unit}: Unit {unit} {what}.")
    return 5


def _change_unit(unit: str, record: dict[str, Any], verb: str, now: bool) -> None:
    link = f"/etc/systemd/system/multi-user.target.wants/{unit}"
    if verb == "enable":
        if not record["enabled"]:
            _err(f"Created symlink {link} → /lib/systemd/system/{unit}.")
        record["enabled"] = True
        record["active"] = record["active"] or now
    elif verb == "disable":
        if record["enabled"]:
            _err(f"Removed {link}.")
        record["enabled"] = False
        record["active"] = record["active"] and not now
    else:
        record["active"] = verb != "stop"


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
}


def main(tool: str, argv: list[str], root: str, node: str, vmid: int) -> int:
    """Run guest tool `tool` inside VM `vmid` of host `node` in simulator `root`."""
    command = TOOLS.get(tool)
    if command is None:
        _err(f"{tool}: command not found")
        return 127
    return command(Guest(SimRoot(root), node, int(vmid)), list(argv))
