"""Rehearsing a homestak site config: `--simulate` validates and plans a real-host site
config (datastore local-zfs, unpinned built-in images, `ssh_keys: [ssh_keys.ops]`)
unchanged, as `sim:HOST`, and a rehearsal never passes for the real host's plan.

The fixture is tests/fixtures/homestak-rehearsal (see its README). Its apply on the
simulator is tests/integration/test_rehearsal.py (slow tier).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pveplan.planner import read_plan_file

from ..cli_runner import run_cli

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "homestak-rehearsal"
MANIFESTS = ("flat-12", "n3-deep")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "site-config"
    shutil.copytree(FIXTURE, target)
    monkeypatch.setenv("PVEPLAN_STORE", str(tmp_path / "store"))
    for name in ("HOMESTAK_SITE_CONFIG", "PVEPLAN_SIMULATE"):
        monkeypatch.delenv(name, raising=False)
    return target


def args(site: Path, name: str, *more: str) -> list[str]:
    return ["-M", name, "-H", "father", "--site-config", str(site), *more]


@pytest.mark.parametrize("name", MANIFESTS)
def test_validate_a_homestak_site_config_with_simulate(site: Path, name: str) -> None:
    code, out, err = run_cli(["validate", *args(site, name, "--simulate")])
    assert code == 0, err
    assert "valid" in out and "host sim:father" in out
    assert "error" not in err and "is not pinned" in err  # built-in images, unpinned


@pytest.mark.parametrize(("name", "nodes"), [("flat-12", 12), ("n3-deep", 3)])
def test_plan_a_homestak_site_config_with_simulate(
    site: Path, tmp_path: Path, name: str, nodes: int
) -> None:
    out_file = tmp_path / f"{name}.json"
    code, out, err = run_cli(["plan", *args(site, name, "--simulate", "-o", str(out_file))])
    assert code == 0, err
    assert f"pveplan: {name} on sim:father" in out
    assert "Rehearsal (--simulate): father is simulated" in out
    plan_file = read_plan_file(out_file)
    plan = plan_file.plan
    assert plan_file.header.workspace == f"{name}@sim:father"
    assert plan.host == "sim:father" and all(s.host == "sim:father" for s in plan.steps)
    creates = [s for _, s in plan.walk() if s.kind == "pve.vm.create"]
    assert len(creates) == nodes
    images = [s for _, s in plan.walk() if s.kind == "pve.image.ensure"]
    top = [s for s in plan.steps if s.kind == "pve.image.ensure"]
    assert images and all(s.args["storage"] == "local" for s in top)  # files live on `local`
    top_creates = [s for s in plan.steps if s.kind == "pve.vm.create"]
    assert top_creates and all(s.args["storage"] == "local-zfs" for s in top_creates)  # disks
    # `ssh_keys: [ssh_keys.ops]` in the base spec: its config step uses exactly that key
    configs = [s for _, s in plan.walk() if s.kind == "config.push" and "edge" in s.address]
    configs = configs or [s for _, s in plan.walk() if s.kind == "config.push"]
    assert any([u.name for u in s.secrets] == ["ssh_keys.ops"] for s in configs)


def test_a_rehearsal_shares_no_top_level_step_with_the_real_plan(
    site: Path, tmp_path: Path
) -> None:
    """Store results are keyed by step hash: a rehearsal's can never be taken as done on
    the real host, because the host is in every step's hash."""
    rehearsal, real = tmp_path / "sim.json", tmp_path / "real.json"
    assert run_cli(["plan", *args(site, "flat-12", "--simulate", "-o", str(rehearsal))])[0] == 0
    assert run_cli(["plan", *args(site, "flat-12", "-o", str(real))])[0] == 0
    a, b = read_plan_file(rehearsal), read_plan_file(real)
    assert b.header.workspace == "flat-12@father" and b.plan.host == "father"
    assert a.hash != b.hash
    assert not {s.hash for s in a.plan.steps} & {s.hash for s in b.plan.steps}


def test_a_rehearsal_plan_file_is_refused_without_simulate(site: Path, tmp_path: Path) -> None:
    path = tmp_path / "n3.json"
    assert run_cli(["plan", *args(site, "n3-deep", "--simulate", "-o", str(path))])[0] == 0
    code, out, err = run_cli(["apply", str(path), "--site-config", str(site), "-y"])
    assert code == 1
    assert f"plan file {path} is a rehearsal: it was planned with --simulate for father" in err
    assert "so it never runs on father itself" in err and "apply it with --simulate" in err
    code, out, err = run_cli(["plan", "--check", str(path), "--site-config", str(site)])
    assert code == 0 and "up to date" in out, err  # re-planned as the rehearsal it is


def test_a_real_plan_file_is_refused_with_simulate(site: Path, tmp_path: Path) -> None:
    path = tmp_path / "n3.json"
    assert run_cli(["plan", *args(site, "n3-deep", "-o", str(path))])[0] == 0
    code, _out, err = run_cli(["apply", str(path), "--simulate", "--site-config", str(site), "-y"])
    assert code == 1
    assert "is for the real host father, and --simulate only runs rehearsals" in err


def test_the_rehearsal_name_cannot_be_typed_as_a_host(site: Path) -> None:
    code, _out, err = run_cli(
        ["plan", "-M", "n3-deep", "-H", "sim:father", "--site-config", str(site)]
    )
    assert code == 1
    assert "names starting with 'sim:' are rehearsals" in err
    assert "run with --simulate -H father" in err


def test_pveplan_simulate_in_the_environment(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PVEPLAN_SIMULATE", "1")
    code, out, err = run_cli(["plan", *args(site, "flat-12")])
    assert code == 0 and "flat-12 on sim:father" in out, err
    monkeypatch.setenv("PVEPLAN_SIMULATE", "0")
    code, out, err = run_cli(["plan", *args(site, "flat-12")])
    assert code == 0 and "flat-12 on father " in out, err


def test_a_node_file_that_says_sim_keeps_its_name(site: Path, tmp_path: Path) -> None:
    """`sim: true` is simulated anyway: --simulate changes nothing, not even the name."""
    node = site / "nodes" / "father.yaml"
    node.write_text(node.read_text() + "sim: true\n")
    plain, simulated = tmp_path / "a.json", tmp_path / "b.json"
    assert run_cli(["plan", *args(site, "n3-deep", "-o", str(plain))])[0] == 0
    assert run_cli(["plan", *args(site, "n3-deep", "--simulate", "-o", str(simulated))])[0] == 0
    assert plain.read_bytes() == simulated.read_bytes()
    assert read_plan_file(plain).header.workspace == "n3-deep@father"


def test_the_homestak_verbs_take_simulate(site: Path) -> None:
    code, out, err = run_cli(["create", *args(site, "flat-12", "--simulate", "--dry-run")])
    assert code == 0, err
    assert "create --dry-run: flat-12 on sim:father" in out and "Rehearsal" in out


def test_markdown_parts_of_a_rehearsal_have_no_colon_in_their_names(
    site: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "comments"
    more = ("--simulate", "--format", "markdown", "--parts-dir", str(folder))
    code, _out, err = run_cli(["plan", *args(site, "n3-deep", *more)])
    assert code == 0, err
    assert [p.name for p in folder.iterdir()] == ["n3-deep-sim-father-part-01.md"]
