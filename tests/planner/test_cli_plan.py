"""`pveplan plan|show|graph` and homestak's `--dry-run` verbs, as users run them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ..cli_runner import run_cli

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples" / "site-config"
SECRET_VALUES = (
    "QUITE-DISTINCTIVE-SIGNING-KEY-7f3a",
    # a real public key (validate parses it), made distinctive by its comment
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDcmez/cnDm5ld9CW9F7xIEF0HFEleNHU5r/x9tOBmvy "
    "DISTINCTIVEKEYMATERIAL91-alice@x",
)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "site-config"
    shutil.copytree(EXAMPLES, target)
    (target / "secrets.yaml").write_text(
        "ssh_keys:\n"
        f'  alice: "{SECRET_VALUES[1]}"\n'
        "api_tokens: {}\n"
        'passwords: {vm_root: ""}\n'
        f'auth: {{signing_key: "{SECRET_VALUES[0]}"}}\n'
    )
    monkeypatch.setenv("PVEPLAN_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("HOMESTAK_SITE_CONFIG", raising=False)
    return target


def plan_args(site: Path, name: str = "lab") -> list[str]:
    return ["-M", name, "-H", "sim", "--site-config", str(site)]


def test_no_secret_value_reaches_any_output(site: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "lab.json"
    outputs = []
    for argv in (
        ["plan", *plan_args(site), "-o", str(out_file)],
        ["plan", *plan_args(site), "--json"],
        ["show", str(out_file)],
        ["show", "--json", str(out_file)],
        ["show", "--format", "markdown", str(out_file)],
        ["plan", *plan_args(site), "--format", "markdown"],
        ["graph", "--plan", str(out_file)],
        ["create", *plan_args(site), "--dry-run"],
        ["test", *plan_args(site), "--dry-run", "--json-output"],
        ["validate", *plan_args(site)],
    ):
        code, out, err = run_cli(argv)
        assert code == 0, (argv, err)
        outputs.append(out + err)
    outputs.append(out_file.read_text())
    for text in outputs:
        for secret in SECRET_VALUES:
            assert secret not in text
            assert secret.split()[-2 if " " in secret else 0][:20] not in text
    assert "ssh_keys.alice" in outputs[-1]  # referenced by name, with a keyed digest


def test_plan_prints_the_diff_and_summary(site: Path) -> None:
    code, out, _ = run_cli(["plan", *plan_args(site, "n1-push")])
    assert code == 0
    assert "+ node.edge.create  pve.vm.create" in out
    assert "+ storage.local.content  pve.storage.content" in out
    assert out.rstrip().endswith("Plan: 7 to add, 0 to change, 0 to replace, 0 to destroy.")


def test_detailed_exitcode(site: Path) -> None:
    assert run_cli(["plan", *plan_args(site, "n1-push"), "--detailed-exitcode"])[0] == 2


def test_check_passes_then_fails_when_the_manifest_moves(site: Path, tmp_path: Path) -> None:
    saved = tmp_path / "n1.json"
    assert run_cli(["plan", *plan_args(site, "n1-push"), "-o", str(saved)])[0] == 0
    code, out, _ = run_cli(["plan", *plan_args(site, "n1-push"), "--check", str(saved)])
    assert code == 0 and "up to date" in out
    manifest = site / "manifests" / "n1-push.pvp"
    manifest.write_text(manifest.read_text().replace("vmid = 99001", "vmid = 99002"))
    code, out, err = run_cli(["plan", *plan_args(site, "n1-push"), "--check", str(saved)])
    assert code == 1
    assert f"error: {saved} is stale" in err
    removed = [line for line in out.splitlines() if line.startswith("-") and '"vmid"' in line]
    added = [line for line in out.splitlines() if line.startswith("+") and '"vmid"' in line]
    assert [line.split(":")[1].strip() for line in removed + added] == ["99001", "99002"]


def test_reformatting_the_manifest_keeps_check_passing(site: Path, tmp_path: Path) -> None:
    saved = tmp_path / "n1.json"
    assert run_cli(["plan", *plan_args(site, "n1-push"), "-o", str(saved)])[0] == 0
    manifest = site / "manifests" / "n1-push.pvp"
    manifest.write_text("# a new comment\n\n\n" + manifest.read_text().replace("  ", "    "))
    assert run_cli(["plan", *plan_args(site, "n1-push"), "--check", str(saved)])[0] == 0


def test_a_damaged_plan_file_is_refused(site: Path, tmp_path: Path) -> None:
    saved = tmp_path / "n1.json"
    run_cli(["plan", *plan_args(site, "n1-push"), "-o", str(saved)])
    saved.write_text(saved.read_text().replace('"cores": 2', '"cores": 3', 1))
    code, _, err = run_cli(["show", str(saved)])
    assert code == 1 and "plan file does not match its hashes" in err


def test_not_a_plan_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    code, _, err = run_cli(["show", str(bad)])
    assert code == 1 and err.startswith(f"{bad}:1:1: error: not a pveplan plan file")


def test_show_json_lists_every_step_with_its_path(site: Path, tmp_path: Path) -> None:
    saved = tmp_path / "n3.json"
    run_cli(["plan", *plan_args(site, "n3-deep"), "-o", str(saved)])
    code, out, _ = run_cli(["show", "--json", str(saved)])
    data = json.loads(out)
    assert code == 0 and data["format"] == "pveplan-show/1"
    paths = {tuple(s["path"]) for s in data["steps"]}
    assert paths == {
        (),
        ("node.root-pve.delegate",),
        ("node.root-pve.delegate", "node.leaf-pve.delegate"),
    }


def test_graph_has_subplan_clusters(site: Path) -> None:
    code, out, _ = run_cli(["graph", *plan_args(site, "n3-deep")])
    assert code == 0 and out.startswith('digraph "n3-deep" {')
    assert 'subgraph "cluster_node.root-pve.delegate/"' in out
    assert 'subgraph "cluster_node.root-pve.delegate/node.leaf-pve.delegate/"' in out


def test_plan_needs_a_host(site: Path) -> None:
    code, _, err = run_cli(["plan", "-M", "n1-push", "--site-config", str(site)])
    assert code == 1 and "a plan needs a target host" in err


def test_homestak_verbs(site: Path) -> None:
    code, out, _ = run_cli(["create", *plan_args(site, "n2-tiered"), "--dry-run"])
    assert code == 0 and out.startswith("create --dry-run: n2-tiered on sim")
    code, out, _ = run_cli(["destroy", *plan_args(site, "n2-tiered"), "--dry-run", "--json-output"])
    report = json.loads(out)
    assert code == 0 and report["verb"] == "destroy" and report["dry_run"] is True


def test_manifest_json(site: Path) -> None:
    manifest = {
        "schema_version": 2,
        "name": "inline",
        "nodes": [{"name": "edge", "type": "vm", "preset": "vm-small", "image": "debian-12"}],
    }
    code, out, err = run_cli(
        [
            "create",
            "-H",
            "sim",
            "--site-config",
            str(site),
            "--manifest-json",
            json.dumps(manifest),
            "--dry-run",
        ]
    )
    assert code == 0, err
    assert "+ node.edge.create" in out


def test_colour_only_when_asked_or_on_a_terminal(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run_cli(["--color", "always", "plan", *plan_args(site, "n1-push")])
    assert code == 0 and "\x1b[" in out
    code, out, _ = run_cli(["plan", *plan_args(site, "n1-push")])  # not a terminal
    assert code == 0 and "\x1b[" not in out
    monkeypatch.setenv("NO_COLOR", "1")
    code, out, _ = run_cli(["plan", *plan_args(site, "n1-push")])
    assert "\x1b[" not in out


def test_unwritable_plan_file_is_a_clear_error(site: Path, tmp_path: Path) -> None:
    code, _, err = run_cli(
        ["plan", *plan_args(site, "n1-push"), "-o", str(tmp_path / "missing" / "x.json")]
    )
    assert code == 1 and "Traceback" not in err
    assert "error: cannot write the plan file" in err and "No such file or directory" in err
