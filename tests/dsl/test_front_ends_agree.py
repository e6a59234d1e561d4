"""One model whichever front end produced it: generated manifests written as YAML and as
.pvp load back to the very same `Manifest`."""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

import msgspec
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pveplan.dsl import Manifest, load_manifest
from tests._tiers import examples

from ..manifest_strategies import manifests, to_pvp


def _preorder(manifest: Manifest) -> bool:
    order: list[str] = []

    def visit(parent: str | None) -> None:
        for node in manifest.children(parent):
            order.append(node.name)
            visit(node.name)

    visit(None)
    return order == [n.name for n in manifest.nodes]


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifests(), st.booleans())
def test_yaml_and_pvp_give_the_same_manifest(manifest: Manifest, nested: bool) -> None:
    with TemporaryDirectory() as tmp:
        yaml_path = Path(tmp) / "m.yaml"
        yaml_path.write_text(
            yaml.safe_dump(msgspec.to_builtins(manifest), allow_unicode=True, sort_keys=False)
        )
        pvp_path = Path(tmp) / "m.pvp"
        pvp_path.write_text(to_pvp(manifest, nested and _preorder(manifest)))
        assert load_manifest(str(yaml_path)).manifest == manifest
        assert load_manifest(str(pvp_path)).manifest == manifest
