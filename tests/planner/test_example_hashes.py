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
    "clones": "65a1e0db55dd70843191665a6724b152",
    "cloud-init": "fc8a5d1fd6d4f48a84b9e2fdf6b3078e",  # user_data + settings vendor_data
    "devices": "52ecc6ef5c9dfa1349882417342158ba",
    "lab-mix": "717999516a54dc5ba8c2e19dcb19f0e3",  # ct, devices, template+clones on sim2
    "ct-lab": "1fb2a1f87cf17c0d3b05960c6ddc279c",
    "lab": "8868620254a57f2e951c8fafc7110c72",
    "n1-pull": "d3cfc7e35c7cf2a47cbc31947d915340",
    "n1-push": "2e182be71dd1b1a01974558ff7be9654",
    "n2-mixed": "0b4caa3c09ab58ef6fac85646142c24c",
    "n2-pull": "45ddfe1e33cb78439a7116f7682cf338",
    "n2-tiered": "b9b764d832893beb6a174641b413aadc",
    "n3-deep": "fdaf54dd0639e21ae496c62793b02af6",
    "two-hosts": "0ff11ef3af2dd4eace33178af41459df",  # nodes on sim and sim2 (`host:`)
    "workers-20": "873e67b2ebe8dd1481cc904cf8dfbdb2",
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
