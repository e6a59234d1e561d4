"""Using `pveplan` from a shell: usage errors and their exit code, the short flags, and
shell completion (bash run for real; fish and zsh when installed)."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pveplan.cli import _app, main
from pveplan.cli._app import build_parser

from ..cli_runner import run_cli

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = ROOT / "examples" / "site-config"
PVEPLAN = Path(sys.executable).with_name("pveplan")
"""The installed entry point, as users run it (the venv's bin/pveplan)."""


def site_args(manifest: str = "n1-push") -> list[str]:
    return ["-M", manifest, "-H", "sim", "--site-config", str(EXAMPLES)]


# -- usage errors exit 1: 2 is --detailed-exitcode's "there are changes" -------------------


def test_misspelt_flag_exits_1_naming_the_command_help() -> None:
    code, out, err = run_cli(["plan", *site_args(), "--detailed-exitcod"])
    assert code == 1 and out == ""
    assert "pveplan: error: unrecognized arguments: --detailed-exitcod" in err
    assert "did you mean '--detailed-exitcode'?" in err
    assert "run `pveplan plan --help`" in err
    assert err.startswith("usage: pveplan plan")
    assert "Traceback" not in err


def test_unknown_command_exits_1_and_suggests_a_near_one() -> None:
    code, _, err = run_cli(["nosuchcommand"])
    assert code == 1
    assert "invalid choice: 'nosuchcommand'" in err and "run `pveplan --help`" in err
    code, _, err = run_cli(["plam", *site_args()])
    assert code == 1 and "did you mean 'plan'?" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "plan.json", "--format", "yaml"], "invalid choice: 'yaml'"),
        (["sign", "plan.json"], "the following arguments are required: --key"),
        (["store"], "the following arguments are required: ACTION"),
        (["store", "gcc"], "did you mean 'gc'?"),
        (["runs", "show", "one"], "invalid int value: 'one'"),
        (["completion", "tcsh"], "invalid choice: 'tcsh'"),
        (["apply", "--ye"], "unrecognized arguments: --ye"),  # no abbreviations
        (["plan", "--refresh=deep"], "'deep' is not true, false or full"),
        (["status", "--refresh=true"], "invalid choice: 'true'"),  # status always probes
    ],
)
def test_every_kind_of_usage_error_exits_1(argv: list[str], message: str) -> None:
    code, _, err = run_cli(argv)
    assert code == 1 and message in err and "pveplan: error:" in err


def test_help_still_exits_0() -> None:
    for argv in (["--help"], ["plan", "--help"], ["store", "gc", "--help"]):
        code, out, _ = run_cli(argv)
        assert code == 0 and out.startswith("usage: pveplan"), argv


def test_an_argparse_exit_2_that_gets_through_becomes_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """main() maps SystemExit(2) to 1 even from a parser that is not pveplan's own."""

    def plain_parser() -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog="pveplan")
        parser.add_argument("--color", default="auto")
        parser.add_argument("needed")
        return parser

    monkeypatch.setattr(_app, "build_parser", plain_parser)
    assert main([]) == 1
    assert "the following arguments are required: needed" in capsys.readouterr().err


