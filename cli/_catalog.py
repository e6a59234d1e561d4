"""What the spec server publishes: pull nodes' specs with their secrets, and credentials.

Two sources give the same result for the same node, because the planner finds both
(`plan_pulled_specs`, `site_pulled_specs`): a plan (its `config.await_report` steps, at any
depth: what an apply needs served) and a site config's manifests (what `pveplan serve`
publishes on its own).
Only pull-mode nodes are published. A node name that two manifests define with different
specs is not served at all (409): a node must never get someone else's spec.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pveplan.planner import (
    Plan,
    PulledSpec,
    SecretRef,
    SiteConfig,
    plan_pulled_specs,
    site_pulled_specs,
)

if TYPE_CHECKING:
    from pveplan.executor import Catalog, PublishedSpec

NODE_TOKENS = "node_tokens"
"""secrets.yaml section of static per-node tokens (`node_tokens: {edge: ...}`)."""


def catalog_for_plan(plan: Plan, site: SiteConfig) -> Catalog:
    """The specs the pull nodes of `plan` (and its subplans) will fetch."""
    return _catalog(plan_pulled_specs(plan), site)


def catalog_for_site(
    site: SiteConfig, extra: Iterable[Path] = (), warn: Callable[[str], None] = lambda _: None
) -> Catalog:
    """The specs of every pull node in the site config's manifests (and `extra` files);
    one that does not load or resolve is skipped with a warning (`site_pulled_specs`)."""
    return _catalog(site_pulled_specs(site, extra, warn), site)


def _catalog(pulled: list[PulledSpec], site: SiteConfig) -> Catalog:
    from pveplan.executor import Catalog

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
        node_tokens=_node_tokens(site),
        signing_key=_optional(site, "auth", "signing_key"),
    )


def _node_tokens(site: SiteConfig) -> dict[str, str]:
    """Static per-node tokens: pveplan's `node_tokens.NODE` and homestak's (pre-0.49)
    `auth.node_tokens.NODE`; pveplan's wins when both name a node."""
    nested = f"{NODE_TOKENS}."
    tokens = {
        key.removeprefix(nested): site.secrets.reveal(SecretRef(name=f"auth.{key}"))
        for key in site.secrets.keys("auth")
        if key.startswith(nested)
    }
    for key in site.secrets.keys(NODE_TOKENS):
        tokens[key] = site.secrets.reveal(SecretRef(name=f"{NODE_TOKENS}.{key}"))
    return tokens


def _published(spec: PulledSpec, site: SiteConfig) -> PublishedSpec:
    """The document a node gets: its spec, and the values of the secrets it names only."""
    from pveplan.executor import PublishedSpec

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
