"""Shell completion for bash, zsh and fish, by argcomplete.

`pveplan completion SHELL` prints a script that, on TAB, runs `pveplan` itself with
`_ARGCOMPLETE` and `COMP_LINE` set; `main()` then hands the parser to `complete()`, which
prints the candidates and exits. So completion always knows exactly the installed version's
commands and flags, and the completers below add what only the site config knows: the
names `-M` and `-H` take.

argcomplete is imported only on those two paths, never at start-up (`pveplan --version`
stays fast); the completers are plain functions so the parser can name them without it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from . import Console

SHELLS = ("bash", "zsh", "fish")


def complete(parser: argparse.ArgumentParser) -> NoReturn:
    """Print the completions the calling shell script asked for, and exit the process."""
    import argcomplete

    argcomplete.autocomplete(parser)
    raise SystemExit(0)  # not reached: autocomplete exits when _ARGCOMPLETE is set


def run_completion(args: argparse.Namespace, console: Console) -> int:
    """`pveplan completion SHELL`: the script to source (or install) in that shell."""
    import argcomplete

    console.out.write(argcomplete.shellcode(["pveplan"], shell=args.shell))
    return 0


def manifest_names(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """`-M` candidates: the manifests (.pvp, .yaml) in the site config's manifests/."""
    root = _site_config(parsed_args)
    if root is None:
        return []
    files = (root / "manifests").glob("*")
    names = {f.stem for f in files if f.suffix in (".pvp", ".yaml", ".yml") and f.is_file()}
    return sorted(n for n in names if n.startswith(prefix))


def host_names(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """`-H` candidates: the hosts of the site config (nodes/*.yaml, homestak's hosts/)."""
    root = _site_config(parsed_args)
    if root is None:
        return []
    files: Iterable[Path] = [*root.glob("nodes/*.yaml"), *root.glob("hosts/*.yaml")]
    return sorted({f.stem for f in files if f.stem.startswith(prefix)})


def _site_config(parsed_args: argparse.Namespace) -> Path | None:
    """The site config the command line would use, or None (completion never fails)."""
    from pveplan.planner import PlanError, discover_site_config

    try:
        return discover_site_config(
            getattr(parsed_args, "site_config", None), os.environ, Path.cwd()
        )
    except (PlanError, OSError):
        return None
