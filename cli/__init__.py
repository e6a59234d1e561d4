"""The `pveplan` command: the composition root, and the only code that reads flags,
environment and terminal.

Each command parses its arguments into values, calls one library function, renders
the result and returns an exit code. Any error a user can cause (a `DslError`, a
`PlanError`) is rendered as located diagnostics with exit 1; a bug keeps its traceback.
Heavy modules are imported inside commands so `pveplan --version` stays instant.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ._render import Style, color_enabled, render_all


@dataclass
class Console:
    """Where a command writes, and the environment it runs in (injected for tests)."""

    out: TextIO
    err: TextIO
    env: Mapping[str, str]
    cwd: Path
    style: Style = field(default_factory=lambda: Style(False))  # for `out`
    err_style: Style = field(default_factory=lambda: Style(False))  # for `err`
    site_flag: str | None = None
    """The command's --site-config, if any: where the store's site setting is read."""
    deadline: float | None = None
    """`--timeout`'s deadline (a `time.time()` value): every run of the command stops there."""

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def error(self, text: str) -> None:
        self.err.write(text + "\n")

    def diagnostics(self, diags: Sequence[object]) -> None:
        if diags:
            self.err.write(render_all(diags, self.err_style) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run pveplan with `argv` (default: sys.argv[1:]); returns the exit code.

    Ctrl-C at any moment, imports and planning included, is exit 130 with one line, never
    a traceback (a run under way says more about what it recorded, see `_apply`)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        sys.stderr.write("pveplan: interrupted\n")
        return 130


def _main(argv: Sequence[str] | None) -> int:
    import argparse

    from ._app import build_parser, retired, run
    from ._scenario_argv import scenario_argv

    if "_ARGCOMPLETE" in os.environ:  # a completion script asks for candidates
        from ._completion import complete

        complete(build_parser())  # prints them and exits
    from ._compat_argv import rewrite

    rewritten = rewrite(sys.argv[1:] if argv is None else argv)  # iac-driver's `manifest ACTION`
    if rewritten.words is None:
        (sys.stdout if rewritten.code == 0 else sys.stderr).write(rewritten.text + "\n")
        return rewritten.code
    words = rewritten.words
    words = scenario_argv(words)  # iac-driver's --scenario NAME, scenario run NAME, ...
    first = next((w for w in words if not w.startswith("-")), None)
    replacement = retired(first) if first else None
    if replacement is not None:
        args = argparse.Namespace(command="retired", name=first, verb=replacement, color="auto")
    else:
        try:
            args = build_parser().parse_args(words)
        except SystemExit as exc:
            # Usage errors exit 1: 2 means "changes" under --detailed-exitcode. The parser
            # already exits 1; this catches any argparse path that still says 2.
            if exc.code == 2:
                return 1
            raise
    color = True if args.color == "always" else False if args.color == "never" else None
    console = Console(
        out=sys.stdout,
        err=sys.stderr,
        env=os.environ,
        cwd=Path.cwd(),
        style=Style(color_enabled(sys.stdout, os.environ, color)),
        err_style=Style(color_enabled(sys.stderr, os.environ, color)),
    )
    try:
        return run(args, console)
    except BrokenPipeError:
        # The reader went away (e.g. `pveplan ... | head`): nothing left to tell anyone.
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 1
