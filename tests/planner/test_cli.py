"""The `pveplan` command as users run it: exit codes and messages (the seeds' ST-7)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..cli_runner import run_cli

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = ROOT / "examples" / "site-config"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A private copy of the example site config, safe to break."""
    target = tmp_path / "site-config"
    shutil.copytree(EXAMPLES, target)
    return target


def test_valid_manifest_exits_0(site: Path) -> None:
    code, out, err = run_cli(["validate", str(site / "manifests" / "n2-tiered.pvp")])
    assert (code, err) == (0, "")
    assert "valid (manifest 'n2-tiered': 2 nodes, 1 root; site config" in out


def test_by_name_with_host(site: Path) -> None:
    code, out, _ = run_cli(
        ["validate", "-M", "n3-deep", "-H", "root@sim", "--site-config", str(site)]
    )
    assert code == 0
    assert out.startswith(str(site / "manifests" / "n3-deep.pvp")) and "host sim" in out


def test_by_name_prefers_the_dsl_form(site: Path) -> None:
    code, out, _ = run_cli(["validate", "-M", "n1-push", "--site-config", str(site)])
    assert code == 0 and "n1-push.pvp" in out


def test_unknown_manifest_name_suggests(site: Path) -> None:
    code, _, err = run_cli(["validate", "-M", "n2-tierd", "--site-config", str(site)])
    assert code == 1
    assert "error: no manifest named 'n2-tierd'" in err and "did you mean 'n2-tiered'?" in err


def test_schema_error_exits_1_naming_file_line_col(site: Path) -> None:
    path = site / "manifests" / "n1-push.yaml"
    path.write_text(path.read_text().replace("vmid: 99001", "vmid: ninety"))
    code, _, err = run_cli(["validate", str(path)])
    assert code == 1
    assert err.startswith(f"{path}:12:11: error: nodes['edge'].vmid: expected an integer")


def test_unknown_reference_exits_1_naming_it(site: Path) -> None:
    path = site / "manifests" / "n1-push.yaml"
    path.write_text(path.read_text().replace("preset: vm-small", "preset: vm-smal"))
    code, _, err = run_cli(["validate", str(path)])
    assert code == 1
    assert f"{path}:10:13: error: unknown preset 'vm-smal'" in err
    assert (
        "did you mean 'vm-small'? presets that exist: vm-large, vm-medium, vm-small, vm-xlarge, vm-xsmall"
        in err
    )


def test_unknown_host_suggests(site: Path) -> None:
    code, _, err = run_cli(["validate", "-M", "n1-push", "-H", "simm", "--site-config", str(site)])
    assert code == 1 and "unknown host 'simm'" in err and "did you mean 'sim'?" in err


def test_many_files_report_each(site: Path) -> None:
    good = site / "manifests" / "n1-push.pvp"
    bad = site / "manifests" / "broken.yaml"
    bad.write_text("schema_version: 2\nname: broken\nnodes: []\n")
    code, out, err = run_cli(["validate", str(good), str(bad)])
    assert code == 1
    assert "n1-push.pvp: valid" in out
    assert f"{bad}:3:8: error: nodes: needs at least 1 item(s), has 0" in err


def test_json_output(site: Path) -> None:
    path = site / "manifests" / "n1-push.yaml"
    path.write_text(path.read_text().replace("type: vm", "type: vn"))
    code, out, _ = run_cli(["validate", "--json", str(path)])
    result = json.loads(out)
    assert code == 1 and result["valid"] is False
    diag = result["manifests"][0]["diagnostics"][0]
    assert (diag["line"], diag["col"], diag["severity"]) == (8, 11, "error")


def test_missing_site_config_lists_where_it_looked(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    shutil.copy(EXAMPLES / "manifests" / "n1-push.yaml", manifest)
    env = {k: v for k, v in os.environ.items() if k != "HOMESTAK_SITE_CONFIG"}
    env["HOMESTAK_ROOT"] = str(tmp_path)  # not the ~/config of a machine that has one
    code, _, err = _run_subprocess(["validate", str(manifest)], cwd=tmp_path, env=env)
    assert code == 1 and "Traceback" not in err
    assert err.startswith("pveplan: error: no site config found")
    assert "$HOMESTAK_SITE_CONFIG: not set" in err and "--site-config DIR" in err
    code, out, _ = _run_subprocess(
        ["validate", "--no-site-config", str(manifest)], cwd=tmp_path, env=env
    )
    assert code == 0 and "valid" in out


def test_env_var_names_the_site_config(site: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    shutil.copy(EXAMPLES / "manifests" / "n1-push.yaml", manifest)
    code, out, _ = _run_subprocess(
        ["validate", str(manifest)],
        cwd=tmp_path,
        env={**os.environ, "HOMESTAK_SITE_CONFIG": str(site)},
    )
    assert code == 0 and "site config site-config" in out


def test_secrets_never_reach_the_output(site: Path) -> None:
    secret = "example-signing-key-not-secret"
    assert secret in (site / "secrets.yaml").read_text()
    code, out, err = run_cli(["validate", "-M", "lab", "-H", "sim", "--site-config", str(site)])
    assert code == 0 and secret not in out + err


def test_fmt_check_and_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "m.pvp"
    path.write_text('manifest "m" {node "a" {type="vm" image="x"}}\n')
    assert run_cli(["fmt", "--check", str(path)])[0] == 1
    assert path.read_text() == 'manifest "m" {node "a" {type="vm" image="x"}}\n'
    code, _, err = run_cli(["fmt", str(path)])
    assert code == 0 and f"reformatted {path}" in err
    assert (
        path.read_text()
        == 'manifest "m" {\n  node "a" {\n    type = "vm"\n    image = "x"\n  }\n}\n'
    )
    assert run_cli(["fmt", "--check", str(tmp_path)])[0] == 0


def test_fmt_reports_a_syntax_error_and_leaves_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.pvp"
    path.write_text('manifest "m" { a = }\n')
    code, _, err = run_cli(["fmt", str(path)])
    assert code == 1 and err.startswith(f"{path}:1:20: error: unexpected '}}'")
    assert path.read_text() == 'manifest "m" { a = }\n'


def test_fmt_refuses_non_pvp_files(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("a: 1\n")
    code, _, err = run_cli(["fmt", str(path)])
    assert code == 1 and "fmt formats .pvp files only" in err


def _run_subprocess(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "pveplan.cli", *argv],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout, done.stderr


def test_version_and_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pveplan.cli", "--version"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert re.fullmatch(r"pveplan \d+\.\d+\.\d+\n", done.stdout)
    done = subprocess.run(
        [sys.executable, "-m", "pveplan.cli", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert "validate" in done.stdout and "fmt" in done.stdout


def test_usage_error_is_exit_1_not_a_traceback() -> None:
    code, _, err = run_cli(["validate", "--no-such-flag"])
    assert code == 1 and "Traceback" not in err
