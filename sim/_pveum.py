"""Simulated `pveum`: the user, token, role and ACL commands of a PVE 9.1 host.

Each subcommand is an API method with some arguments given as words, as pveum.pm's
`cmddef` maps them (`pveum acl modify PATH --roles R --tokens T` is `PUT /access/acl`), so
`pveum` reaches the same routes as `pvesh` and the HTTPS API. What pveplan uses to give a
nested host's token least privilege: `user add`, `role add`, `acl modify`/`delete`,
`user token add`, `user permissions`.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import quote

from pveplan.sim._api import Ctx, call_api, find_route
from pveplan.sim._cmdline import parse_options, render
from pveplan.sim._stdio import write_stderr, write_stdout


class Command(NamedTuple):
    """One pveum subcommand: its API method, the words it takes, fixed parameters."""

    cmd: str
    template: str
    args: tuple[str, ...]
    fixed: tuple[tuple[str, str], ...] = ()
    prints: bool = False
    """Whether it prints its result (`user token add`, `user permissions`)."""


_TOKEN = "/access/users/{userid}/token/{tokenid}"
COMMANDS: dict[tuple[str, ...], Command] = {
    ("user", "add"): Command("create", "/access/users", ("userid",)),
    ("user", "token", "add"): Command("create", _TOKEN, ("userid", "tokenid"), prints=True),
    ("user", "permissions"): Command("get", "/access/permissions", ("userid",), prints=True),
    ("role", "add"): Command("create", "/access/roles", ("roleid",)),
    ("acl", "modify"): Command("set", "/access/acl", ("path",), (("delete", "0"),)),
    ("acl", "delete"): Command("set", "/access/acl", ("path",), (("delete", "1"),)),
}
"""Words in the URL template are filled from the positional words; the others are
parameters (`user add ci@pve` is `POST /access/users --userid ci@pve`)."""


def _usage(words: tuple[str, ...], command: Command) -> str:
    return f"pveum {' '.join(words)} {' '.join(f'<{a}>' for a in command.args)} [OPTIONS]"


def pveum_main(ctx: Ctx, argv: list[str]) -> int:
    """`pveum WORDS ARGS [OPTIONS] [--output-format ...]`."""
    for width in (3, 2):
        words = tuple(argv[:width])
        if words in COMMANDS:
            break
    else:
        write_stderr(f"ERROR: unknown command 'pveum {' '.join(argv[:3])}'")
        write_stderr("USAGE: pveum <COMMAND> [ARGS] [OPTIONS]")
        return 255
    command = COMMANDS[words]
    found, _ = find_route(command.cmd, command.template)
    opts = parse_options(argv[width:], found.table)
    optional_last = command.args == ("userid",) and command.template == "/access/permissions"
    wanted = len(command.args) - (1 if optional_last and not opts.positional else 0)
    if len(opts.positional) != wanted:
        many = len(opts.positional) > wanted
        write_stderr(f"400 {'too many' if many else 'not enough'} arguments")
        write_stderr(_usage(words, command))
        return 255
    fmt = opts.output_format
    path, params = command.template, {**dict(command.fixed), **opts.params}
    for name, value in zip(command.args, opts.positional, strict=False):
        if "{" + name + "}" in path:
            path = path.replace("{" + name + "}", quote(value, safe=""))
        else:
            params[name] = value
    data: Any = call_api(ctx, command.cmd, path, params)
    if command.prints:
        write_stdout(render(data, fmt))
    return 0
