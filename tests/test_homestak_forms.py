"""A few of iac-driver's command-line behaviours that pveplan keeps and no other test pins
down: rows of docs/homestak-compat.md that say "same" point here.

Ported in intent from iac-driver's `tests/test_cli_integration.py` (top-level usage,
unknown commands) and `manifest_opr/cli.py`'s argument handling (a manifest is required,
an unknown host lists the hosts there are, `-H user@host`). Everything runs in-process
against examples/site-config; nothing starts the simulator.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .cli_runner import run_cli

ROOT = Path(__file__).resolve().parent.parent
SITE = ["--site-config", str(ROOT / "examples" / "site-config")]


@pytest.fixture(autouse=True)
def own_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store of the test's own: a dry run reads the store, and must not read the user's."""
    monkeypatch.setenv("PVEPLAN_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("HOMESTAK_SITE_CONFIG", raising=False)


def test_no_arguments_print_the_commands_and_exit_0() -> None:
    """iac-driver's `./run.sh` alone prints its commands with examples and exits 0."""
    code, out, err = run_cli([])
    assert (code, err) == (0, "")
    assert "create" in out and "destroy" in out and "examples:" in out


@pytest.mark.parametrize("verb", ["create", "destroy", "test"])
def test_a_verb_without_a_manifest_exits_1_saying_how_to_name_one(verb: str) -> None:
    """iac-driver: `Error: specify a manifest with -M, --manifest-file, or --manifest-json`."""
    code, out, err = run_cli([verb, "-H", "sim", *SITE, "--dry-run"])
    assert code == 1 and out == ""
    assert "no manifest given" in err and "-M NAME" in err and "Traceback" not in err


def test_an_unknown_host_exits_1_listing_the_hosts_there_are() -> None:
    """iac-driver: `Error: Unknown host 'x'. Available: ...`, exit 1."""
    code, _, err = run_cli(["create", "-M", "n1-push", "-H", "nosuch", *SITE, "--dry-run"])
    assert code == 1
    assert "unknown host 'nosuch'" in err and "hosts that exist: sim" in err


def test_user_at_host_selects_the_host_by_its_name() -> None:
    """`-H root@sim` is the host `sim` (iac-driver's `_parse_host_arg`)."""
    plain = run_cli(["create", "-M", "n1-push", "-H", "sim", *SITE, "--dry-run"])
    with_user = run_cli(["create", "-M", "n1-push", "-H", "root@sim", *SITE, "--dry-run"])
    assert plain[0] == with_user[0] == 0
    assert plain[1] == with_user[1]


@pytest.mark.parametrize("verb", ["create", "destroy", "test"])
def test_the_verbs_take_verbose_and_yes_short_and_long(verb: str) -> None:
    for flags in (["-v", "-y"], ["--verbose", "--yes"]):
        code, _, err = run_cli([verb, "-M", "n1-push", "-H", "sim", *SITE, "--dry-run", *flags])
        assert code == 0, err


def test_a_verb_without_a_host_exits_1() -> None:
    """iac-driver's `-H` is required (argparse: exit 2); pveplan says so and exits 1."""
    code, _, err = run_cli(["create", "-M", "n1-push", *SITE, "--dry-run"])
    assert code == 1 and "-H HOST" in err and "Traceback" not in err
