"""One simulator and one store for the integration tests, real processes throughout.

The simulator's daemon is a real process (started on demand by the first apply, as for a
user), serving real SSH on loopback; every `pvesh` the driver runs is a real process on
the simulated host. Each test works in its own workspace (its own manifest), so tests
share the daemon without sharing state. At the end, every PVE call the driver made is
checked against PVE's API schema (tests/contract).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pveplan.sim import SimRoot, read_state, stop_daemon

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "site-config"


class Lab:
    """A site config (a copy of the examples) and a store with its simulator."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.site = root / "site-config"
        self.store = root / "store"
        self.sim = SimRoot(self.store / "sim")

    def manifest(self, name: str, text: str) -> str:
        """Write manifests/NAME.pvp; returns NAME for -M."""
        (self.site / "manifests" / f"{name}.pvp").write_text(text)
        return name

    def args(self, *words: str) -> list[str]:
        return [*words, "--site-config", str(self.site)]

    def vms(self, manifest: str | None = None) -> list[dict]:
        """The simulator's VMs (of one manifest, by its tag)."""
        vms = list(read_state(self.sim)["vms"].values())
        if manifest is None:
            return vms
        tag = f"pveplan-{manifest}"
        return [v for v in vms if tag in str(v["config"].get("tags", "")).split(";")]

    def set_sim_config(self, **config: object) -> None:
        from pveplan.sim import read_config, write_config

        write_config(self.sim, {**read_config(self.sim), **config})


@pytest.fixture(scope="session")
def lab_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(EXAMPLES, root / "site-config")
    try:
        yield root
    finally:  # also when the session is interrupted: no daemon outlives the tests
        stop_daemon(SimRoot(root / "store" / "sim"))
    _check_contract(root / "store" / "sim" / "calls.jsonl")


@pytest.fixture
def lab(lab_root: Path, monkeypatch: pytest.MonkeyPatch) -> Lab:
    monkeypatch.setenv("PVEPLAN_STORE", str(lab_root / "store"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(lab_root / "config"))
    monkeypatch.delenv("PVEPLAN_SIM_DIR", raising=False)
    monkeypatch.delenv("HOMESTAK_SITE_CONFIG", raising=False)
    lab = Lab(lab_root)
    if lab.sim.path.exists():
        lab.set_sim_config(faults=[], latency=0.0, agent_delay=0.0)
    return lab


def _check_contract(calls: Path) -> None:
    """Every pvesh/qm/pveum call and every HTTPS API request of the session conforms to the
    PVE 9.1 API schema."""
    from tests.contract.pve_contract import check_call, check_recorded_request

    if not calls.exists():
        return
    problems = []
    for line in calls.read_text().splitlines():
        record = json.loads(line)
        if record["tool"] == "api":
            problems += check_recorded_request(record)
            continue
        argv = [record["tool"], *record["argv"]]
        for problem in check_call(argv):
            problems.append(f"{' '.join(argv)}: {problem}")
    assert not problems, "\n".join(sorted(set(problems))[:20])
