"""Has anything a saved plan was made from moved since? The check `apply FILE` makes.

A reviewed plan is only worth applying while it still describes the inputs: the
manifest (compared by the digest of the canonical `Manifest`, so reformatting or a new
comment moves nothing), the site-config files (by their bytes), and the secrets its
steps use (by the same keyed digests the plan holds, so no value is ever shown). Each
difference is named, file by file or secret by secret, so the message says what moved.
"""

from __future__ import annotations

from collections.abc import Mapping

from pveplan import dsl

from ._errors import PlanError
from ._planfile import PlanFile, file_digests
from ._planning import manifest_digest, manifest_file_digests, site_config_files
from ._secretuse import SIGNING_KEY, SecretDigests
from .siteconfig import SiteConfig


def moved_inputs(plan_file: PlanFile, loaded: dsl.LoadedManifest, site: SiteConfig) -> list[str]:
    """What differs from when `plan_file` was made, one sentence each (empty: nothing)."""
    header = plan_file.header
    moved: list[str] = []
    # An empty digest (a doctored header) is a mismatch, never a reason to skip the check.
    if manifest_digest(loaded.manifest) != header.manifest_digest:
        files = _file_changes(header.manifest_files, manifest_file_digests(loaded))
        moved.append(
            f"the manifest {plan_file.plan.manifest!r} changed"
            + (f" ({files})" if files else " (its files read differently now)")
        )
    per_file, combined = file_digests(site_config_files(site.root))
    if combined != header.site_config_digest:
        moved.append(
            f"the site config changed ({_file_changes(header.site_config_files, per_file)})"
        )
    secrets = _secret_changes(plan_file, site)
    if secrets:
        moved.append(f"secrets it uses changed: {secrets}")
    return moved


def _file_changes(before: Mapping[str, str], now: Mapping[str, str]) -> str:
    changed = [name for name in sorted(before.keys() & now.keys()) if before[name] != now[name]]
    parts = [f"{name} edited" for name in changed]
    parts += [f"{name} added" for name in sorted(now.keys() - before.keys())]
    parts += [f"{name} removed" for name in sorted(before.keys() - now.keys())]
    return ", ".join(parts)


def _secret_changes(plan_file: PlanFile, site: SiteConfig) -> str:
    uses = {use.name: use.digest for _, step in plan_file.plan.walk() for use in step.secrets}
    if not uses:
        return ""
    digests = SecretDigests(site.secrets.reveal)
    try:
        digests.signing_key()
    except PlanError:
        return f"{SIGNING_KEY} (removed)"
    changed = []
    for name in sorted(uses):
        try:
            now = digests.use(name).digest
        except PlanError:
            changed.append(f"{name} (removed)")
            continue
        if now != uses[name]:
            changed.append(f"{name} (new value)")
    return ", ".join(changed)
