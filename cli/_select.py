"""Choosing what a command works on: manifest files, the site config, the target host.

Shared by every command that takes homestak's `-M NAME`, `--manifest-file`, `-H HOST`
and `--site-config` flags, so they mean the same thing everywhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pveplan.dsl import DiagnosticError, did_you_mean
from pveplan.planner import MANIFEST_SUFFIXES, PlanError, rehearsal_host, rehearsed_host

if TYPE_CHECKING:
    from pveplan.planner import SiteConfig

    from . import Console


def manifest_paths(args: argparse.Namespace, console: Console) -> list[str]:
    """Every manifest the arguments name: FILE arguments, --manifest-file, then -M NAME."""
    paths = list(getattr(args, "files", None) or [])
    if getattr(args, "manifest_file", None):
        paths.append(args.manifest_file)
    if getattr(args, "manifest", None):
        found = find_manifest(site_root(args, console, None), args.manifest)
        paths.append(display_path(found, console.cwd))
    if not paths:
        raise PlanError.at(None, "no manifest given", "name a FILE, or a manifest with -M NAME")
    return paths


def site_root(args: argparse.Namespace, console: Console, manifest_path: str | None) -> Path:
    """The site config directory, discovered as homestak does (the flag wins)."""
    from pveplan.planner import discover_site_config

    return discover_site_config(args.site_config, console.env, console.cwd, manifest_path)


def display_path(path: Path, cwd: Path) -> str:
    """`path` relative to `cwd` when it lies below it (as users typed it), else absolute."""
    try:
        return str(path.resolve().relative_to(cwd.resolve()))
    except ValueError:
        return str(path)


def find_manifest(root: Path, name: str) -> Path:
    """`manifests/NAME.pvp`, else `NAME.yaml` / `NAME.yml`, in the site config at `root`."""
    folder = root / "manifests"
    for suffix in MANIFEST_SUFFIXES:
        candidate = folder / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    known = (
        sorted({p.stem for p in folder.glob("*") if p.suffix in MANIFEST_SUFFIXES})
        if folder.is_dir()
        else []
    )
    raise PlanError.at(
        None, f"no manifest named {name!r} in {folder}", did_you_mean(name, known, "manifests")
    )


def host_name(args: argparse.Namespace) -> str | None:
    """The host part of `-H [user@]host` (the user only matters for SSH, later)."""
    host = getattr(args, "host", None)
    if not host:
        return None
    return host.rsplit("@", 1)[-1]


def simulating(args: argparse.Namespace, console: Console) -> bool:
    """`--simulate`, or `$PVEPLAN_SIMULATE` set to anything but "" or "0"."""
    if getattr(args, "simulate", False):
        return True
    return console.env.get("PVEPLAN_SIMULATE", "") not in ("", "0")


def plan_host(args: argparse.Namespace, console: Console, site: SiteConfig) -> str | None:
    """The host a plan targets: `-H`'s host, or under `--simulate` its rehearsal
    (`sim:HOST`, simulated whatever its node file says), so that a rehearsal never shares
    a workspace, a cached step or a plan file with the real host. A node file that already
    says `sim: true` is simulated anyway, so it keeps its own name."""
    host = host_name(args)
    if host is None:
        return None
    real = rehearsed_host(host)
    if real is not None:
        raise PlanError.at(
            None,
            f"host {host!r}: names starting with 'sim:' are rehearsals on the simulator",
            f"to rehearse {real} on the simulator, run with --simulate -H {real}",
        )
    if not simulating(args, console):
        return host
    try:
        if site.host(host).sim:
            return host
    except DiagnosticError:
        pass  # an unknown or broken host file: resolving reports it, with the rest
    return rehearsal_host(host)


class SiteCache:
    """Site configs loaded once per root, so validating many files reads each once."""

    def __init__(self) -> None:
        self._loaded: dict[Path, SiteConfig] = {}

    def get(self, root: Path) -> SiteConfig:
        from pveplan.planner import load_site_config

        key = root.resolve()
        if key not in self._loaded:
            self._loaded[key] = load_site_config(root)
        return self._loaded[key]
