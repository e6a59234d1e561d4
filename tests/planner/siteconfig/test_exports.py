"""The package's public API: what the CLI and the planner import, and nothing private."""

from __future__ import annotations

import inspect

import pveplan.planner.siteconfig as siteconfig

API = {
    "discover_site_config",
    "load_site_config",
    "rehearsal_host",
    "rehearsed_host",
    "resolve_manifest",
    "SiteConfig",
    "Secrets",
    "SecretRef",
    "ImageCatalog",
    "CatalogImage",
    "HostConfig",
    "ResolvedManifest",
    "ResolvedNode",
    "ResolvedSpec",
    "ResolvedUser",
    "Preset",
    "Spec",
    "Posture",
    "SiteFile",
    "SiteDefaults",
    "SiteImage",
    "NodeFile",
    "HostFile",
    "is_snippet",
    "merge_user_data",
}


def test_all_is_the_api() -> None:
    assert set(siteconfig.__all__) == API
    assert len(siteconfig.__all__) == len(API)  # no duplicates


def test_every_export_is_defined_here() -> None:
    for name in siteconfig.__all__:
        obj = getattr(siteconfig, name)
        assert obj.__module__.startswith("pveplan.planner.siteconfig._"), name
        assert inspect.getdoc(obj), f"{name} has no docstring"


def test_api_signatures() -> None:
    discover = inspect.signature(siteconfig.discover_site_config)
    assert list(discover.parameters)[:4] == ["flag", "env", "cwd", "manifest_path"]
    assert discover.parameters["manifest_path"].default is None
    resolve = inspect.signature(siteconfig.resolve_manifest)
    assert list(resolve.parameters) == ["loaded", "site", "host", "rehearse"]
    assert resolve.parameters["host"].default is None
    # --simulate's rehearsal of the hosts nodes name: keyword only, off by default
    assert resolve.parameters["rehearse"].kind is inspect.Parameter.KEYWORD_ONLY
    assert resolve.parameters["rehearse"].default is False
    assert list(inspect.signature(siteconfig.load_site_config).parameters) == ["root"]
