"""`pveplan store verify|gc` and plan diffs against what the store records as applied."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pveplan.planner._planfile import read_plan_file
from pveplan.store import open_store

from ..cli_runner import run_cli

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples" / "site-config"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    site = tmp_path / "site-config"
    shutil.copytree(EXAMPLES, site)
    store = tmp_path / "store"
    monkeypatch.setenv("PVEPLAN_STORE", str(store))
    monkeypatch.delenv("HOMESTAK_SITE_CONFIG", raising=False)
    return site, store


def record_applied(store_dir: Path, plan_path: Path) -> None:
    """What `apply` will record (issue 4): the plan object and the workspace's applied steps."""
    plan_file = read_plan_file(plan_path)
    import msgspec

    with open_store(store_dir) as store:
        obj = store.put_object(msgspec.json.encode(plan_file.plan, order="sorted"))
        store.put_plan(plan_file.hash, obj, plan_file.header.workspace)
        store.set_applied(
            plan_file.header.workspace,
            plan_file.hash,
            {s.address: s.hash for _, s in plan_file.plan.walk()},
        )


def test_plan_diffs_against_the_applied_plan(env: tuple[Path, Path], tmp_path: Path) -> None:
    site, store = env
    args = ["-M", "n2-tiered", "-H", "sim", "--site-config", str(site)]
    saved = tmp_path / "n2.json"
    assert run_cli(["plan", *args, "-o", str(saved)])[0] == 0
    record_applied(store, saved)
    code, out, _ = run_cli(["plan", *args, "--detailed-exitcode"])
    assert code == 0 and out.rstrip().endswith("No changes.")
    manifest = site / "manifests" / "n2-tiered.pvp"
    manifest.write_text(manifest.read_text().replace("disk = 64", "disk = 80"))
    code, out, _ = run_cli(["plan", *args, "--detailed-exitcode", "-o", str(tmp_path / "n2b.json")])
    assert code == 2
    assert "~ node.root-pve.create" in out and "disk: 64 -> 80" in out
    assert (
        read_plan_file(tmp_path / "n2b.json").header.planned_against == read_plan_file(saved).hash
    )


def test_store_verify_reports_a_flipped_byte(env: tuple[Path, Path], tmp_path: Path) -> None:
    site, store = env
    saved = tmp_path / "n1.json"
    run_cli(["plan", "-M", "n1-push", "-H", "sim", "--site-config", str(site), "-o", str(saved)])
    record_applied(store, saved)
    code, out, _ = run_cli(["store", "verify"])
    assert code == 0 and "0 damaged" in out
    blob = next(p for p in (store / "objects").rglob("*") if p.is_file())
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    code, out, err = run_cli(["store", "verify"])
    assert code == 1 and blob.name in err and "1 damaged" in out
    code, _, err = run_cli(["plan", "-M", "n1-push", "-H", "sim", "--site-config", str(site)])
    assert code == 1 and "Traceback" not in err and blob.name in err


def test_store_gc_and_empty_store(env: tuple[Path, Path]) -> None:
    code, out, _ = run_cli(["store", "verify"])
    assert code == 0 and "no store at" in out


def test_destroy_plan_reverses_what_was_applied(env: tuple[Path, Path], tmp_path: Path) -> None:
    site, store = env
    args = ["-M", "n3-deep", "-H", "sim", "--site-config", str(site)]
    code, out, _ = run_cli(["plan", *args, "--destroy"])
    assert code == 0 and out.rstrip().endswith("No changes.")
    saved = tmp_path / "n3.json"
    run_cli(["plan", *args, "-o", str(saved)])
    record_applied(store, saved)
    destroy_file = tmp_path / "n3-destroy.json"
    code, out, _ = run_cli(["plan", *args, "--destroy", "-o", str(destroy_file)])
    assert code == 0 and "- node.root-pve.create" in out and "Plan: 0 to add" in out
    plan = read_plan_file(destroy_file).plan
    assert plan.action == "destroy"
    assert [s.address for s in plan.steps] == [
        "node.root-pve.destroy_subtree",
        "node.root-pve.destroy",
    ]
    inner = plan.subplans["node.root-pve.destroy_subtree"]
    assert [s.address for s in inner.steps] == [
        "node.leaf-pve.destroy_subtree",
        "node.leaf-pve.destroy",
    ]
    assert [s.address for s in inner.subplans["node.leaf-pve.destroy_subtree"].steps] == [
        "node.edge.destroy"
    ]
    code, out, _ = run_cli(["destroy", *args, "--dry-run"])
    assert code == 0 and "- node.edge.create" in out


def test_reasons_compare_values_as_hashed(env: tuple[Path, Path], tmp_path: Path) -> None:
    """The applied plan is read back from JSON (lists) and the new one is built in memory
    (where tuples may appear): equal data must not be reported as a change."""
    site, store = env
    args = ["-M", "n3-deep", "-H", "sim", "--site-config", str(site)]
    saved = tmp_path / "n3.json"
    run_cli(["plan", *args, "-o", str(saved)])
    record_applied(store, saved)
    manifest = site / "manifests" / "n3-deep.pvp"
    manifest.write_text(
        manifest.read_text().replace("vmid = 99031", "vmid = 99031\n      disk = 12")
    )
    code, out, _ = run_cli(["plan", *args])
    assert code == 0 and "disk: 10 -> 12" in out
    assert "posture_settings" not in out and "packages" not in out
    assert out.rstrip().endswith("Plan: 0 to add, 7 to change, 0 to replace, 0 to destroy.")
