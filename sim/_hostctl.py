"""Simulated `timedatectl`, `hostnamectl` and `cloud-init status` inside a VM.

The time zone link is shared with cloud-init's `timezone` module; `cloud-init status`
reads what the first boot and the runcmd runner recorded.
"""

from __future__ import annotations

import os
import re
import time

from pveplan.sim._runcmd import BOOT_FINISHED, DATASOURCE, read_record
from pveplan.sim._stdio import write_stderr, write_stdout
from pveplan.sim._vm import DEFAULT_TIMEZONE, Guest

HOSTNAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,62})(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,62}))*$")


def link_timezone(guest: Guest, timezone: str) -> None:
    """/etc/localtime -> /usr/share/zoneinfo/TZ and /etc/timezone, as Debian keeps them."""
    etc = guest.dir / "etc"
    link = etc / "localtime"
    tmp = etc / ".localtime.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(f"/usr/share/zoneinfo/{timezone}")
    os.replace(tmp, link)
    (etc / "timezone").write_text(timezone + "\n")


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
        write_stdout(
            f"                Time zone: {timezone}\nSystem clock synchronized: yes\n              NTP service: active\n          RTC in local TZ: no\n"
        )
        return 0
    write_stderr(f'Unknown command verb "{verb}".')
    return 1


def _set_timezone(guest: Guest, args: list[str]) -> int:
    if len(args) != 1:
        write_stderr("Too few arguments." if not args else "Too many arguments.")
        return 1
    if guest.caller != "root":
        write_stderr("Failed to set time zone: Interactive authentication required.")
        return 1
    if not _valid_timezone(args[0]):
        write_stderr(f"Failed to set time zone: Invalid or not installed time zone '{args[0]}'")
        return 1
    with guest.edit("system") as data:
        data["timezone"] = args[0]
    link_timezone(guest, args[0])
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
            write_stdout(f"{props[name]}\n" if value_only else f"{name}={props[name]}\n")
    return 0


def hostnamectl(guest: Guest, argv: list[str]) -> int:
    """`hostnamectl set-hostname NAME`, `hostnamectl [hostname|status]`."""
    words = [arg for arg in argv if not arg.startswith("-")]
    verb = words[0] if words else "status"
    current = guest.read("system").get("hostname", "localhost")
    if verb == "hostname" and len(words) == 1:
        write_stdout(current + "\n")
        return 0
    if verb in ("set-hostname", "hostname") and len(words) == 2:
        return _set_hostname(guest, words[1])
    if verb == "status":
        write_stdout(
            f" Static hostname: {current}\n  Operating System: Debian GNU/Linux 12 (bookworm)\n"
        )
        return 0
    write_stderr(
        f'Unknown command verb "{verb}".'
        if verb not in ("set-hostname", "hostname")
        else "Too few arguments."
    )
    return 1


def _set_hostname(guest: Guest, name: str) -> int:
    if guest.caller != "root":
        write_stderr("Could not set static hostname: Interactive authentication required.")
        return 1
    if not HOSTNAME_RE.match(name) or len(name) > 64:
        write_stderr(f"Invalid static hostname '{name}'")
        return 1
    with guest.edit("system") as data:
        data["hostname"] = name
    (guest.dir / "etc" / "hostname").write_text(name + "\n")
    return 0


def cloud_init(guest: Guest, argv: list[str]) -> int:
    """`cloud-init status [--wait] [--long]`: running until the final stage (runcmd) has
    finished, then done, or error when the last runcmd entry failed (exit 1)."""
    words = [arg for arg in argv if not arg.startswith("-")]
    if words[:1] != ["status"]:
        write_stderr("usage: cloud-init [-h] [--version] [--debug] [--force] {status,...} ...")
        return 2
    wait = bool({"-w", "--wait"} & set(argv))
    status = _cloud_status(guest)
    while wait and status == "running":
        write_stdout(".")
        time.sleep(0.25)
        status = _cloud_status(guest)
    if wait:
        write_stdout("\n")
    write_stdout(f"status: {status}\n")
    if {"-l", "--long"} & set(argv):
        write_stdout(f"detail:\n{DATASOURCE}\n")
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
