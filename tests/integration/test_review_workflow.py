"""The example CI workflow (examples/ci/), run locally step by step, as GitHub would.

The steps' shell scripts are read from the workflow file itself and run with bash in a
real git repository laid out as docs/review-workflow.md says, with pveplan on PATH: the
review job's fmt, validate, plan --check and markdown render, then (after an approver
signs and the branch is merged) the apply job's signed apply against the simulator.
Only the GitHub parts (checkout, setup, install, posting comments) are left out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from ..cli_runner import run_cli
from .conftest import EXAMPLES, Lab

WORKFLOW = EXAMPLES.parent / "ci" / ".github" / "workflows" / "pveplan.yml"
PRE_COMMIT = EXAMPLES.parent / "ci" / ".pre-commit-config.yaml"
REVIEW_STEPS = ("secrets", "fmt", "validate", "check", "render")

MANIFEST = """\
manifest "review-demo" {
  description = "A VM changed through a reviewed pull request"

  node "demo" {
    type = "vm"
    spec = "base"
    preset = "vm-small"
    image = "debian-12"
    vmid = 99471
  }
}
"""


def _steps(job: str) -> dict[str, str]:
    """The `run` scripts of a job's steps, by step id."""
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    return {step["id"]: step["run"] for step in jobs[job]["steps"] if "run" in step}


class Repo:
    """A git repository with the layout the workflow expects, and a runner's temp dir."""

    def __init__(self, root: Path, lab: Lab) -> None:
        self.path = root / "repo"
        self.runner = root / "runner"
        self.runner.mkdir()
        self.lab = lab
        shutil.copytree(EXAMPLES, self.path / "site-config")
        self.secrets = (self.path / "site-config" / "secrets.yaml").read_text()
        (self.path / "site-config" / "secrets.yaml").unlink()  # never committed
        (self.path / ".gitignore").write_text("site-config/secrets.yaml\n")
        (self.path / "plans").mkdir()
        self.git("init", "-q", "-b", "main")
        self.git("commit", "-q", "--allow-empty", "-m", "empty")

    def git(self, *words: str) -> str:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
        }
        return subprocess.run(
            ["git", *words], cwd=self.path, env=env, check=True, capture_output=True, text=True
        ).stdout

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)

    def pveplan(self, *words: str) -> subprocess.CompletedProcess[str]:
        return self.run(" ".join(["pveplan", *words]))

    def run(self, script: str, **env: str) -> subprocess.CompletedProcess[str]:
        """`script` under bash as GitHub runs a step (-e, pipefail), pveplan on PATH."""
        full_env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "RUNNER_TEMP": str(self.runner),
            "SITE_CONFIG": "site-config",
            "NO_COLOR": "1",
            "PVEPLAN_STORE": str(self.lab.store),
            "PVEPLAN_SECRETS_YAML": self.secrets,
            **env,
        }
        full_env.pop("HOMESTAK_SITE_CONFIG", None)
        return subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=self.path,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=300,
        )


