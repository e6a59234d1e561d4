"""`pveplan scenario` and iac-driver's scenario forms (its tests/test_cli_integration.py
pinned these): `--scenario NAME`, `-S NAME`, `scenario run NAME`, `scenario NAME` and
`--list-scenarios`; renamed names answer "Renamed to: ..." and exit 1, retired ones give
the verb that replaced them and exit 1, removed ones answer as unknown with the list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pveplan.cli._scenario_argv import scenario_argv
from pveplan.cli._scenario_run import parse_remote
from pveplan.planner import PlanError

from ..cli_runner import run_cli

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1XVVH9BDg2+4+2E2ijo0FDjdiSlkfpQ9ZCEZsiZfWx root@m"


@pytest.fixture(autouse=True)
def _config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("PVEPLAN_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("PVEPLAN_SIM_DIR", raising=False)


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["--scenario", "pve-setup", "--remote", "h"], ["scenario", "pve-setup", "--remote", "h"]),
        (["-S", "user-setup", "-H", "pve1"], ["scenario", "user-setup", "-H", "pve1"]),
        (["--scenario=pve-setup"], ["scenario", "pve-setup"]),
        (["scenario", "run", "pve-setup", "-v"], ["scenario", "pve-setup", "-v"]),
        (["scenario", "pve-setup"], ["scenario", "pve-setup"]),
        (["--list-scenarios"], ["scenario", "--list"]),
        (["--color", "never", "--scenario", "x"], ["--color", "never", "scenario", "x"]),
        (["plan", "-M", "n1-push", "-H", "sim"], ["plan", "-M", "n1-push", "-H", "sim"]),
    ],
)
def test_iac_driver_scenario_forms_become_the_scenario_command(
    words: list[str], expected: list[str]
) -> None:
    assert scenario_argv(words) == expected


@pytest.mark.parametrize(
    "argv", [["--list-scenarios"], ["scenario", "--list"], ["scenario"], ["scenario", "run"]]
)
def test_list_scenarios_shows_the_active_ones_with_their_runtimes(argv: list[str]) -> None:
    code, out, err = run_cli(argv)
    assert code == 0, err
    names = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert {"pve-setup", "user-setup", "push-vm-roundtrip", "pull-vm-roundtrip"} <= set(names)
    assert "~3m" in out and "~30s" in out
    # Renamed, retired and removed names are not listed.
    for gone in ("spec-vm-push-roundtrip", "vm-roundtrip", "bootstrap-install", "packer-build"):
        assert gone not in names


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("spec-vm-push-roundtrip", "push-vm-roundtrip"),
        ("spec-vm-pull-roundtrip", "pull-vm-roundtrip"),
    ],
)
@pytest.mark.parametrize("form", [["--scenario"], ["scenario"], ["scenario", "run"], ["-S"]])
def test_a_renamed_scenario_says_its_new_name_and_exits_1(
    old: str, new: str, form: list[str]
) -> None:
    code, out, err = run_cli([*form, old, "-H", "sim"])
    assert code == 1
    assert f"Renamed to: {new}" in out + err and "Traceback" not in err


@pytest.mark.parametrize(
    ("name", "verb"),
    [
        ("vm-roundtrip", "test"),
        ("vm-constructor", "create"),
        ("nested-pve-destructor", "destroy"),
        ("recursive-pve-constructor", "create"),
    ],
)
def test_a_retired_scenario_prints_its_migration_hint_and_exits_1(name: str, verb: str) -> None:
    for form in (["--scenario", name], ["scenario", name], ["scenario", "run", name]):
        code, out, err = run_cli([*form, "--host", "father"])
        assert code == 1, form
        assert "retired" in (out + err).lower() and f"pveplan {verb}" in out + err
    if name.startswith("vm-"):
        assert "-M n1-push" in err
    if name.startswith("nested-pve-"):
        assert "-M n2-tiered" in err


def test_a_removed_scenario_is_unknown_and_lists_the_scenarios() -> None:
    code, _, err = run_cli(["--scenario", "bootstrap-install"])
    assert code == 1
    assert "unknown scenario 'bootstrap-install'" in err
    assert "pve-setup" in err and "docs/homestak-compat.md#scenarios" in err
    code, _, err = run_cli(["scenario", "no-such-thing"])
    assert code == 1 and "unknown scenario" in err and "user-setup" in err


def test_list_phases_names_each_phase_of_pve_setup() -> None:
    code, out, _ = run_cli(["--scenario", "pve-setup", "--list-phases"])
    assert code == 0
    phases = [line.split(":")[0].strip() for line in out.splitlines()[1:]]
    assert phases == [
        "pve_keyring",
        "pve_repo",
        "pve_install",
        "bridge",
        "driver_key",
        "api_token",
        "node_file",
    ]


def test_local_mode_is_refused_with_the_compat_hint() -> None:
    code, _, err = run_cli(["--scenario", "pve-setup", "--local"])
    assert code == 1
    assert "--local is not supported" in err and "#scenarios" in err


def test_an_unpinned_remote_host_is_refused_before_anything_runs(site: Path) -> None:
    code, _, err = run_cli(
        ["--scenario", "pve-setup", "--remote", "192.0.2.7", "--site-config", str(site)]
    )
    assert code == 1
    assert "host key is not pinned" in err and "--ssh-host-key" in err
    assert "Traceback" not in err


def test_a_dry_run_lists_the_phases_as_pending_in_the_json_report(site: Path) -> None:
    code, out, err = run_cli(
        [
            *("--scenario", "pve-setup", "--remote", "192.0.2.7:2222"),
            *("--ssh-host-key", HOST_KEY, "--dry-run", "--json-output"),
            *("--pve-keyring-sha256", "ab" * 32),
            *("--site-config", str(site)),
        ]
    )
    assert code == 0, err
    report = json.loads(out[out.index("{") :])
    assert report["scenario"] == "pve-setup" and report["success"] is True
    assert [p["status"] for p in report["phases"]] == ["pending"] * 7
    assert set(report) == {"scenario", "success", "duration_seconds", "phases", "context", "error"}


def test_user_setup_dry_run_has_the_user_sudo_and_key_phases(site: Path) -> None:
    code, out, err = run_cli(
        [
            *("scenario", "user-setup", "--remote", "192.0.2.7", "--ssh-host-key", HOST_KEY),
            *("--dry-run", "--site-config", str(site)),
        ]
    )
    assert code == 0, err
    assert [w for w in ("user", "sudoers", "user_keys") if f"] {w}" in out] == [
        "user",
        "sudoers",
        "user_keys",
    ]


def test_a_roundtrip_needs_a_pve_host() -> None:
    code, _, err = run_cli(["--scenario", "push-vm-roundtrip"])
    assert code == 1 and "-H HOST" in err


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("192.0.2.7", ("root", "192.0.2.7", None)),
        ("root@192.0.2.7:2222", ("root", "192.0.2.7", 2222)),
        ("pve1.lan", ("root", "pve1.lan", None)),
    ],
)
def test_remote_addresses_parse(text: str, parsed: tuple[str, str, int | None]) -> None:
    assert parse_remote(text) == parsed


@pytest.mark.parametrize("text", ["host:99999", "host:x", "root@"])
def test_bad_remote_addresses_are_refused(text: str) -> None:
    with pytest.raises(PlanError):
        parse_remote(text)


def test_a_non_root_remote_user_is_refused(site: Path) -> None:
    code, _, err = run_cli(
        [
            *("--scenario", "pve-setup", "--remote", "ops@192.0.2.7", "--ssh-host-key"),
            *(HOST_KEY, "--site-config", str(site)),
        ]
    )
    assert code == 1 and "as root" in err


def test_sim_up_refuses_a_bare_machine_name_that_is_no_host_name(tmp_path: Path) -> None:
    code, _, err = run_cli(["sim", "--sim-dir", str(tmp_path / "sim"), "up", "--bare", "no_way"])
    assert code == 1 and "not a valid host name" in err and "Traceback" not in err


def test_a_host_file_without_a_pinned_key_takes_one_from_the_command_line(site: Path) -> None:
    (site / "hosts").mkdir(exist_ok=True)
    (site / "hosts" / "fresh.yaml").write_text('ip: "192.0.2.7"\naccess:\n  ssh_user: root\n')
    base = ["scenario", "pve-setup", "-H", "fresh", "--site-config", str(site), "--dry-run"]
    code, _, err = run_cli(base)
    assert code == 1 and "host key is not pinned" in err
    code, out, err = run_cli([*base, "--ssh-host-key", HOST_KEY])
    assert code == 1 and "keyring is not pinned" in err and "#scenarios" in err
    code, out, err = run_cli([*base, "--ssh-host-key", HOST_KEY, "--pve-keyring-sha256", "a" * 64])
    assert code == 0, err
    assert "pve-setup on fresh" in out


def test_looking_for_a_simulated_machine_makes_no_simulator(site: Path, tmp_path: Path) -> None:
    run_cli(
        [
            *("--scenario", "pve-setup", "--remote", "192.0.2.7", "--ssh-host-key", HOST_KEY),
            *("--dry-run", "--site-config", str(site)),
        ]
    )
    assert not (tmp_path / "store" / "sim").exists()
