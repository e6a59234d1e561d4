"""The environment variables pveplan reads: one table for `--help` and docs/cli.md.

Each command's `--help` lists the variables it reads from this table, and docs/cli.md
holds `environment_markdown()` verbatim, so the two cannot drift apart; a test checks that
every variable the sources read (`env.get("...")`, `os.environ[...]`, ...) has a row here.
Only the CLI reads the environment itself (the library takes it as an argument), but a
variable read deep inside, by the simulator's daemon say, still belongs in the table:
the user sets it on the command that starts that code.
"""

from __future__ import annotations

import textwrap
from typing import NamedTuple


class EnvVar(NamedTuple):
    """One variable: what setting it does, and which top-level commands read it."""

    what: str
    commands: tuple[str, ...]
    """Top-level command names; `ALL` for every command; () when only pveplan's own
    child processes read it (set by pveplan itself, listed in the docs only)."""


ALL = ("*",)
WIDTH = 100
"""Help lines are wrapped here, not at the terminal's width: the sections are laid out."""

_STORE_USERS = ("plan", "show", "graph", "apply", "create", "destroy", "test")
_STORE_USERS += ("runs", "store", "sim", "serve", "output")
_DRIVERS = ("apply", "create", "destroy", "test", "sim")
"""Commands that reach hosts with the driver's SSH key and start the simulator on demand."""
_SITE_USERS = ("validate", "plan", "graph", "apply", "create", "destroy", "test", "serve")
_SITE_USERS += ("output",)
_STORE_USERS += ("import",)
_DRIVERS += ("import",)
_SITE_USERS += ("import",)