@pytest.mark.skipif(not PVEPLAN.exists(), reason="pveplan is not installed in this interpreter")
def test_the_installed_command_exits_1_on_usage_errors() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("_ARGCOMPLETE")}
    for argv in (["plan", *site_args(), "--detailed-exitcod"], ["nosuchcommand"]):
        done = subprocess.run(
            [str(PVEPLAN), *argv], capture_output=True, text=True, env=env, timeout=60
        )
        assert done.returncode == 1, (argv, done.stderr)
        assert "pveplan: error:" in done.stderr
    done = subprocess.run([str(PVEPLAN), "apply", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--detailed-exitcode" in done.stdout


# -- the flags issue 16 adds ----------------------------------------------------------------


@pytest.mark.parametrize("command", ["apply", "create", "destroy", "test"])
def test_y_is_yes_wherever_yes_exists(command: str) -> None:
    args = build_parser().parse_args([command, *site_args(), "-y"])
    assert args.yes is True
    assert build_parser().parse_args([command, *site_args()]).yes is False


@pytest.mark.parametrize("command", ["plan", "apply", "destroy"])
def test_verbose_exists_on_plan_apply_destroy(command: str) -> None:
    assert build_parser().parse_args([command, *site_args(), "-v"]).verbose is True
    assert build_parser().parse_args([command, *site_args(), "--verbose"]).verbose is True


def test_apply_takes_detailed_exitcode_and_documents_its_codes() -> None:
    assert (
        build_parser().parse_args(["apply", *site_args(), "--detailed-exitcode"]).detailed_exitcode
    )
    code, out, _ = run_cli(["apply", "--help"])
    help_text = " ".join(out.split())
    assert code == 0
    assert (
        "exit 0 when nothing had to change, 2 when changes were applied successfully, 1 on error"
        in help_text
    )


# -- shell completion ---------------------------------------------------------------------


def completion_script(shell: str, tmp_path: Path) -> Path:
    code, out, err = run_cli(["completion", shell])
    assert code == 0, err
    path = tmp_path / f"pveplan.{shell}"
    path.write_text(out)
    return path


def shell_env() -> dict[str, str]:
    """The test's environment with the venv's bin first (where `pveplan` is), and none of
    argcomplete's protocol variables (the script sets those itself)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("_ARGCOMPLETE", "COMP_"))}
    env["PATH"] = f"{PVEPLAN.parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("HOMESTAK_SITE_CONFIG", None)
    return env


def bash_complete(script: Path, line: str, cwd: Path) -> list[str]:
    """What TAB offers after `line` in a real bash that sourced `script`."""
    program = r"""
source "$1"
fn=$(complete -p pveplan | sed -E 's/.*-F ([^ ]+).*/\1/')
COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}; COMP_TYPE=9
read -ra COMP_WORDS <<< "$COMP_LINE"
[[ "$COMP_LINE" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
"$fn" pveplan "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program, "bash", str(script), line],
        capture_output=True,
        text=True,
        env=shell_env(),
        cwd=cwd,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [word.strip() for word in done.stdout.splitlines() if word.strip()]


@pytest.mark.skipif(not PVEPLAN.exists(), reason="pveplan is not installed in this interpreter")
@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_completion_completes_commands_flags_and_manifest_names(tmp_path: Path) -> None:
    script = completion_script("bash", tmp_path)
    assert bash_complete(script, "pveplan ap", tmp_path) == ["apply"]
    assert bash_complete(script, "pveplan plan --detailed-", tmp_path) == ["--detailed-exitcode"]
    names = bash_complete(script, f"pveplan apply --site-config {EXAMPLES} -M n2", tmp_path)
    assert names == ["n2-mixed", "n2-pull", "n2-tiered"]
    hosts = bash_complete(script, f"pveplan plan --site-config {EXAMPLES} -H ", tmp_path)
    assert hosts == ["sim", "sim2"]  # nodes/sim.yaml, nodes/sim2.yaml


def test_fish_and_zsh_scripts_are_generated(tmp_path: Path) -> None:
    for shell in ("fish", "zsh"):
        text = completion_script(shell, tmp_path).read_text()
        assert text.strip() and "pveplan" in text, shell
    assert "complete --command pveplan" in (tmp_path / "pveplan.fish").read_text()
    assert "compdef" in (tmp_path / "pveplan.zsh").read_text()


@pytest.mark.skipif(not PVEPLAN.exists(), reason="pveplan is not installed in this interpreter")
@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completes_apply(tmp_path: Path) -> None:
    script = completion_script("fish", tmp_path)
    done = subprocess.run(
        ["fish", "--no-config", "-c", f"source {script}; complete -C 'pveplan ap'"],
        capture_output=True,
        text=True,
        env=shell_env(),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [line.split("\t")[0] for line in done.stdout.splitlines()] == ["apply"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_registers_the_completion(tmp_path: Path) -> None:
    script = completion_script("zsh", tmp_path)
    program = (
        f"autoload -U compinit && compinit -u -D && source {script} && print -r -- $_comps[pveplan]"
    )
    done = subprocess.run(
        ["zsh", "-f", "-c", program], capture_output=True, text=True, env=shell_env(), timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("_python_argcomplete")


def test_version_does_not_import_the_completion_library() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pveplan.cli", "--version"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=shell_env(),
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.startswith("pveplan ")
    imported = re.findall(r"\|\s+(\S+)\s*$", done.stderr, flags=re.MULTILINE)
    assert "pveplan.cli" in imported  # the import log is there to look at
    assert not [name for name in imported if name.split(".")[0] == "argcomplete"]
