"""`pveplan validate`: is this manifest valid, and does everything it names exist?

Exit 0 when every manifest is valid; 1 when any is not, with every problem found (not
just the first) at its file:line:col. This is the seeds' ST-7.

One pass: the manifest is loaded with `keep_going`, so its schema and tree errors do not
stop its names being looked up in the site config; errors come first, in source order,
then warnings. A site config that cannot be found or loaded is reported with the
manifest's own errors, since nothing can be looked up without it.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from pveplan.dsl import Diagnostic, DiagnosticError, load_manifest, load_yaml, manifest_from_data

from ._select import SiteCache, display_path, manifest_paths, plan_host, site_root

if TYPE_CHECKING:
    from . import Console


INLINE = "<manifest-json>"
"""The name `--manifest-json`'s manifest goes by in diagnostics and results."""


def run_validate(args: argparse.Namespace, console: Console) -> int:
    inline = getattr(args, "manifest_json", None)
    if inline is not None and (args.files or args.manifest or args.manifest_file):
        console.error(
            "pveplan validate: error: --manifest-json is the manifest; give it alone "
            "(no FILE, -M or --manifest-file with it)"
        )
        return 1
    paths = [INLINE] if inline is not None else manifest_paths(args, console)
    sites = SiteCache()
    results: list[dict[str, Any]] = []
    failed = False
    for path in paths:
        diagnostics, summary = _check(path, args, console, sites)
        errors = [d for d in diagnostics if d.severity == "error"]
        failed = failed or bool(errors)
        if args.json:
            results.append(
                {
                    "file": path,
                    "valid": not errors,
                    "diagnostics": [_as_json(d) for d in diagnostics],
                }
            )
            continue
        console.diagnostics(diagnostics)
        if not errors:
            console.print(f"{path}: {console.style.green('valid')} ({summary})")
    if args.json:
        console.print(
            json.dumps({"valid": not failed, "manifests": results}, indent=2, sort_keys=True)
        )
    return 1 if failed else 0


def _check(
    path: str, args: argparse.Namespace, console: Console, sites: SiteCache
) -> tuple[list[Diagnostic], str]:
    """Every diagnostic of the manifest at `path` (errors first), and a summary if valid."""
    try:
        if path == INLINE:  # iac-driver's --manifest-json: YAML reads JSON as it is
            data, smap = load_yaml(args.manifest_json, INLINE)
            loaded = manifest_from_data(data, smap, keep_going=True)
        else:
            loaded = load_manifest(path, keep_going=True)
    except DiagnosticError as exc:
        return list(exc.diagnostics), ""  # nothing of it could be checked further
    manifest = loaded.manifest
    roots = len(manifest.children(None))
    summary = f"manifest {manifest.name!r}: {_count(len(manifest.nodes), 'node')}, {_count(roots, 'root')}"
    if args.no_site_config:
        return [*loaded.errors, *loaded.warnings], summary
    from pveplan.planner import resolve_manifest

    try:
        root = site_root(args, console, None if path == INLINE else path)
        site = sites.get(root)
        host = plan_host(args, console, site)
    except DiagnosticError as exc:
        return [*loaded.errors, *exc.diagnostics, *loaded.warnings], summary
    try:
        resolved = resolve_manifest(loaded, site, host)
    except DiagnosticError as exc:  # carries the manifest's own errors too
        return [*exc.diagnostics, *loaded.warnings], summary
    summary += f"; site config {display_path(root, console.cwd)}"
    summary += f", host {host}" if host else ""
    return [*loaded.warnings, *resolved.warnings], summary


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _as_json(diag: Diagnostic) -> dict[str, Any]:
    loc = diag.location
    return {
        "severity": diag.severity,
        "summary": diag.summary,
        "detail": diag.detail,
        "file": loc.file if loc else None,
        "line": loc.line if loc else None,
        "col": loc.col if loc else None,
    }
