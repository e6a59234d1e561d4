"""Simulated `sudo`: the VM's sudoers files (or cloud-init's rules) decide.

The caller is `$USER` (the daemon sets it per SSH login); `sudo` runs its command with
USER=root, which is what the root-only guest tools check, only if a rule lets the caller
in without a password, as a non-interactive session would need.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from pveplan.sim._errors import SimError
from pveplan.sim._stdio import write_stderr
from pveplan.sim._vm import SUDOERS, SUDOERS_D, Guest

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


class SudoersError(SimError, ValueError):
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
            write_stderr(f"sudo: {shown} is world writable")
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
            write_stderr(f"sudo: invalid option -- '{flag.lstrip('-')[:1]}'")
            return 1
    command = argv[index:]
    if not command:
        write_stderr(
            "usage: sudo -h | -K | -k | -V\nusage: sudo [-AbEHknPS] [-u user] command [arg ...]"
        )
        return 1
    try:
        allowed = _sudo_allowed(guest, guest.caller, target, command)
    except SudoersError as exc:
        write_stderr(f">>> {exc.path}: syntax error near line {exc.line} <<<")
        write_stderr(f"sudo: parse error in {exc}")
        write_stderr("sudo: no valid sudoers sources found, quitting")
        write_stderr("sudo: error initializing audit plugin sudoers_audit")
        return 1
    if not allowed:
        if not non_interactive:
            write_stderr(
                "sudo: a terminal is required to read the password; either use the -S option "
                "to read from standard input or configure an askpass helper"
            )
        write_stderr("sudo: a password is required")
        return 1
    return _exec_as(guest, target, command)


def _exec_as(guest: Guest, target: str, command: list[str]) -> int:
    path = _resolve_command(guest, command[0])
    if path is None:
        write_stderr(f"sudo: {command[0]}: command not found")
        return 1
    env = {**os.environ, "USER": target, "LOGNAME": target, "HOME": str(guest.home(target))}
    env["SUDO_USER"] = guest.caller
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(path, [command[0], *command[1:]], env)
    return 1  # not reached
