"""discover_site_config: homestak's search order, one rule at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from pveplan.planner import PlanError
from pveplan.planner.siteconfig import discover_site_config
from pveplan.planner.siteconfig._discover import SYSTEM_DIRS


def site(path: Path, *, with_site_yaml: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if with_site_yaml:
        (path / "site.yaml").write_text("defaults: {}\n")
    return path


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """Every candidate place, each holding a site.yaml, and a working directory."""
    places = {
        "flag": site(tmp_path / "flag"),
        "env": site(tmp_path / "env"),
        "enclosing": site(tmp_path / "enclosing"),
        "sibling": site(tmp_path / "work" / "site-config"),
        "system1": site(tmp_path / "usr-local-etc-homestak"),
        "system2": site(tmp_path / "opt-homestak-site-config"),
    }
    (places["enclosing"] / "manifests").mkdir()
    places["cwd"] = tmp_path / "work" / "repo"
    places["cwd"].mkdir(parents=True)
    return places


def find(layout: dict[str, Path], *, flag=None, env=None, manifest=None) -> Path:
    return discover_site_config(
        flag,
        env or {},
        layout["cwd"],
        manifest,
        system_dirs=(layout["system1"], layout["system2"]),
    )


def test_the_system_places_are_homestaks() -> None:
    assert (Path("/usr/local/etc/homestak"), Path("/opt/homestak/site-config")) == SYSTEM_DIRS


def test_flag_wins_over_everything(layout) -> None:
    manifest = str(layout["enclosing"] / "manifests" / "m.yaml")
    env = {"HOMESTAK_SITE_CONFIG": str(layout["env"])}
    assert find(layout, flag=str(layout["flag"]), env=env, manifest=manifest) == layout["flag"]


def test_flag_is_relative_to_cwd(layout) -> None:
    assert find(layout, flag="../site-config") == layout["cwd"] / "../site-config"


def test_flag_may_name_a_directory_without_site_yaml(layout, tmp_path) -> None:
    bare = site(tmp_path / "bare", with_site_yaml=False)
    assert find(layout, flag=str(bare)) == bare


def test_flag_naming_a_missing_directory_is_an_error_naming_it(layout, tmp_path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(PlanError) as info:
        find(layout, flag=str(missing), env={"HOMESTAK_SITE_CONFIG": str(layout["env"])})
    assert str(missing) in info.value.summary
    assert "--site-config" in info.value.summary


def test_env_comes_second(layout) -> None:
    manifest = str(layout["enclosing"] / "manifests" / "m.yaml")
    env = {"HOMESTAK_SITE_CONFIG": str(layout["env"])}
    assert find(layout, env=env, manifest=manifest) == layout["env"]


def test_env_naming_a_missing_directory_is_an_error(layout, tmp_path) -> None:
    with pytest.raises(PlanError) as info:
        find(layout, env={"HOMESTAK_SITE_CONFIG": str(tmp_path / "gone")})
    assert "$HOMESTAK_SITE_CONFIG" in info.value.summary
    assert str(tmp_path / "gone") in info.value.summary


def test_empty_env_is_ignored(layout) -> None:
    assert find(layout, env={"HOMESTAK_SITE_CONFIG": ""}) == layout["sibling"]


def test_the_process_environment_is_never_read(layout, monkeypatch) -> None:
    monkeypatch.setenv("HOMESTAK_SITE_CONFIG", str(layout["env"]))
    assert find(layout, env={}) == layout["sibling"]


def test_the_site_config_enclosing_the_manifest_comes_third(layout) -> None:
    manifest = str(layout["enclosing"] / "manifests" / "m.yaml")
    assert find(layout, manifest=manifest) == layout["enclosing"]


def test_a_relative_manifest_path_is_taken_from_cwd(layout) -> None:
    inner = site(layout["cwd"] / "sc")
    assert find(layout, manifest="sc/manifests/m.pvp") == layout["cwd"] / "sc"
    assert inner.is_dir()


def test_enclosing_directory_without_site_yaml_does_not_count(layout, tmp_path) -> None:
    other = site(tmp_path / "other", with_site_yaml=False)
    assert find(layout, manifest=str(other / "manifests" / "m.yaml")) == layout["sibling"]


def test_a_manifest_outside_manifests_dir_is_not_a_clue(layout) -> None:
    # enclosing/m.yaml: its folder is not called manifests/, so enclosing is not used
    assert find(layout, manifest=str(layout["enclosing"] / "m.yaml")) == layout["sibling"]


def test_sibling_site_config_comes_fourth(layout) -> None:
    assert find(layout) == layout["sibling"]


def test_sibling_without_site_yaml_is_skipped(layout) -> None:
    (layout["sibling"] / "site.yaml").unlink()
    assert find(layout) == layout["system1"]


def test_system_places_in_order(layout) -> None:
    (layout["sibling"] / "site.yaml").unlink()
    (layout["system1"] / "site.yaml").unlink()
    assert find(layout) == layout["system2"]


def test_nothing_found_lists_every_place_looked(layout) -> None:
    for name in ("sibling", "system1", "system2"):
        (layout[name] / "site.yaml").unlink()
    (layout["enclosing"] / "site.yaml").unlink()
    manifest = str(layout["enclosing"] / "manifests" / "m.yaml")
    with pytest.raises(PlanError) as info:
        find(layout, manifest=manifest)
    detail = info.value.detail
    assert info.value.summary == "no site config found"
    for name in ("enclosing", "sibling", "system1", "system2"):
        assert str(layout[name]) in detail
    assert "--site-config" in detail
    assert "$HOMESTAK_SITE_CONFIG" in detail
    assert "no site.yaml" in detail


def test_missing_places_are_described_as_missing(tmp_path) -> None:
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    with pytest.raises(PlanError) as info:
        discover_site_config(None, {}, cwd, system_dirs=(tmp_path / "x",))
    assert f"{tmp_path / 'a' / 'site-config'} (../site-config): does not exist" in info.value.detail


# ---- $HOMESTAK_ROOT/config: where iac-driver looks --------------------------------------


def test_homestak_root_config_is_found(layout, tmp_path) -> None:
    root = tmp_path / "homestak"
    config = site(root / "config")
    assert find(layout, env={"HOMESTAK_ROOT": str(root)}) == config


def test_homestak_root_comes_after_the_manifests_own_and_before_the_sibling(
    layout, tmp_path
) -> None:
    root = tmp_path / "homestak"
    site(root / "config")
    manifest = str(layout["enclosing"] / "manifests" / "m.yaml")
    env = {"HOMESTAK_ROOT": str(root)}
    assert find(layout, env=env, manifest=manifest) == layout["enclosing"]
    both = {**env, "HOMESTAK_SITE_CONFIG": str(layout["env"])}
    assert find(layout, env=both) == layout["env"]


def test_homestak_root_unset_means_home_as_in_iac_driver(layout, tmp_path) -> None:
    home = tmp_path / "home" / "homestak"
    config = site(home / "config")
    assert find(layout, env={"HOME": str(home)}) == config
    # a set HOMESTAK_ROOT replaces $HOME, it is not tried in addition
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert (
        find(layout, env={"HOME": str(home), "HOMESTAK_ROOT": str(elsewhere)})
        == (layout["sibling"])
    )


def test_homestak_root_config_without_site_yaml_is_skipped_and_listed(layout, tmp_path) -> None:
    root = tmp_path / "homestak"
    site(root / "config", with_site_yaml=False)
    assert find(layout, env={"HOMESTAK_ROOT": str(root)}) == layout["sibling"]
    for name in ("sibling", "system1", "system2"):
        (layout[name] / "site.yaml").unlink()
    with pytest.raises(PlanError) as info:
        find(layout, env={"HOMESTAK_ROOT": str(root)})
    assert f"{root / 'config'} ($HOMESTAK_ROOT/config): no site.yaml" in info.value.detail


def test_validate_finds_the_site_config_under_homestak_root(tmp_path, monkeypatch) -> None:
    """The command reads $HOMESTAK_ROOT (a row of cli/_environment.py) and `-M NAME` then
    names a manifest of $HOMESTAK_ROOT/config, as `./run.sh ... -M NAME` does."""
    import shutil

    from ...cli_runner import run_cli

    examples = Path(__file__).resolve().parents[3] / "examples" / "site-config"
    root = tmp_path / "homestak"
    shutil.copytree(examples, root / "config")
    monkeypatch.delenv("HOMESTAK_SITE_CONFIG", raising=False)
    monkeypatch.setenv("HOMESTAK_ROOT", str(root))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, out, err = run_cli(["validate", "-M", "n1-push"], cwd=elsewhere)
    assert code == 0, err
    assert "valid" in out