ENVIRONMENT: dict[str, EnvVar] = {
    "HOMESTAK_SITE_CONFIG": EnvVar(
        "site config directory when --site-config is not given (then the manifest's own, "
        "$HOMESTAK_ROOT/config, ../site-config, /usr/local/etc/homestak, "
        "/opt/homestak/site-config)",
        (*_SITE_USERS, "completion", "token"),
    ),
    "HOMESTAK_ROOT": EnvVar(
        "homestak's workspace root: its config/ is a place the site config is looked for "
        "(as iac-driver does; unset: ~/config); when set, run reports go to "
        "its logs/ (create, destroy, test; -r/--report-dir and the report variable come first)",
        (*_SITE_USERS, "completion", "token"),
    ),
    "HOMESTAK_SELF_ADDR": EnvVar(
        "the address pull nodes reach this machine's spec server at, when --self-addr is not "
        "given (as iac-driver's); overrides the host of site.yaml's server_url",
        ("create", "destroy", "test"),
    ),
    "PVEPLAN_STORE": EnvVar(
        "the store: a directory, or a postgresql://USER@HOST/DB URL a team shares (default: "
        "site.yaml's `store:`, else $XDG_STATE_HOME/pveplan, else ~/.local/state/pveplan)",
        _STORE_USERS,
    ),
    "PVEPLAN_STORE_PASSWORD": EnvVar(
        "the password of a PostgreSQL store (else secrets.yaml's store.password, else "
        "libpq's PGPASSWORD or ~/.pgpass); never shown or logged",
        _STORE_USERS,
    ),
    "PGSSLMODE": EnvVar(
        "libpq's TLS mode; when set (or the store URL has sslmode=), pveplan does not add "
        "its own default for a PostgreSQL server off this machine (sslmode=verify-full)",
        _STORE_USERS,
    ),
    "PGSSLROOTCERT": EnvVar(
        "libpq's CA file for a PostgreSQL store; when unset, verify-full uses the system's CAs",
        _STORE_USERS,
    ),
    "PVEPLAN_CACHE_DIR": EnvVar(
        "this machine's directory for bundles, the simulator and logs when the store is "
        "PostgreSQL (default: $XDG_CACHE_HOME/pveplan, else ~/.cache/pveplan)",
        _STORE_USERS,
    ),
    "XDG_CACHE_HOME": EnvVar(
        "where the default cache directory lives ($XDG_CACHE_HOME/pveplan; absolute only)",
        _STORE_USERS,
    ),
    "XDG_STATE_HOME": EnvVar(
        "where the default store lives ($XDG_STATE_HOME/pveplan; absolute paths only)",
        _STORE_USERS,
    ),
    "HOME": EnvVar(
        "the fallback for the store, the driver key, and the executor's --home",
        (*_STORE_USERS, "executor"),
    ),
    "PVEPLAN_SIM_DIR": EnvVar(
        "the simulator's directory (default: sim/ inside the store, or inside the cache "
        "directory when the store is PostgreSQL); `sim --sim-dir` wins",
        ("apply", "create", "destroy", "test", "sim", "output"),
    ),
    "PVEPLAN_DRIVER_KEY": EnvVar(
        "the driver's SSH private key (default: $XDG_CONFIG_HOME/pveplan/driver_ed25519, "
        "made on first use)",
        _DRIVERS,
    ),
    "XDG_CONFIG_HOME": EnvVar(
        "where the default driver key lives (default: ~/.config)",
        _DRIVERS,
    ),
    "PVEPLAN_SIM_RUNCMD_LIMIT": EnvVar(
        "seconds a simulated VM's cloud-init runcmd may run before it is stopped "
        "(default: 900), in the simulator started by this command",
        _DRIVERS,
    ),
    "PVEPLAN_SIM_IDLE_TIMEOUT": EnvVar(
        "seconds the simulator started by this command may sit idle before it stops by "
        "itself; 0: never (default: config.json's idle_timeout, else one hour)",
        _DRIVERS,
    ),
    "PVEPLAN_SIM_EXIT_WITH_PID": EnvVar(
        "a process id: the simulator started by this command stops when that process "
        "exits (the test suite sets it)",
        _DRIVERS,
    ),
    "PVEPLAN_SIMULATE": EnvVar(
        "set to anything but 0: the same as --simulate (rehearse every host on the simulator)",
        ("validate", "plan", "graph", "apply", "create", "destroy", "test", "output"),
    ),
    "PVEPLAN_REPORT_DIR": EnvVar(
        "where create, destroy and test write each run's report, as a JSON and a markdown "
        "file; -r/--report-dir wins (default: $HOMESTAK_ROOT/logs if that is set, else "
        "reports/ in the working directory)",
        ("create", "destroy", "test"),
    ),
    "NO_COLOR": EnvVar(
        "set and non-empty: no colour on a terminal (`pveplan --color always` still colours)",
        ALL,
    ),
    "PVEPLAN_SYSROOT": EnvVar(
        "the directory that stands for / on a pull-mode node (default: /); the simulator "
        "sets it inside its VMs",
        ("spec", "config"),
    ),
    "USER": EnvVar("the login user of a session inside a simulated VM (its sudo reads it)", ()),
    "LOGNAME": EnvVar("the same as USER, when USER is unset", ()),
    "_ARGCOMPLETE": EnvVar(
        "set by the shell completion scripts: print completions for COMP_LINE, run nothing",
        (),
    ),
}


def variables_for(command: str) -> list[tuple[str, EnvVar]]:
    """The variables `command` reads, in table order."""
    return [
        (name, var)
        for name, var in ENVIRONMENT.items()
        if var.commands == ALL or command in var.commands
    ]


def environment_section(command: str | None) -> str:
    """The `environment:` block of a help text: `command`'s variables, or (None) every
    variable a user may set, for the top-level help."""
    rows = (
        [(n, v) for n, v in ENVIRONMENT.items() if v.commands]
        if command is None
        else variables_for(command)
    )
    width = max(len(name) for name, _ in rows) + 2
    lines = ["environment:"]
    for name, var in rows:
        lines += textwrap.wrap(
            var.what,
            WIDTH,
            initial_indent=f"  {name:<{width}} ",
            subsequent_indent=" " * (width + 3),
            break_on_hyphens=False,
        )
    return "\n".join(lines)


def environment_markdown() -> str:
    """The table in docs/cli.md (a test checks the file holds exactly this)."""
    lines = ["| variable | read by | what it does |", "|---|---|---|"]
    for name, var in ENVIRONMENT.items():
        if var.commands == ALL:
            who = "every command"
        elif var.commands:
            who = ", ".join(f"`{c}`" for c in var.commands)
        else:
            who = "pveplan's own processes (set by pveplan)"
        lines.append(f"| `{name}` | {who} | {var.what} |")
    return "\n".join(lines)
