"""The shipped examples: complete, valid, canonical, and the same in both front ends.

examples/site-config/manifests/ holds each example manifest twice, as `NAME.pvp` (the
DSL) and `NAME.yaml` (homestak's YAML v2). Users compare the two to learn the DSL, so
they must mean exactly the same `Manifest`, node order included.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pveplan.dsl import _ast as A
from pveplan.dsl import load_manifest
from pveplan.dsl._formatter import format_source
from pveplan.dsl._parser import parse

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MANIFESTS = EXAMPLES / "site-config" / "manifests"
EXPECTED = ("lab", "n1-push", "n2-tiered", "n3-deep", "workers-20")


def _pairs() -> list[Path]:
    """Every example .pvp that has a .yaml sibling."""
    return sorted(p for p in MANIFESTS.glob("*.pvp") if p.with_suffix(".yaml").is_file())


def _manifests() -> list[Path]:
    return sorted([*MANIFESTS.glob("*.pvp"), *MANIFESTS.glob("*.yaml")])


def _all_pvp() -> list[Path]:
    return sorted(EXAMPLES.rglob("*.pvp"))


def _id(path: Path) -> str:
    return str(path.relative_to(EXAMPLES))


@pytest.mark.parametrize("pvp", _pairs(), ids=lambda p: p.stem)
def test_dsl_and_yaml_load_to_the_same_manifest(pvp: Path) -> None:
    from_dsl = load_manifest(str(pvp)).manifest
    from_yaml = load_manifest(str(pvp.with_suffix(".yaml"))).manifest
    # Names first: a mismatch in order shows up here as a readable diff.
    assert [n.name for n in from_dsl.nodes] == [n.name for n in from_yaml.nodes]
    assert from_dsl == from_yaml


@pytest.mark.parametrize("path", _manifests(), ids=_id)
def test_example_manifest_is_valid(path: Path) -> None:
    loaded = load_manifest(str(path))  # raises DslError on any error
    assert loaded.manifest.name == path.stem
    assert loaded.warnings == ()


@pytest.mark.parametrize("path", _all_pvp(), ids=_id)
def test_pvp_is_in_canonical_form(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert format_source(text, str(path)) == text, f"run: pveplan fmt {_id(path)}"


@pytest.mark.parametrize("path", sorted(MANIFESTS.glob("lib/*.pvp")), ids=_id)
def test_library_holds_no_manifest_block(path: Path) -> None:
    module, _ = parse(path.read_text(encoding="utf-8"), str(path))
    assert not any(isinstance(item, A.ManifestBlock) for item in module.items)
    assert any(isinstance(item, A.Let) for item in module.items)


def test_example_set_is_complete() -> None:
    for name in EXPECTED:
        assert (MANIFESTS / f"{name}.pvp").is_file(), f"{name}.pvp is missing"
        assert (MANIFESTS / f"{name}.yaml").is_file(), f"{name}.yaml is missing"
    assert {p.stem for p in _pairs()} >= set(EXPECTED)
    assert (MANIFESTS / "lib" / "sizes.pvp").is_file()


def test_lab_uses_the_library_and_functions() -> None:
    """lab.pvp is the example of imports and functions: it must keep showing them."""
    loaded = load_manifest(str(MANIFESTS / "lab.pvp"))
    assert any(f.endswith("sizes.pvp") for f in loaded.files)
    module, _ = parse((MANIFESTS / "lab.pvp").read_text(encoding="utf-8"), "lab.pvp")
    assert any(isinstance(item, A.Import) for item in module.items)
    assert any(
        isinstance(item, A.Let) and isinstance(item.value, A.Lambda) for item in module.items
    )


def test_workers_20_has_twenty_workers() -> None:
    manifest = load_manifest(str(MANIFESTS / "workers-20.pvp")).manifest
    assert [n.name for n in manifest.nodes] == [f"worker-{i:02d}" for i in range(1, 21)]
    assert [n.vmid for n in manifest.nodes] == list(range(99101, 99121))
