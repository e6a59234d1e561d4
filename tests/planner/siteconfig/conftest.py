"""Shared helpers: the homestak fixture site config, and broken copies of it in tmp_path."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from pveplan import dsl
from pveplan.planner.siteconfig import SiteConfig, load_site_config

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "homestak-site-config"
MANIFESTS = sorted((FIXTURE / "manifests").glob("*.yaml"))
FAKE = "FAKESECRET"  # every value in the fixture's secrets.yaml contains this


def write(root: Path, files: dict[str, str | None]) -> Path:
    """Write (dedented) files under `root`; a None value deletes that file."""
    for rel, text in files.items():
        path = root / rel
        if text is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    """A writable copy of the fixture site config."""
    root = tmp_path / "site-config"
    shutil.copytree(FIXTURE, root)
    return root


@pytest.fixture
def fixture_site() -> SiteConfig:
    return load_site_config(FIXTURE)


def manifest(root: Path, text: str, name: str = "test.yaml") -> dsl.LoadedManifest:
    """A manifest written to `root/manifests/name` and loaded from there."""
    path = write(root, {f"manifests/{name}": text}) / "manifests" / name
    return dsl.load_manifest(str(path))


def site_with(root: Path, files: dict[str, str | None]) -> SiteConfig:
    return load_site_config(write(root, files))
