"""The pull-mode nodes a spec server publishes, as found in a plan or in a site's manifests.

Two sources give the same `PulledSpec` for the same node, because both go through
`_pullspec`: a plan (its `config.await_report` steps, at any depth: what an apply needs
served) and the site config's manifests (what `pveplan serve` publishes on its own). What
is published from them (secret values, credentials) is the caller's business: nothing
here reveals a secret.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from pveplan import dsl

from ._errors import PlanError
from ._plan import Plan
from ._pullspec import PulledSpec, from_await_step, pulled_spec
from ._secretuse import SecretDigests
from .siteconfig import SiteConfig, resolve_manifest

MANIFEST_SUFFIXES = (".pvp", ".yaml", ".yml")
"""The files a site config's `manifests/` folder holds manifests in."""


def pull_identities(plan: Plan) -> list[str]:
    """The pull nodes of `plan` and its subplans (whose reports an apply waits for)."""
    return sorted(
        step.args["identity"] for _, step in plan.walk() if step.kind == "config.await_report"
    )


def plan_pulled_specs(plan: Plan) -> list[PulledSpec]:
    """The specs the pull nodes of `plan` (and its subplans) will fetch."""
    return [from_await_step(step) for _, step in plan.walk() if step.kind == "config.await_report"]


def site_pulled_specs(
    site: SiteConfig, extra: Iterable[Path] = (), warn: Callable[[str], None] = lambda _: None
) -> list[PulledSpec]:
    """The specs of every pull node in the site config's manifests (and `extra` files).

    A manifest that does not load or resolve is skipped with a warning: one broken file
    must not take the specs of every other node offline.
    """
    folder = site.root / "manifests"
    files = sorted(p for p in folder.glob("*") if p.suffix in MANIFEST_SUFFIXES and p.is_file())
    secret_use = SecretDigests(site.secrets.reveal).use
    pulled: list[PulledSpec] = []
    for path in [*files, *extra]:
        try:
            resolved = resolve_manifest(dsl.load_manifest(str(path)), site, None)
            pulled.extend(
                pulled_spec(node, secret_use)
                for node in resolved.nodes
                if node.mode == "pull" and node.spec is not None
            )
        except (dsl.DslError, PlanError) as exc:
            warn(f"skipping {path.name}: {_first_line(exc)}")
    return pulled


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