def test_the_example_workflow_reviews_then_applies_a_signed_plan(lab: Lab, tmp_path: Path) -> None:
    repo = Repo(tmp_path, lab)
    review, apply_job = _steps("review"), _steps("apply")
    assert set(REVIEW_STEPS) <= review.keys() and {"secrets", "apply"} <= apply_job.keys()
    key = tmp_path / "approver"
    assert run_cli(["keygen", str(key)])[0] == 0
    approvers = Path(f"{key}.pub").read_text()
    plan_file = "plans/review-demo-sim.json"
    secrets = repo.run(review["secrets"])
    assert secrets.returncode == 0, secrets.stderr
    assert (repo.path / "site-config" / "secrets.yaml").stat().st_mode & 0o777 == 0o600

    # main: the manifest and its signed plan, applied by the apply job.
    (repo.path / "site-config" / "manifests" / "review-demo.pvp").write_text(MANIFEST)
    made = repo.pveplan("plan -M review-demo -H sim --site-config site-config -o", plan_file)
    assert made.returncode == 0, made.stderr
    assert repo.pveplan("sign", plan_file, "--key", str(key)).returncode == 0
    repo.commit("review-demo: one VM")
    applied = repo.run(apply_job["apply"], PVEPLAN_APPROVER_KEYS=approvers)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "signed by trusted key" in applied.stderr
    assert [v["config"]["memory"] for v in lab.vms("review-demo")] == ["2048"]

    # A pull request: more memory, re-planned against the committed plan.
    repo.git("checkout", "-q", "-b", "more-memory")
    manifest = repo.path / "site-config" / "manifests" / "review-demo.pvp"
    manifest.write_text(
        MANIFEST.replace("    vmid = 99471\n", "    vmid = 99471\n    memory = 4096\n")
    )
    replanned = repo.pveplan(
        "plan -M review-demo -H sim --site-config site-config",
        f"--against {plan_file} -o {plan_file}",
    )
    assert replanned.returncode == 0, replanned.stderr
    repo.commit("review-demo: 4 GB")

    results = {}
    for step in REVIEW_STEPS:
        results[step] = repo.run(review[step], BASE="main")
        assert results[step].returncode == 0, (step, results[step].stdout, results[step].stderr)
    assert "up to date" in results["check"].stdout
    parts = sorted((repo.runner / "comments").glob("*.md"))
    assert [p.name for p in parts] == ["review-demo-sim-part-01.md"]
    comment = parts[0].read_text()
    assert "**Plan: 0 to add, 5 to change, 0 to replace, 0 to destroy.**" in comment
    assert "~ node.demo.create  pve.vm.create" in comment
    assert "memory: 2048 -> 4096" in comment.replace("→", "->")

    # The apply job refuses the unsigned change (after merge), then applies it once signed.
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--ff-only", "more-memory")
    refused = repo.run(apply_job["apply"], PVEPLAN_APPROVER_KEYS=approvers)
    assert refused.returncode == 1
    assert "is not signed, and a signature is required" in refused.stderr
    assert repo.pveplan("sign", plan_file, "--key", str(key)).returncode == 0
    repo.commit("review-demo: approved")
    applied = repo.run(apply_job["apply"], PVEPLAN_APPROVER_KEYS=approvers)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert [v["config"]["memory"] for v in lab.vms("review-demo")] == ["4096"]

    destroyed = repo.pveplan("destroy -M review-demo -H sim --site-config site-config --yes")
    assert destroyed.returncode == 0, destroyed.stderr
    assert lab.vms("review-demo") == []


def test_the_review_steps_fail_on_a_stale_plan_and_an_unformatted_manifest(
    lab: Lab, tmp_path: Path
) -> None:
    repo = Repo(tmp_path, lab)
    review = _steps("review")
    assert repo.run(review["secrets"]).returncode == 0
    (repo.path / "site-config" / "manifests" / "review-demo.pvp").write_text(MANIFEST)
    plan_file = "plans/review-demo-sim.json"
    assert (
        repo.pveplan(
            "plan -M review-demo -H sim --site-config site-config -o", plan_file
        ).returncode
        == 0
    )
    repo.commit("review-demo")
    manifest = repo.path / "site-config" / "manifests" / "review-demo.pvp"
    manifest.write_text(MANIFEST.replace("vmid = 99471", "vmid   =   99472"))
    fmt = repo.run(review["fmt"])
    assert fmt.returncode == 1 and "would reformat" in fmt.stderr
    check = repo.run(review["check"])
    assert check.returncode == 1
    assert f"{plan_file} is stale" in check.stderr
    assert '+        "vmid": 99472' in check.stdout


def test_the_pre_commit_hooks_are_the_same_pveplan_checks(lab: Lab, tmp_path: Path) -> None:
    """pre-commit itself is not installed here: each hook's entry runs as it would."""
    repo = Repo(tmp_path, lab)
    assert repo.run(_steps("review")["secrets"]).returncode == 0
    hooks = {h["id"]: h for h in yaml.safe_load(PRE_COMMIT.read_text())["repos"][0]["hooks"]}
    assert set(hooks) == {"pveplan-fmt", "pveplan-validate", "pveplan-plan-check"}
    manifest = repo.path / "site-config" / "manifests" / "review-demo.pvp"
    manifest.write_text(MANIFEST)
    assert (
        repo.pveplan(
            "plan -M review-demo -H sim --site-config site-config -o plans/r.json"
        ).returncode
        == 0
    )
    manifest_arg = "site-config/manifests/review-demo.pvp"
    for hook_id, argument in (
        ("pveplan-fmt", manifest_arg),
        ("pveplan-validate", manifest_arg),
        ("pveplan-plan-check", ""),
    ):
        hook = hooks[hook_id]
        entry = hook["entry"]
        if hook.get("pass_filenames", True):
            entry += f" {argument}"
        result = repo.run(entry)
        assert result.returncode == 0, (hook_id, result.stdout, result.stderr)
    manifest.write_text(MANIFEST.replace("vmid = 99471", "vmid = 99473"))
    stale = repo.run(hooks["pveplan-plan-check"]["entry"])
    assert stale.returncode == 1 and "plans/r.json is stale" in stale.stderr
