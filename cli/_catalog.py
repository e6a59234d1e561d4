"""What the spec server publishes: pull nodes' specs with their secrets, and credentials.

Two sources give the same result for the same node, because both go through
`planner._pullspec`: a plan (its `config.await_report` steps, at any depth: what an apply
needs served) and a site config's manifests (what `pveplan serve` publishes on its own).
Only pull-mode nodes are published. A node name that two manifests define with different
specs is not served at all (409): a node must never get someone else's spec.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pveplan import dsl
from pveplan.planner._errors import PlanError
from pveplan.planner._plan import Plan
from pveplan.planner._pullspec import PulledSpec, from_await_step, pulled_spec
from pveplan.planner._secretuse import SecretDigests
from pveplan.planner.siteconfig import SecretRef, SiteConfig, resolve_manifest

from ._select import MANIFEST_SUFFIXES

if TYPE_CHECKING:
    from pveplan.executor.specserver import Catalog, PublishedSpec

NODE_TOKENS = "node_tokens"
"""secrets.yaml section of static per-node tokens (`node_tokens: {edge: ...}`)."""


def catalog_for_plan(plan: Plan, site: SiteConfig) -> Catalog:
    """The specs the pull nodes of `plan` (and its subplans) will fetch."""
    pulled = [
        from_await_step(step) for _, step in plan.walk() if step.kind == "config.await_report"
    ]
    return _catalog(pulled, site)


def catalog_for_site(
    site: SiteConfig, extra: Iterable[Path] = (), warn: Callable[[str], None] = lambda _: None
) -> Catalog:
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
    return _catalog(pulled, site)


def _catalog(pulled: list[PulledSpec], site: SiteConfig) -> Catalog:
    from pveplan.executor.specserver import Catalog

    specs: dict[str, PublishedSpec] = {}
    conflicts: dict[str, str] = {}
    seen: dict[str, PulledSpec] = {}
    for spec in pulled:
        earlier = seen.get(spec.identity)
        if earlier is not None and earlier.hash != spec.hash:
            conflicts[spec.identity] = (
                f"node {spec.identity!r} is defined with two different specs "
                f"({earlier.spec_name} {earlier.hash[:12]} and {spec.spec_name} {spec.hash[:12]}); "
                "rename one of the nodes"
            )
            continue
        seen[spec.identity] = spec
    for identity, spec in seen.items():
        if identity not in conflicts:
            specs[identity] = _published(spec, site)
    return Catalog(
        specs=specs,
        conflicts=conflicts,
        site_token=_optional(site, "auth", "site_token"),
        node_tokens={
            key: site.secrets.reveal(SecretRef(name=f"{NODE_TOKENS}.{key}"))
            for key in site.secrets.keys(NODE_TOKENS)
        },
        signing_key=_optional(site, "auth", "signing_key"),
    )


def _published(spec: PulledSpec, site: SiteConfig) -> PublishedSpec:
    """The document a node gets: its spec, and the values of the secrets it names only."""
    from pveplan.executor.specserver import PublishedSpec

    values = {use.name: site.secrets.reveal(SecretRef(name=use.name)) for use in spec.secrets}
    document = {
        "identity": spec.identity,
        "spec_name": spec.spec_name,
        "spec_hash": spec.hash,
        "spec": spec.spec,
        "secrets": values,
    }
    return PublishedSpec(
        identity=spec.identity,
        spec_name=spec.spec_name,
        auth_method=spec.auth,
        spec_hash=spec.hash,
        document=json.dumps(document, sort_keys=True).encode(),
    )


def _optional(site: SiteConfig, section: str, key: str) -> str | None:
    ref = SecretRef(name=f"{section}.{key}")
    return site.secrets.reveal(ref) if site.secrets.has(ref) else None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
