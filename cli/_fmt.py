"""`pveplan fmt`: canonical layout for .pvp files, in place, or checked (--check)."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pveplan.dsl import Diagnostic, DslError, decode_source

if TYPE_CHECKING:
    from . import Console


def run_fmt(args: argparse.Namespace, console: Console) -> int:
    from pveplan.dsl import format_source

    if args.files == ["-"]:
        data = sys.stdin.buffer.read()
        console.out.write(format_source(decode_source(data, "<stdin>"), "<stdin>"))
        return 0
    files, missing = _collect(args.files, console)
    changed = failed = 0
    for path in files:
        try:
            original = decode_source(path.read_bytes(), str(path))
            formatted = format_source(original, str(path))
        except DslError as exc:
            console.diagnostics(exc.diagnostics)
            failed += 1
            continue
        except OSError as exc:
            console.diagnostics([Diagnostic(summary=f"cannot read {path}: {exc.strerror or exc}")])
            failed += 1
            continue
        if formatted == original:
            continue
        changed += 1
        if args.diff:
            console.out.writelines(
                difflib.unified_diff(
                    original.splitlines(keepends=True),
                    formatted.splitlines(keepends=True),
                    f"{path} (original)",
                    f"{path} (formatted)",
                )
            )
        if args.check or args.diff:
            console.error(f"would reformat {path}")
        else:
            write_atomic(path, formatted)
            console.error(f"reformatted {path}")
    verb = "would be reformatted" if (args.check or args.diff) else "reformatted"
    unchanged = len(files) - changed - failed
    console.error(
        f"{changed} file(s) {verb}, {unchanged} unchanged"
        + (f", {failed} failed" if failed else "")
    )
    if failed or missing:
        return 1
    return 1 if changed and (args.check or args.diff) else 0


def _collect(names: list[str], console: Console) -> tuple[list[Path], int]:
    """The .pvp files named, or found under named directories (sorted, deduplicated)."""
    found: list[Path] = []
    missing = 0
    for name in names:
        path = Path(name)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.pvp") if p.is_file()))
        elif path.is_file():
            if path.suffix != ".pvp":
                console.diagnostics([Diagnostic(summary=f"{name}: fmt formats .pvp files only")])
                missing += 1
            else:
                found.append(path)
        else:
            console.diagnostics([Diagnostic(summary=f"{name}: no such file or directory")])
            missing += 1
    return list(dict.fromkeys(found)), missing


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` by a rename, so a crash leaves the old or the new file, never half."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
