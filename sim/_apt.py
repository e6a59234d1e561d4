"""Simulated `apt-get` and `dpkg-query`, over the VM's package records.

Installing `proxmox-ve` makes the VM a simulated PVE host in its own right
(`sim._setup.make_nested_host`); packages bring their systemd units, so `systemctl` sees
what was installed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

from pveplan.sim._bare_tools import note_update, unlocatable
from pveplan.sim._setup import PVE_VERSION, NodeNameTaken, make_nested_host
from pveplan.sim._stdio import write_stderr, write_stdout
from pveplan.sim._vm import Guest

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


def package_version(name: str) -> str:
    if name in PACKAGE_VERSIONS:
        return PACKAGE_VERSIONS[name]
    digest = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)
    return f"{digest % 9 + 1}.{digest % 17}.{digest % 5}-{digest % 3 + 1}"


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
        write_stderr(
            "E: Could not open lock file /var/lib/apt/lists/lock - open (13: Permission denied)"
        )
        write_stderr("E: Unable to lock directory /var/lib/apt/lists/")
    else:
        write_stderr(
            "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)"
        )
        write_stderr(
            "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), "
            "are you root?"
        )
    return 100


def apt_get(guest: Guest, argv: list[str]) -> int:
    """`apt-get [-y] update|install|remove|purge|upgrade PKG...` (root only)."""
    _options, words = _split_apt_args(argv)
    if not words:
        write_stdout("apt 2.6.1 (amd64)\nUsage: apt-get [options] command\n")
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
        write_stderr(f"E: Invalid operation {command}")
        return 100
    if guest.caller != "root":
        return _apt_lock_error(command)
    return actions[command](guest, packages)


def _apt_reading() -> None:
    write_stdout(
        "Reading package lists...\nBuilding dependency tree...\nReading state information...\n"
    )


def _apt_update(guest: Guest, packages: list[str]) -> int:
    suites = ("bookworm", "bookworm-updates")
    for index, suite in enumerate(suites, 1):
        write_stdout(f"Hit:{index} http://deb.debian.org/debian {suite} InRelease\n")
    write_stdout("Hit:3 http://security.debian.org/debian-security bookworm-security InRelease\n")
    source = note_update(guest)  # a bare machine with PVE's repository (`_bare_tools`)
    if source == "unsigned":
        write_stderr(
            "E: The repository 'http://download.proxmox.com/debian/pve trixie InRelease' is "
            "not signed.\nW: NO_PUBKEY: the Signed-By keyring of its source is missing"
        )
        return 100
    if source:
        write_stdout("Get:4 http://download.proxmox.com/debian/pve trixie InRelease\n")
    write_stdout("Reading package lists...\n")
    with guest.edit("system") as data:
        data["apt_updated"] = True
    return 0


def _apt_noop(guest: Guest, packages: list[str]) -> int:
    _apt_reading()
    write_stdout(
        "Calculating upgrade...\n0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n"
    )
    return 0


def _apt_install(guest: Guest, packages: list[str]) -> int:
    _apt_reading()
    bad = [name for name in packages if not PACKAGE_NAME_RE.match(name)]
    missing = bad[0] if bad else unlocatable(guest, packages)
    if missing:
        write_stderr(f"E: Unable to locate package {missing}")
        return 100
    installed = install_packages(guest, [name.split("=")[0] for name in packages])
    return 0 if installed is not None else 100


def install_packages(guest: Guest, names: list[str]) -> list[str] | None:
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
                write_stdout(f"{name} is already the newest version ({data[name]['version']}).\n")
        extra = [name for name in pulled if name in new]
        if extra:
            write_stdout(
                "The following additional packages will be installed:\n  " + " ".join(extra) + "\n"
            )
        if new:
            write_stdout("The following NEW packages will be installed:\n  " + " ".join(new) + "\n")
        write_stdout(f"0 upgraded, {len(new)} newly installed, 0 to remove and 0 not upgraded.\n")
        for name in new:
            data[name] = {"status": "installed", "version": package_version(name)}
            write_stdout(f"Setting up {name} ({data[name]['version']}) ...\n")
    _package_units(guest, new, present=True)
    return new


def _become_pve_host(guest: Guest) -> bool:
    """Make this VM a PVE host named after its hostname; False (said on stderr) if it can't."""
    hostname = guest.read("system").get("hostname")
    try:
        make_nested_host(guest.root, guest.node, guest.vmid, hostname)
    except NodeNameTaken as exc:
        write_stderr(f"E: {exc}")
        return False
    except ValueError as exc:
        write_stderr(f"E: cannot set up {PVE_PACKAGE}: {exc}")
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
                write_stdout(f"Package '{name}' is not installed, so not removed\n")
        if gone:
            shown = [f"{name}*" if purge else name for name in gone]
            write_stdout("The following packages will be REMOVED:\n  " + " ".join(shown) + "\n")
        write_stdout(f"0 upgraded, 0 newly installed, {len(gone)} to remove and 0 not upgraded.\n")
        for name in gone:
            version = data[name]["version"]
            if data[name]["status"] == "installed":
                write_stdout(f"Removing {name} ({version}) ...\n")
            if purge:
                write_stdout(f"Purging configuration files for {name} ({version}) ...\n")
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
        write_stderr("dpkg-query: error: need an action option\n\nType dpkg-query --help for help.")
        return 2
    packages = guest.read("packages")
    names = names or sorted(packages)
    code = 0
    for name in names:
        record = packages.get(name)
        if record is None:
            write_stderr(f"dpkg-query: no packages found matching {name}")
            code = 1
        elif action == "-s":
            fields = _dpkg_fields(name, record)
            write_stdout(
                "".join(
                    f"{k}: {fields[k]}\n" for k in ("Package", "Status", "Architecture", "Version")
                )
            )
        else:
            write_stdout(_dpkg_format(fmt, _dpkg_fields(name, record)))
    return code
