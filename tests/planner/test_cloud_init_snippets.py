"""cloud-init snippets of the site config (`user_data`, `vendor_data`): the plan holds
their keyed digests and never their text, a changed snippet is an in-place update of the
VMs that use it, the settings' snippet is every VM's default, and `validate` refuses a
missing, clashing or misplaced one at the line naming it (without quoting the snippet)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pveplan.dsl import load_manifest
from pveplan.planner import PlanError
from pveplan.planner._diff import diff_plans
from pveplan.planner._planfile import PlanFile
from pveplan.planner._planning import build_plan_file
from pveplan.planner.siteconfig import load_site_config, resolve_manifest
from pveplan.planner.siteconfig._snippets import merge_user_data

from ..cli_runner import run_cli

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples" / "site-config"
SECRET = "hunter2-do-not-print"
USER = f"#cloud-config\nchpasswd: {{list: 'root:{SECRET}'}}\nruncmd:\n  - [touch, /x]\n"


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    target = tmp_path / "site-config"
    shutil.copytree(EXAMPLES, target)
    (target / "snippets" / "secret-user.yaml").write_text(USER)
    return target


def plan_of(site_dir: Path, text: str, name: str = "ci.yaml") -> PlanFile:
    path = site_dir / "manifests" / name
    path.write_text(text)
    site = load_site_config(site_dir)
    loaded = load_manifest(str(path))
    return build_plan_file(
        loaded, resolve_manifest(loaded, site, "sim"), site, "sim", planned_against=None
    )


MANIFEST = """schema_version: 2
name: ci
settings:
  vendor_data: lab-vendor
nodes:
  - name: web
    type: vm
    image: debian-12
    vmid: 99081
    user_data: secret-user
  - name: plain
    type: vm
    image: debian-12
    vmid: 99082
