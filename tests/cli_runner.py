"""Run the real `pveplan` entry point in-process, capturing what it prints."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from pathlib import Path

from pveplan.cli import main


def run_cli(argv: Sequence[str], cwd: Path | None = None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `pveplan *argv`, as a user would see them."""
    out, err = io.StringIO(), io.StringIO()
    old = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as exc:  # argparse exits on usage errors
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()
