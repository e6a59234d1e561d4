"""From a checked, resolved manifest to a complete plan file (body + header).

The body comes from `compile_plan`; the header records what the plan was made from,
in a form that is the same on every machine: file paths relative to the manifest's
directory and the site config's root, digests of file contents, the tool version, and
the store state it was planned against. `manifest_digest` is taken over the canonical
`Manifest` value, so reformatting or commenting a manifest does not make a reviewed plan
stale, while `manifest_files` still shows which bytes it was read from.
"""

from __future__ import annotations

from pathlib import Path

from pveplan import dsl

from ._compile import compile_plan
from ._hashing import canonical, digest
from ._planfile import Header, PlanFile, file_digests, relative_to, workspace_name
from ._version import __version__
from .siteconfig import ResolvedManifest, SiteConfig

SITE_CONFIG_PARTS = ("site.yaml", "nodes", "hosts", "presets", "specs", "postures", "v2")


def site_config_files(root: Path) -> dict[str, bytes]:
    """The site-config files a plan depends on, by relative path (secrets.yaml excluded:
    secret changes show in the steps' keyed digests; manifests/ excluded: not config)."""
    files: dict[str, bytes] = {}
    for part in SITE_CONFIG_PARTS:
        path = root / part
        candidates = (
            [path] if path.is_file() else sorted(path.rglob("*.yaml")) if path.is_dir() else []
        )
        for file in candidates:
            if (
                file.is_file()
                and file.name != "secrets.yaml"
                and "manifests" not in file.relative_to(root).parts
            ):
                files[file.relative_to(root).as_posix()] = file.read_bytes()
    return files


def manifest_digest(manifest: dsl.Manifest) -> str:
    """The digest of the canonical manifest value: formatting and comments do not move it."""
    return digest(canonical(manifest))


def manifest_file_digests(loaded: dsl.LoadedManifest) -> dict[str, str]:
    """The digest of each file the manifest was read from, by path relative to its own
    directory (so the same checkout gives the same header anywhere)."""
    base = Path(loaded.files[0]).parent
    texts = loaded.source_map.texts
    return file_digests({relative_to(name, base): text.encode() for name, text in texts.items()})[0]


def build_plan_file(
    loaded: dsl.LoadedManifest,
    resolved: ResolvedManifest,
    site: SiteConfig,
    host: str,
    *,
    planned_against: str | None,
) -> PlanFile:
    """The plan file for `loaded` on `host`; `planned_against` is the applied plan's hash."""
    main = Path(loaded.files[0])
    base = main.parent

    relative: dict[str, str] = {}  # one path computation per file, not per location

    def locate(pos: tuple[str, int, int]) -> str:
        file, line, col = pos
        name = relative.get(file)
        if name is None:
            name = relative[file] = relative_to(file, base)
        return f"{name}:{line}:{col}"

    def preset_source(preset: str, field: str) -> tuple[str, int, int] | None:
        try:
            return site.documents("presets").entry(preset)[1].values.get((field,))
        except KeyError:
            return None

    result = compile_plan(
        resolved, loaded, host, site.secrets.reveal, locate=locate, preset_source=preset_source
    )
    per_manifest_file = manifest_file_digests(loaded)
    per_site_file, site_digest = file_digests(site_config_files(site.root))
    header = Header(
        tool=f"pveplan {__version__}",
        workspace=workspace_name(resolved.name, host),
        manifest_files=per_manifest_file,
        manifest_digest=manifest_digest(loaded.manifest),
        site_config_files=per_site_file,
        site_config_digest=site_digest,
        planned_against=planned_against,
        sources=result.sources,
    )
    return PlanFile(hash=result.plan.hash, plan=result.plan, header=header)