"""


def _create(plan: PlanFile, node: str):  # type: ignore[no-untyped-def]
    return next(s for s in plan.plan.steps if s.address == f"node.{node}.create")


def test_the_plan_holds_digests_never_the_text(site_dir: Path) -> None:
    plan = plan_of(site_dir, MANIFEST)
    web, plain = _create(plan, "web"), _create(plan, "plain")
    assert web.args["user_data"] == "snippets.secret-user"
    assert web.args["vendor_data"] == plain.args["vendor_data"] == "snippets.lab-vendor"
    assert "user_data" not in plain.args  # the settings name only vendor-data
    assert {s.name for s in web.secrets} >= {"snippets.secret-user", "snippets.lab-vendor"}
    assert all(len(s.digest) == 64 for s in web.secrets)
    from pveplan.planner import encode_plan_file

    assert SECRET.encode() not in encode_plan_file(plan)


def test_a_changed_snippet_updates_its_vms_in_place(site_dir: Path) -> None:
    old = plan_of(site_dir, MANIFEST)
    (site_dir / "snippets" / "secret-user.yaml").write_text(USER.replace("/x", "/y"))
    new = plan_of(site_dir, MANIFEST)
    changes = {c.address: c for c in diff_plans(new.plan, old.plan, new.header.sources)}
    web = changes["node.web.create"]
    assert web.action == "update"
    assert [r.text for r in web.reasons] == ["secret snippets.secret-user changed (sensitive)"]
    assert changes["node.plain.create"].action == "unchanged"


def test_a_node_without_snippets_keeps_its_hash(site_dir: Path) -> None:
    """No snippet named: no new arg or secret, so plans made before snippets hold."""
    without = MANIFEST.replace("settings:\n  vendor_data: lab-vendor\n", "")
    plain = _create(plan_of(site_dir, without), "plain")
    assert "vendor_data" not in plain.args
    assert [s.name for s in plain.secrets] == ["ssh_keys.example"]


def _errors(site_dir: Path, text: str) -> list[str]:
    path = site_dir / "manifests" / "bad.yaml"
    path.write_text(text)
    code, out, err = run_cli(["validate", str(path), "--site-config", str(site_dir)])
    assert code == 1, out + err
    assert SECRET not in out + err
    return [line for line in err.splitlines() if "bad.yaml:" in line]


@pytest.mark.parametrize(
    ("snippet", "summary"),
    [
        (None, "unknown snippet 'nope'"),
        ("#cloud-config\nusers: [alice]\n", "sets users, which pveplan's user-data sets"),
        ("#!/bin/sh\necho " + SECRET + "\n", "does not start with #cloud-config"),
        ("#cloud-config\nruncmd: [a\n" + SECRET, "is not valid YAML"),
    ],
)
def test_a_bad_user_data_snippet_is_refused_at_its_line(
    site_dir: Path, snippet: str | None, summary: str
) -> None:
    if snippet is not None:
        (site_dir / "snippets" / "nope.yaml").write_text(snippet)
    text = MANIFEST.replace("user_data: secret-user", "user_data: nope")
    (line,) = _errors(site_dir, text)
    assert "bad.yaml:10:16:" in line and summary in line, line


def test_a_script_is_fine_as_vendor_data(site_dir: Path) -> None:
    (site_dir / "snippets" / "script.yaml").write_text("#!/bin/sh\necho hi\n")
    plan = plan_of(site_dir, MANIFEST.replace("vendor_data: lab-vendor", "vendor_data: script"))
    assert _create(plan, "plain").args["vendor_data"] == "snippets.script"


@pytest.mark.parametrize(
    ("node", "why"),
    [
        ("  - name: box\n    type: ct\n    template: debian-13-standard\n", "runs no cloud-init"),
        ("  - name: gold\n    type: template\n    image: debian-12\n", "never booted"),
    ],
)
def test_a_container_or_template_refuses_a_snippet(site_dir: Path, node: str, why: str) -> None:
    text = f"schema_version: 2\nname: ci\nnodes:\n{node}    user_data: lab-user\n"
    path = site_dir / "manifests" / "bad.yaml"
    path.write_text(text)
    code, out, err = run_cli(["validate", str(path), "--site-config", str(site_dir)])
    assert code == 1 and "sets user_data" in err and why in err, out + err


def test_a_snippet_may_live_in_secrets_yaml(site_dir: Path) -> None:
    secrets = site_dir / "secrets.yaml"
    secrets.write_text(
        secrets.read_text() + "snippets:\n  inline: |\n    #cloud-config\n    runcmd: [[true]]\n"
    )
    text = MANIFEST.replace("user_data: secret-user", "user_data: inline")
    assert _create(plan_of(site_dir, text), "web").args["user_data"] == "snippets.inline"


def test_merging_adds_the_snippets_lists_after_pveplans() -> None:
    base = {"packages": ["qemu-guest-agent"], "runcmd": [["a"]], "hostname": "web"}
    text = "#cloud-config\npackages: [htop]\nruncmd: [[b]]\nntp: {enabled: true}\n"
    assert merge_user_data(base, text) == {
        "packages": ["qemu-guest-agent", "htop"],
        "runcmd": [["a"], ["b"]],
        "hostname": "web",
        "ntp": {"enabled": True},
    }


def test_both_front_ends_give_the_same_plan(site_dir: Path) -> None:
    yaml_plan = plan_of(site_dir, (EXAMPLES / "manifests" / "cloud-init.yaml").read_text())
    pvp = site_dir / "manifests" / "cloud-init.pvp"
    loaded = load_manifest(str(pvp))
    site = load_site_config(site_dir)
    pvp_plan = build_plan_file(
        loaded, resolve_manifest(loaded, site, "sim"), site, "sim", planned_against=None
    )
    assert yaml_plan.plan.hash == pvp_plan.plan.hash


def test_unknown_snippet_is_a_plan_error(site_dir: Path) -> None:
    with pytest.raises(PlanError, match="unknown snippet 'gone'"):
        plan_of(site_dir, MANIFEST.replace("user_data: secret-user", "user_data: gone"))
