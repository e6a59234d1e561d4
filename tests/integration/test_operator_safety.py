"""An operator's safety rails, end to end against the simulator (issue 16).

Consent (no terminal and no --yes refuses, also after something was applied: nothing
is destroyed), exit codes that scripts can trust (`--detailed-exitcode`: 0 no changes,
2 changes, 1 errors, usage errors included), and a reviewed plan file applied from the
repository root without naming its site config again.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.cli_runner import run_cli

from .conftest import EXAMPLES, Lab
from .test_apply import specless

PVEPLAN = Path(sys.executable).with_name("pveplan")


def _pveplan(lab: Lab, *words: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed entry point with stdin from /dev/null (CI, cron, a pipe)."""
    return subprocess.run(
        [str(PVEPLAN), *words],
        cwd=cwd or lab.root,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_consent_and_detailed_exit_codes(lab: Lab) -> None:
    name = lab.manifest("consent", specless("consent", 2, 93400))
    site = ["-M", name, "-H", "sim", "--site-config", str(lab.site)]

    refused = _pveplan(lab, "apply", *site)
    assert refused.returncode == 1 and "--yes" in refused.stderr, refused.stderr
    assert lab.vms(name) == []

    applied = _pveplan(lab, "apply", *site, "-y", "--detailed-exitcode")
    assert applied.returncode == 2, applied.stdout + applied.stderr
    assert len(lab.vms(name)) == 2

    again = _pveplan(lab, "apply", *site, "-y", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    plan = _pveplan(lab, "plan", *site, "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr

    misspelt = _pveplan(lab, "plan", *site, "--detailed-exitcod")
    assert misspelt.returncode == 1, misspelt.stderr

    # Removing a node from the manifest would destroy it: without consent, nothing goes.
    lab.manifest(name, specless("consent", 1, 93400))
    changed = _pveplan(lab, "plan", *site, "--detailed-exitcode")
    assert changed.returncode == 2
    for verb in ("apply", "destroy", "create"):
        refused = _pveplan(lab, verb, *site)
        assert refused.returncode == 1, (verb, refused.stdout, refused.stderr)
        assert "Traceback" not in refused.stderr
        assert len(lab.vms(name)) == 2, verb

    done = _pveplan(lab, "destroy", *site, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert lab.vms(name) == []


def test_a_signed_plan_applies_from_the_repository_root_without_site_config(
    lab: Lab, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo / "site-config")
    (repo / "plans").mkdir()
    (repo / "site-config" / "manifests" / "rooted.pvp").write_text(specless("rooted", 1, 93450))
    code, _, err = run_cli(["keygen", str(tmp_path / "k")])
    assert code == 0, err
    made = _pveplan(
        lab,
        "plan",
        "-M",
        "rooted",
        "-H",
        "sim",
        "--site-config",
        "site-config",
        "-o",
        "plans/x.json",
        cwd=repo,
    )
    assert made.returncode == 0, made.stderr
    signed = _pveplan(lab, "sign", "plans/x.json", "--key", str(tmp_path / "k"), cwd=repo)
    assert signed.returncode == 0, signed.stderr

    # From the repository root, with nothing else saying where the site config is.
    applied = _pveplan(
        lab, "apply", "plans/x.json", "--require-signature", str(tmp_path / "k.pub"), cwd=repo
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert [v["name"] for v in lab.vms("rooted")] == ["w-1"]

    # Clean up (destroy names its site config: it has no plan file to read it from).
    destroyed = _pveplan(
        lab,
        "destroy",
        "-M",
        "rooted",
        "-H",
        "sim",
        "--site-config",
        "site-config",
        "-y",
        cwd=repo,
    )
    assert destroyed.returncode == 0, destroyed.stderr
    assert lab.vms("rooted") == []
