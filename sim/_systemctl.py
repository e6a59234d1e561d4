"""Simulated `systemctl`: units from the VM's unit files and installed packages,
enabled and active states recorded, errors worded as systemd's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pveplan.sim._apt import PACKAGE_UNITS
from pveplan.sim._stdio import write_stderr, write_stdout
from pveplan.sim._vm import BASE_SERVICES, Guest

UNIT_DIRS = ("etc/systemd/system", "lib/systemd/system", "usr/lib/systemd/system")


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
        write_stdout("  UNIT  LOAD  ACTIVE  SUB  DESCRIPTION\n")
        return 0
    verb, units = words[0], [_unit_name(u) for u in words[1:]]
    quiet = bool(flags & {"-q", "--quiet"})
    if verb in ("is-enabled", "is-active"):
        if not units:
            write_stderr("Too few arguments.")
            return 1
        return _systemctl_query(guest, verb, units, quiet)
    if verb not in SYSTEMCTL_MUTATIONS:
        write_stderr(f'Unknown command verb "{verb}".')
        return 1
    if guest.caller != "root":
        return _systemctl_denied(verb, units)
    if verb == "daemon-reload":
        return 0
    if not units:
        write_stderr("Too few arguments.")
        return 1
    return _systemctl_change(guest, verb, units, "--now" in flags, quiet)


def _systemctl_denied(verb: str, units: list[str]) -> int:
    if verb in ("enable", "disable", "daemon-reload"):
        write_stderr(
            f"Failed to {verb.replace('daemon-reload', 'reload daemon')}{' unit' if units else ''}: Access denied"
        )
        return 1
    write_stderr(
        f"Failed to {verb} {units[0] if units else ''}: Interactive authentication required."
    )
    write_stderr(f"See system logs and 'systemctl status {units[0] if units else ''}' for details.")
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
                write_stderr(f"Failed to get unit file state for {unit}: No such file or directory")
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
            write_stdout(state + "\n")
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
        write_stderr(f"Failed to {verb} unit: Unit file {unit} does not exist.")
        return 1
    what = "not loaded" if verb == "stop" else "not found"
    write_stderr(f"Failed to {verb} {unit}: Unit {unit} {what}.")
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
            write_stderr(NO_INSTALL_CONFIG)
        elif not record["enabled"] and not quiet:
            for link in links:
                write_stderr(f"Created symlink {link} → {_unit_source(guest, unit)}.")
        record["enabled"] = record["enabled"] or targets is not None
        record["active"] = record["active"] or now
    elif verb == "disable":
        if record["enabled"] and not quiet:
            for link in links:
                write_stderr(f'Removed "{link}".')
        record["enabled"] = False
        record["active"] = record["active"] and not now
    elif verb == "reload":
        if not record["active"]:
            write_stderr(f"Job for {unit} invalid.")
            return 1
    else:
        record["active"] = verb != "stop"
    return 0
