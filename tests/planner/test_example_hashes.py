"""The example manifests' plan hashes, pinned: a refactoring must not move them.

A plan hash covers every step's kind, args, secrets digests and dependencies, so the same
manifest and site config must give the same hash before and after any change that claims
to keep behaviour (a package move, a new module layout). A change that means to alter
plans updates these values in the same commit, and says why.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ..cli_runner import run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "site-config"

PINNED = {
    "lab": "9a7e5e4d51c5bd61a5354aed5554c25d",
    "n1-pull": "a17d250b14df9cc6ae432271ea887740",
    "n1-push": "b59ea08e3a6ac70f57397f640f9bcac2",
    "n2-mixed": "3d966c957582c1121f29bea0d4f35e2d",
    "n2-pull": "eb6b4966daf5d1e6fb5569dd7ce1332b",
    "n2-tiered": "d82c511fa82479438aba9279e488dd34",
    "n3-deep": "9c60960a73a2f1a285b515aea2a683c9",
    "workers-20": "0f8b0d032799a66966afe23fa67ac63b",
}


@pytest.mark.parametrize("manifest", sorted(PINNED))
def test_example_plan_hashes_do_not_move(
    manifest: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PVEPLAN_STORE", str(tmp_path))  # nothing applied: a plain plan
    code, out, err = run_cli(
        ["plan", "-M", manifest, "-H", "sim", "--site-config", str(EXAMPLES), "--json"]
    )
    assert code == 0, err
    assert json.loads(out)["plan"] == PINNED[manifest]


def test_every_example_manifest_is_pinned() -> None:
    folder = EXAMPLES / "manifests"
    names = {p.stem for pattern in ("*.pvp", "*.yaml") for p in folder.glob(pattern)}
    assert names == set(PINNED), os.fspath(EXAMPLES)
