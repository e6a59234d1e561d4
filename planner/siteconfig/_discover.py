"""Finding the site config directory, in homestak's order.

The order (first match wins) is: the `--site-config` flag; `$HOMESTAK_SITE_CONFIG`; the
site config that encloses the manifest (`<dir>/manifests/<file>` with `<dir>/site.yaml`);
`$HOMESTAK_ROOT/config` (`$HOMESTAK_ROOT` defaults to `$HOME`, as in iac-driver, where it
is the one place looked: an installed homestak host keeps its site config in ~/config);
`../site-config` from the working directory; `/usr/local/etc/homestak`;
`/opt/homestak/site-config`.

A name the user gave explicitly (flag or variable) must exist, and any directory will
do, so `--site-config /tmp/empty` works for a manifest that needs no site data. A
guessed place only counts if it holds a `site.yaml`: a stray `../site-config` folder of
something else must not be picked up silently.

Pure apart from `stat`: the environment and the working directory are arguments, so
the CLI (the only reader of `os.environ`) decides what they are, and tests can too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from .._errors import PlanError

ENV_VAR = "HOMESTAK_SITE_CONFIG"
ROOT_VAR = "HOMESTAK_ROOT"
SITE_FILE = "site.yaml"
SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/local/etc/homestak"), Path("/opt/homestak/site-config"))


def discover_site_config(
    flag: str | None,
    env: Mapping[str, str],
    cwd: Path,
    manifest_path: str | None = None,
    *,
    system_dirs: Sequence[Path] = SYSTEM_DIRS,
) -> Path:
    """The site config directory to use; `PlanError` naming every place looked if none.

    Relative names (flag, variable, manifest path) are taken relative to `cwd`.
    `system_dirs` exists for tests; callers leave it alone.
    """
    if flag:
        return _explicit(cwd / flag, "--site-config")
    from_env = env.get(ENV_VAR, "")
    if from_env:
        return _explicit(cwd / from_env, f"${ENV_VAR}")

    looked: list[str] = ["--site-config: not given", f"${ENV_VAR}: not set"]
    enclosing = _enclosing(cwd, manifest_path)
    candidates: list[tuple[Path, str]] = []
    if enclosing is not None:
        candidates.append((enclosing, "the directory holding the manifest's manifests/"))
    root, home = env.get(ROOT_VAR, ""), env.get("HOME", "")
    if root:
        candidates.append((cwd / root / "config", f"${ROOT_VAR}/config"))
    elif home:
        candidates.append((Path(home) / "config", f"~/config: ${ROOT_VAR} not set"))
    candidates.append((cwd.parent / "site-config", "../site-config"))
    candidates.extend((path, "system location") for path in system_dirs)
    for path, why in candidates:
        if (path / SITE_FILE).is_file():
            return path
        state = "no site.yaml" if path.is_dir() else "does not exist"
        looked.append(f"{path} ({why}): {state}")
    raise PlanError.at(
        None,
        "no site config found",
        "looked in:\n  " + "\n  ".join(looked) + f"\nname one with --site-config DIR or ${ENV_VAR}",
    )


def _explicit(path: Path, source: str) -> Path:
    """A directory the user named: it must exist (a site.yaml in it is optional)."""
    if path.is_dir():
        return path
    state = "is not a directory" if path.exists() else "does not exist"
    raise PlanError.at(
        None,
        f"site config directory {path} (from {source}) {state}",
        "point it at a homestak site-config directory (one holding site.yaml)",
    )


def _enclosing(cwd: Path, manifest_path: str | None) -> Path | None:
    """`<dir>` when the manifest is `<dir>/manifests/<file>`, else None."""
    if not manifest_path:
        return None
    folder = (cwd / manifest_path).parent
    if folder.name != "manifests":
        return None
    return folder.parent
