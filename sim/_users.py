"""The VM's users and groups: `useradd`, `usermod`, `id`, `getent`, and the user
records cloud-init's `users` module creates the same way.
"""

from __future__ import annotations

import re
from typing import Any

from pveplan.sim._stdio import write_stderr, write_stdout
from pveplan.sim._vm import SYSTEM_GROUPS, Guest

USER_NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\$?$")


def user_record(
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


def group_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [g.strip() for g in value.split(",") if g.strip()]
    return [str(g) for g in value] if isinstance(value, list) else []


def new_user(users: dict[str, Any], name: str, shell: str) -> dict[str, Any]:
    uid = 0 if name == "root" else free_id((u["uid"] for u in users.values()), 1000)
    users[name] = user_record(name, uid, shell, [])
    return users[name]


def free_id(taken: Any, start: int) -> int:
    used = set(taken)
    return next(n for n in range(start, 60000) if n not in used)


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
            write_stderr(f"useradd: unrecognized option '{parsed}'")
        write_stderr("Usage: useradd [options] LOGIN")
        return 2
    values, flags, (name,) = parsed
    if guest.caller != "root":
        write_stderr(
            "useradd: Permission denied.\nuseradd: cannot lock /etc/passwd; try again later."
        )
        return 1
    if not USER_NAME_RE.match(name):
        write_stderr(f"useradd: invalid user name '{name}': use --badname to ignore")
        return 3
    return _add_user(guest, name, values, bool(flags & {"-m", "--create-home"}))


def _add_user(guest: Guest, name: str, values: dict[str, str], create_home: bool) -> int:
    wanted = group_list(values.get("groups", ""))
    with guest.edit("users") as data:
        users, groups = data.setdefault("users", {}), data.setdefault("groups", {})
        if name in users:
            write_stderr(f"useradd: user '{name}' already exists")
            return 9
        missing = [
            g for g in wanted if g not in SYSTEM_GROUPS and g not in groups and g not in users
        ]
        if missing:
            write_stderr(f"useradd: group '{missing[0]}' does not exist")
            return 6
        record = new_user(users, name, values.get("shell", "/bin/sh"))
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
        write_stderr(f"id: '{name}': no such user")
        return 1
    named = bool(flags & {"-n", "--name", "-un", "-gn", "-Gn", "-nu", "-ng", "-nG"})
    extra = sorted((_gid_of(guest, g, users), g) for g in record["groups"])
    groups = [(int(record["gid"]), name), *extra]
    if flags & {"-u", "--user", "-un", "-nu"}:
        write_stdout(f"{name if named else record['uid']}\n")
    elif flags & {"-g", "--group", "-gn", "-ng"}:
        write_stdout(f"{name if named else record['gid']}\n")
    elif flags & {"-G", "--groups", "-Gn", "-nG"}:
        write_stdout(" ".join(g if named else str(gid) for gid, g in groups) + "\n")
    else:
        listed = ",".join(f"{gid}({g})" for gid, g in groups)
        write_stdout(f"uid={record['uid']}({name}) gid={record['gid']}({name}) groups={listed}\n")
    return 0


def getent(guest: Guest, argv: list[str]) -> int:
    """`getent passwd|group [KEY...]`: entries in /etc/passwd and /etc/group format; exit 2
    when a key is not found (nothing printed for it), 1 for an unknown database."""
    if not argv:
        write_stderr("getent: wrong number of arguments")
        return 1
    database, keys = argv[0], argv[1:]
    if database not in ("passwd", "group"):
        write_stderr(
            f"Unknown database: {database}\nTry `getent --help' or `getent --usage' for more information."
        )
        return 1
    entries = _passwd_entries(guest) if database == "passwd" else _group_entries(guest)
    if not keys:
        write_stdout("".join(line + "\n" for _, _, line in entries))
        return 0
    code = 0
    for key in keys:
        found = [line for name, number, line in entries if key in (name, str(number))]
        if found:
            write_stdout(found[0] + "\n")
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
            write_stderr(f"usermod: invalid option -- '{arg.lstrip('-')[:1]}'\n{USERMOD_USAGE}")
            return 2
        else:
            names.append(arg)
    if len(names) != 1:
        write_stderr(USERMOD_USAGE)
        return 2
    if append and "groups" not in values:
        write_stderr(f"usermod: -a flag is ONLY allowed with the -G flag\n{USERMOD_USAGE}")
        return 2
    if guest.caller != "root":
        write_stderr(
            "usermod: Permission denied.\nusermod: cannot lock /etc/passwd; try again later."
        )
        return 1
    return _modify_user(guest, names[0], values, append)


def _modify_user(guest: Guest, name: str, values: dict[str, str], append: bool) -> int:
    with guest.edit("users") as data:
        users, groups = data.setdefault("users", {}), data.setdefault("groups", {})
        record = users.get(name)
        if record is None:
            write_stderr(f"usermod: user '{name}' does not exist")
            return 6
        if "groups" in values:
            wanted = group_list(values["groups"])
            known = {*SYSTEM_GROUPS, *groups, *users}
            missing = [g for g in wanted if g not in known]
            if missing:
                write_stderr(f"usermod: group '{missing[0]}' does not exist")
                return 6
            kept = set(record["groups"]) if append else set()
            record["groups"] = sorted(kept | set(wanted))
        if "shell" in values:
            record["shell"] = values["shell"]
        if "comment" in values:
            record["comment"] = values["comment"]
    return 0
