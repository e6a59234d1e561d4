"""`pveplan import` on the command line, without a host: the forms of its pairs and flags.

Why: import writes the store, so a pair it cannot read must stop it before anything is
looked at, with exit 1 (never 2, which --detailed-exitcode owns), one message naming the
fault and how to write it, and no traceback. A simulator that never ran here holds no VM:
import says so per pair without starting it. (On the simulator: tests/integration/test_import.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pveplan.cli._import import split_words

from ..cli_runner import run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "site-config"


@pytest.fixture(autouse=True)
def _empty_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PVEPLAN_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("PVEPLAN_SIM_DIR", raising=False)


def run(*words: str) -> tuple[int, str, str]:
    return run_cli(["import", "-M", "n1-push", "-H", "sim", "--site-config", str(EXAMPLES), *words])


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (("edge",), "write each VM to import as NODE=VMID"),
        (("edge=",), "write each VM to import as NODE=VMID"),
        (("edge=web",), "the VMID must be a number from 100 to 999999999"),
        (("edge=42",), "the VMID must be a number from 100 to 999999999"),
        ((), "nothing to import: name each VM as NODE=VMID"),
        (("--vmid-range", "100-199"), "--vmid-range narrows --discover"),
        (("--discover", "--vmid-range", "9-1"), "is not a VMID range"),
    ],
)
def test_bad_forms_exit_1_with_what_to_write(words: tuple[str, ...], expected: str) -> None:
    code, out, err = run(*words)
    assert code == 1, out + err
    assert expected in err and "Traceback" not in err


def test_a_pair_naming_no_node_or_no_vm_is_refused_and_nothing_recorded(tmp_path: Path) -> None:
    code, out, err = run("edge=99001", "nope=99002")
    assert code == 1, out + err
    assert "error: edge=99001: there is no VM 99001 on sim" in err
    assert "error: nope=99002: the manifest has no node 'nope' (its nodes: edge)" in err
    assert "Nothing was imported" in err
    assert not (tmp_path / "store" / "sim").exists(), "the simulator was not started to say so"


def test_discover_on_a_simulator_that_never_ran_finds_nothing_and_changes_nothing(
    tmp_path: Path,
) -> None:
    code, out, err = run("--discover", "--dry-run")
    assert code == 0, out + err
    assert "--discover found none" in out
    assert not (tmp_path / "store").exists(), "a dry run creates no store"


def test_manifest_files_and_pairs_share_the_positional_words() -> None:
    assert split_words(["lab.pvp", "db=120", "x/lab", "web=121", "oops"]) == (
        ["lab.pvp", "x/lab"],
        ["db=120", "web=121", "oops"],
    )
