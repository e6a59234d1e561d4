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
    "lab": "2e82cdc1b43bc3c59d5416606a72d15a",
    "n1-pull": "a17d250b14df9cc6ae432271ea887740",
    "n1-push": "b59ea08e3a6ac70f57397f640f9bcac2",
    "n2-mixed": "d1cb055cd99e34599ce47cb68eda26e6",
    "n2-pull": "23eb7f72fc2db137aca52b79a1666148",
    "n2-tiered": "8cfe1dddd8d423be5be6d8ec6b662127",
    "n3-deep": "530eb6da5d92c7395d8509305e3507a2",
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
