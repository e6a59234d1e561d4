"""The argument parser's building blocks: the parser class, help layout, shared flags.

`build_parser()` (in `_app`) assembles the commands from `_parser_review`, `_parser_run`
and `_node`; they all use `add_command` so that every command's `--help` ends with real
examples and the environment variables it reads (from `_environment`, the one table).

Usage errors exit 1, not argparse's 2: `plan --detailed-exitcode` and `apply
--detailed-exitcode` exit 2 for "there were changes", and a misspelt flag must never
look like that. Abbreviated long flags are refused for the same reason (`--detailed-exitcod`
would otherwise be taken as `--detailed-exitcode`).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from ._completion import host_names, manifest_names
from ._environment import environment_section

USAGE_ERROR = 1
"""The exit code of a usage error (argparse's own is 2, which --detailed-exitcode owns)."""


class HelpFormatter(argparse.HelpFormatter):
    """Wraps one-line descriptions to the terminal; keeps text with line breaks (the
    examples and environment sections, the top-level description) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class PveplanParser(argparse.ArgumentParser):
    """argparse with pveplan's usage errors: usage, `pveplan: error: ...`, a hint naming
    the `--help` to read, exit 1. Sub-commands are `SubcommandParser`s."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def add_subparsers(self, **kwargs: Any) -> argparse._SubParsersAction:  # type: ignore[type-arg]
        kwargs.setdefault("parser_class", SubcommandParser)
        return super().add_subparsers(**kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        what = "for its options and examples" if " " in self.prog else "to list the commands"
        self.exit(
            USAGE_ERROR, f"pveplan: error: {message}\n  hint: run `{self.prog} --help` {what}\n"
        )

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """argparse's check of a choice, plus a suggestion for a near miss. (A private
        argparse hook: should a Python rename it, only the suggestion is lost.)"""
        try:
            super()._check_value(action, value)  # type: ignore[misc]
        except argparse.ArgumentError as exc:
            choices = [str(c) for c in action.choices or ()]
            close = difflib.get_close_matches(str(value), choices, n=1)
            if not close:
                raise
            raise argparse.ArgumentError(
                action, f"{exc.message}; did you mean {close[0]!r}?"
            ) from None


class SubcommandParser(PveplanParser):
    """A command's parser: it reports arguments it does not know itself, so the error and
    its hint name the command (`pveplan plan --help`), not the top level."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            message = f"unrecognized arguments: {' '.join(extras)}"
            flags = [word.split("=", 1)[0] for word in extras if word.startswith("-")]
            close = [m for f in flags for m in difflib.get_close_matches(f, self._flags(), n=1)]
            if close:
                message += f"; did you mean {close[0]!r}?"
            self.error(message)
        return parsed, extras

    def _flags(self) -> list[str]:
        return [flag for action in self._actions for flag in action.option_strings]


def add_command(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    *,
    help: str,
    description: str,
    examples: Sequence[str],
) -> argparse.ArgumentParser:
    """A top-level command whose help ends with `examples` and the environment it reads."""
    return commands.add_parser(
        name, help=help, description=description, epilog=epilog(name, examples)
    )


def add_action(
    actions: argparse._SubParsersAction,  # type: ignore[type-arg]
    command: str,
    name: str,
    *,
    help: str,
    examples: Sequence[str],
) -> argparse.ArgumentParser:
    """An action of a command (`store gc`): its help shows the command's examples that
    use it (all of them when none does) and the command's environment."""
    mine = [line for line in examples if f"pveplan {command} {name}" in line]
    return actions.add_parser(
        name,
        help=help,
        description=help[:1].upper() + help[1:] + ".",
        epilog=epilog(command, mine or examples),
    )


def epilog(command: str, examples: Sequence[str]) -> str:
    """`examples:` then `environment:`, as both sections of a command's help."""
    lines = ["examples:", *(f"  {line}" for line in examples), "", environment_section(command)]
    return "\n".join(lines)


def add_format_options(parser: argparse.ArgumentParser) -> None:
    """Output formats of `plan` and `show`; markdown is for pull-request comments."""
    parser.add_argument(
        "--format",
        choices=("text", "json", "markdown"),
        default="text",
        help="text (default), json, or markdown (collapsible sections, split into parts)",
    )
    parser.add_argument("--json", action="store_true", help="the same as --format json")
    parser.add_argument(
        "--max-chars",
        type=int,
        default=65_000,
        metavar="N",
        help="markdown: split into self-contained parts of at most N characters (65000)",
    )
    parser.add_argument(
        "--parts-dir",
        metavar="DIR",
        help="markdown: write each part to DIR/MANIFEST-HOST-part-NN.md instead of stdout",
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Flags of every command that runs steps."""
    parser.add_argument(
        "--parallelism", type=int, metavar="N", help="steps at once (default: the manifest's, 10)"
    )
    add_refresh_option(
        parser,
        "probe live state (one listing per host; the default) and converge drift; bare "
        "--refresh also probes every cached step (deeper, one probe per step); "
        "--refresh=full also reads each applied VM's config (bridge, onboot, cloud-init "
        "user and keys: one call per VM); --refresh=false trusts the store",
    )
    parser.add_argument(
        "--lock-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="wait up to SECONDS for another run's workspace lock "
        "(default: site.yaml's store.lock_timeout, else 0: refuse at once, naming the holder)",
    )


def add_refresh_option(parser: argparse.ArgumentParser, help: str) -> None:
    """`--refresh[=true|false|full]`: unset (None) is the default probe; bare is True;
    `full` (the string) adds a config read of each applied VM."""
    parser.add_argument(
        "--refresh",
        nargs="?",
        const=True,
        default=None,
        type=_refresh,
        metavar="BOOL|full",
        help=help,
    )


def _refresh(text: str) -> bool | str:
    if text.strip().lower() == "full":
        return "full"
    try:
        return _boolean(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not true, false or full") from None


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "yes", "on", "1"):
        return True
    if value in ("false", "no", "off", "0"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 86400:
        raise argparse.ArgumentTypeError("give 0 to 86400 seconds")
    return value


def add_target_option(parser: argparse.ArgumentParser) -> None:
    """`-target NODE` (Terraform's spelling) or `--target NODE`, repeatable: only that node,
    what it depends on and the hosts it is nested in (cli/_targets.py)."""
    parser.add_argument(
        "-target",
        "--target",
        action="append",
        metavar="NODE",
        help="only NODE (repeatable): with what it needs and the hosts it is nested in; "
        "the rest of the workspace is not considered",
    )
    parser.add_argument(
        "--target-host",
        action="append",
        metavar="HOST",
        help="only the nodes placed on PVE host HOST (repeatable; a manifest's nodes may "
        "name their host with `host:`); the rest of the workspace is not considered",
    )


def add_yes_option(parser: argparse.ArgumentParser) -> None:
    """`-y/--yes`: no question asked (and none can be on a non-terminal anyway)."""
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def add_manifest_options(parser: argparse.ArgumentParser) -> None:
    """The homestak-style manifest and host selection flags (-M, -H, --site-config);
    -M and -H complete from the site config (see `_completion`)."""
    manifest = parser.add_argument(
        "-M",
        "--manifest",
        metavar="NAME",
        help="a manifest by name: manifests/NAME.pvp (preferred) or NAME.yaml in the site config",
    )
    manifest.completer = manifest_names  # type: ignore[attr-defined]
    parser.add_argument(
        "--manifest-file", metavar="FILE", help="a manifest by path (same as a FILE argument)"
    )
    host = parser.add_argument(
        "-H", "--host", metavar="[USER@]HOST", help="target PVE host (nodes/HOST.yaml)"
    )
    host.completer = host_names  # type: ignore[attr-defined]
    parser.add_argument("--site-config", metavar="DIR", help="site config directory")
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="rehearse on the simulator: every host is simulated as its node file describes "
        "(sim: true), without editing files; plans and workspaces are named sim:HOST and "
        "never run on the real host",
    )
