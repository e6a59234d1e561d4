"""`apply FILE` refuses a reviewed plan whose inputs moved since it was made.

The manifest (by its canonical value: reformatting is not a move), the site-config files
and the secrets its steps use are compared with what the plan file recorded; each
refusal names what moved and says how to re-plan. The refusals come before any step
runs, so no simulator is needed here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pveplan import dsl
from pveplan.planner._planfile import read_plan_file
from pveplan.planner._provenance import moved_inputs
from pveplan.planner.siteconfig import load_site_config

from ..cli_runner import run_cli
from .test_cli_plan import SECRET_VALUES, plan_args, site  # noqa: F401  (the fixture)

NEW_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM/AQBF+OZm6KHj02E4IhRgaugZ5RBuA5rMnfkeNrC4J NEWKEY-bob@y"
)


@pytest.fixture
def saved(site: Path, tmp_path: Path) -> Path:  # noqa: F811
    path = tmp_path / "n2.json"
    code, _, err = run_cli(["plan", *plan_args(site, "n2-tiered"), "-o", str(path)])
    assert code == 0, err
    return path


def _apply(path: Path, site: Path, *extra: str) -> tuple[int, str]:  # noqa: F811
    code, out, err = run_cli(["apply", str(path), "--site-config", str(site), "--yes", *extra])
    assert "Traceback" not in out + err
    return code, out + err


def _moved(path: Path, site: Path) -> list[str]:  # noqa: F811
    manifest = dsl.load_manifest(str(site / "manifests" / "n2-tiered.pvp"))
    return moved_inputs(read_plan_file(path), manifest, load_site_config(site))


def test_nothing_moved_right_after_planning(saved: Path, site: Path) -> None:  # noqa: F811
    assert _moved(saved, site) == []


def test_an_edited_manifest_is_named_with_how_to_replan(saved: Path, site: Path) -> None:  # noqa: F811
    manifest = site / "manifests" / "n2-tiered.pvp"
    manifest.write_text(manifest.read_text().replace("vmid = 99021", "vmid = 99022"))
    code, out = _apply(saved, site)
    assert code == 1
    assert (
        "no longer matches its inputs: the manifest 'n2-tiered' changed (n2-tiered.pvp edited)"
        in out
    )
    assert f"pveplan plan -M n2-tiered -H sim -o {saved}" in out


def test_reformatting_or_commenting_the_manifest_moves_nothing(saved: Path, site: Path) -> None:  # noqa: F811
    manifest = site / "manifests" / "n2-tiered.pvp"
    manifest.write_text("# reviewed in PR 42\n" + manifest.read_text().replace("  ", "    "))
    assert _moved(saved, site) == []


def test_site_config_edits_additions_and_removals_are_each_named(saved: Path, site: Path) -> None:  # noqa: F811
    with (site / "presets" / "vm-small.yaml").open("a") as out:
        out.write("# resized later\n")
    (site / "specs" / "extra.yaml").write_text("schema_version: 1\n")
    (site / "postures" / "stage.yaml").unlink()
    code, out = _apply(saved, site)
    assert code == 1
    assert (
        "the site config changed (presets/vm-small.yaml edited, specs/extra.yaml added, "
        "postures/stage.yaml removed)" in out
    )


def test_a_changed_secret_is_named_never_shown(saved: Path, site: Path) -> None:  # noqa: F811
    secrets = site / "secrets.yaml"
    secrets.write_text(secrets.read_text().replace(SECRET_VALUES[1], NEW_KEY))
    code, out = _apply(saved, site)
    assert code == 1
    assert "secrets it uses changed: ssh_keys.alice (new value)" in out
    assert NEW_KEY not in out and "NEWKEY" not in out and SECRET_VALUES[1] not in out


def test_a_plan_whose_manifest_cannot_be_found_says_how_to_name_it(
    saved: Path,
    site: Path,  # noqa: F811
) -> None:
    (site / "manifests" / "n2-tiered.pvp").rename(site / "manifests" / "renamed.pvp")
    (site / "manifests" / "n2-tiered.yaml").unlink()
    code, out = _apply(saved, site)
    assert code == 1
    assert "cannot check the plan file against its manifest: no manifest named 'n2-tiered'" in out
    assert "--manifest-file FILE" in out
    # Named explicitly, the check runs (and finds nothing moved: it fails later, on the
    # store's lock or the run, not on the check; here we only look at the check).
    assert _moved_with(saved, site, site / "manifests" / "renamed.pvp") == []


def _moved_with(path: Path, site: Path, manifest: Path) -> list[str]:  # noqa: F811
    return moved_inputs(
        read_plan_file(path), dsl.load_manifest(str(manifest)), load_site_config(site)
    )


def test_plan_check_takes_several_files_and_names_each_stale_one(
    site: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    files = {}
    for name in ("n1-push", "n2-tiered"):
        files[name] = tmp_path / f"{name}.json"
        assert run_cli(["plan", *plan_args(site, name), "-o", str(files[name])])[0] == 0
    check = ["plan", "--check", *map(str, files.values()), "--site-config", str(site)]
    code, out, _ = run_cli(check)
    assert code == 0
    assert out.count("up to date") == 2
    manifest = site / "manifests" / "n1-push.pvp"
    manifest.write_text(manifest.read_text().replace("vmid = 99001", "vmid = 99005"))
    code, out, err = run_cli(check)
    assert code == 1
    assert f"{files['n1-push']} is stale" in err
    assert f"{files['n2-tiered']}: up to date" in out
    assert '-        "vmid": 99001' in out and '+        "vmid": 99005' in out


def test_a_run_applied_while_this_one_waited_is_caught_under_the_lock(
    saved: Path, tmp_path: Path
) -> None:
    """The stale check is made again once the workspace lock is held: between planning
    (or the prompt) and the lock, another run may have applied to the workspace."""
    from pveplan.cli._apply import Prepared, _still_current
    from pveplan.planner._errors import PlanError
    from pveplan.store import open_store

    plan_file = read_plan_file(saved)
    prepared = Prepared(plan_file, None, None)  # type: ignore[arg-type]
    with open_store(tmp_path / "race-store") as store:
        _still_current(store, prepared)  # nothing applied, as when it was planned
        store.set_applied(plan_file.header.workspace, "f" * 32, {})
        with pytest.raises(PlanError, match=f"another run applied {'f' * 32} to n2-tiered@sim"):
            _still_current(store, prepared)
