"""iac-driver's flags on homestak's verbs, its `manifest ACTION` form, and the readiness
checks that refuse before anything runs (cli/_homestak_flags.py, cli/_compat_argv.py,
cli/_readiness.py).

The intent of iac-driver's tests (tests/test_cli.py, test_cli_integration.py,
test_verb_preflight.py, test_validation.py) in pveplan's terms: bad flag values are usage
errors (exit 1) caught before anything is read or started; `--list-phases` needs no
manifest; `--vm-id NAME=VMID` is checked as iac-driver checks it; the noun form maps to
the verbs; and a site config that is not ready is refused, every problem listed with
what to do. Nothing here reaches a host: every run stops before the simulator would start.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from pveplan.cli import Console
from pveplan.cli._app import build_parser
from pveplan.cli._compat_argv import rewrite
from pveplan.cli._homestak_flags import (
    FlagError,
    adjust_site,
    check_skips,
    context_after,
    parse_vm_ids,
    read_context,
    self_addr,
)
from pveplan.cli._plan import make_plan

from ..cli_runner import run_cli

REHEARSAL = Path(__file__).resolve().parents[1] / "fixtures" / "homestak-rehearsal"


def _site_args(site: Path, *words: str) -> list[str]:
    return [*words, "--site-config", str(site)]


def _console(cwd: Path, env: dict[str, str] | None = None) -> Console:
    import io

    return Console(out=io.StringIO(), err=io.StringIO(), env=env or {}, cwd=cwd)


# ---- parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["create", "destroy", "test"])
def test_every_iac_driver_flag_parses_on_every_verb(verb: str) -> None:
    args = build_parser().parse_args(
        [
            verb,
            "-M",
            "n1-push",
            "-H",
            "sim",
            "--skip-preflight",
            "--preflight",
            "--self-addr",
            "192.0.2.7",
            "--depth",
            "2",
            "--timeout",
            "90",
            "--skip",
            "preflight",
            "--list-phases",
            "--vm-id",
            "edge=99990",
            "--vm-id",
            "other=99991",
            "--context-file",
            "ctx.json",
        ]
    )
    assert args.skip_preflight and args.preflight and args.list_phases
    assert args.self_addr == "192.0.2.7" and args.depth == 2 and args.timeout == 90
    assert args.skip == ["preflight"] and args.vm_id == ["edge=99990", "other=99991"]
    assert args.context_file == "ctx.json"
    short = build_parser().parse_args([verb, "-t", "5", "-s", "preflight", "-C", "c.json"])
    assert (short.timeout, short.skip, short.context_file) == (5, ["preflight"], "c.json")


@pytest.mark.parametrize(
    "words",
    [
        ["--timeout", "0"],
        ["--timeout", "-3"],
        ["--timeout", "soon"],
        ["--depth", "two"],
        ["--vm-id"],
    ],
)
def test_bad_flag_values_are_usage_errors_exit_1(words: list[str], tmp_path: Path) -> None:
    code, _, err = run_cli(["create", "-M", "n1-push", "-H", "sim", *words], cwd=tmp_path)
    assert code == 1
    assert "error:" in err and "Traceback" not in err


def test_an_unknown_command_exits_1() -> None:
    code, _, err = run_cli(["frobnicate"])
    assert code == 1 and "invalid choice" in err


# ---- --vm-id -------------------------------------------------------------------------


def test_vm_ids_parse_as_name_and_integer() -> None:
    assert parse_vm_ids(["test=99990", "inner=99912"]) == {"test": 99990, "inner": 99912}
    assert parse_vm_ids(["a=100", "a=100"]) == {"a": 100}  # the same twice is no conflict


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("badformat", "NAME=VMID"),
        ("=99990", "name is empty"),
        ("test=abc", "integer"),
        ("test=", "integer"),
        ("test=99", "100 to 999999999"),
        ("test=1000000000", "100 to 999999999"),
    ],
)
def test_invalid_vm_ids_are_refused_with_the_reason(value: str, why: str) -> None:
    with pytest.raises(FlagError, match=why):
        parse_vm_ids([value])


def test_one_node_given_two_vm_ids_is_refused() -> None:
    with pytest.raises(FlagError, match="two VM IDs"):
        parse_vm_ids(["a=101", "a=102"])


@pytest.mark.parametrize("value", ["badformat", "=99990", "test=abc"])
def test_an_invalid_vm_id_stops_the_verb_before_anything_runs(
    site: Path, tmp_path: Path, value: str
) -> None:
    code, _, err = run_cli(
        _site_args(site, "create", "-M", "n1-push", "-H", "sim", "-y", "--vm-id", value)
    )
    assert code == 1 and "--vm-id" in err
    assert not (tmp_path / "store").exists()


def test_vm_id_sets_the_nodes_vmid_in_the_plan(site: Path) -> None:
    args = build_parser().parse_args(
        _site_args(site, "create", "-M", "n3-deep", "-H", "sim", "--vm-id", "root-pve=99990")
    )
    plan = make_plan(args, _console(Path.cwd())).plan_file.plan
    assert plan.step("node.root-pve.create").args["vmid"] == 99990


def test_vm_id_naming_no_node_is_an_error(site: Path) -> None:
    code, _, err = run_cli(
        _site_args(
            site, "create", "-M", "n1-push", "-H", "sim", "--dry-run", "--vm-id", "ghost=99990"
        )
    )
    assert code == 1 and "ghost" in err


# ---- --depth -------------------------------------------------------------------------


def test_depth_keeps_the_first_n_nodes_as_iac_driver_does(site: Path) -> None:
    code, out, err = run_cli(
        _site_args(
            site,
            "create",
            "-M",
            "n3-deep",
            "-H",
            "sim",
            "--depth",
            "1",
            "--dry-run",
            "--json-output",
        )
    )
    assert code == 0, err
    assert "note: --depth 1: the first 1 of 3 nodes" in err and "#flags" in err
    nodes = {
        c["address"].split(".")[1]
        for c in json.loads(out)["changes"]
        if c["address"].startswith("node.")
    }
    assert nodes == {"root-pve"}
    code, out, _ = run_cli(
        _site_args(
            site,
            "create",
            "-M",
            "n3-deep",
            "-H",
            "sim",
            "--depth",
            "0",
            "--dry-run",
            "--json-output",
        )
    )
    assert code == 0 and any("delegate" in c["address"] for c in json.loads(out)["changes"])


def test_destroy_with_depth_is_refused_with_the_way_to_do_it(site: Path) -> None:
    code, _, err = run_cli(
        _site_args(site, "destroy", "-M", "n3-deep", "-H", "sim", "--depth", "1", "-y")
    )
    assert code == 1
    assert "create --depth" in err and "homestak-compat.md#flags" in err


# ---- phases --------------------------------------------------------------------------


def test_list_phases_names_iac_drivers_phases_and_needs_no_manifest() -> None:
    code, out, err = run_cli(["test", "--list-phases"])
    assert code == 0 and "homestak-compat.md#flags" in err
    names = [line.split()[0] for line in out.splitlines()[1:]]
    assert names == ["preflight", "create", "verify", "destroy"]
    assert "cannot be skipped" in next(line for line in out.splitlines() if "create" in line)
    code, out, _ = run_cli(["manifest", "apply", "--list-phases"])
    assert code == 0 and [line.split()[0] for line in out.splitlines()[1:]] == [
        "preflight",
        "create",
    ]


def test_skippable_phases_are_accepted_and_the_rest_refused() -> None:
    assert check_skips("test", ["verify", "destroy", "verify"]) == {"verify", "destroy"}
    assert check_skips("create", ["preflight"]) == {"preflight"}
    with pytest.raises(FlagError, match=r"cannot skip create.*#flags"):
        check_skips("test", ["create"])
    with pytest.raises(FlagError, match="cannot skip destroy"):
        check_skips("destroy", ["destroy"])
    with pytest.raises(FlagError, match="no phase 'provision'"):
        check_skips("create", ["provision"])


def test_skipping_an_unknown_phase_exits_1(tmp_path: Path) -> None:
    code, _, err = run_cli(["test", "-M", "n1-push", "-H", "sim", "--skip", "bogus"], cwd=tmp_path)
    assert code == 1 and "bogus" in err and "verify" in err and "homestak-compat.md#flags" in err


# ---- --self-addr ---------------------------------------------------------------------


def test_self_addr_flag_wins_over_the_variable_and_loopback_is_refused() -> None:
    env = {"HOMESTAK_SELF_ADDR": " 192.0.2.9 "}
    assert self_addr(argparse.Namespace(self_addr=None), env) == "192.0.2.9"
    assert self_addr(argparse.Namespace(self_addr="192.0.2.1"), env) == "192.0.2.1"
    assert self_addr(argparse.Namespace(self_addr=None), {}) is None
    for bad in ("127.0.0.1", "localhost", "::1"):
        with pytest.raises(FlagError, match="not a routable address"):
            self_addr(argparse.Namespace(self_addr=bad), {})


def test_self_addr_makes_the_spec_servers_url(site: Path) -> None:
    from pveplan.planner import load_site_config

    loaded = load_site_config(site)
    adjust_site(loaded, argparse.Namespace(self_addr="192.0.2.1"), {})
    assert loaded.site.defaults.server_url == "https://192.0.2.1:44443"
    (site / "site.yaml").write_text(
        (site / "site.yaml").read_text().replace('server_url: ""', 'server_url: "https://old:8443"')
    )
    again = load_site_config(site)
    adjust_site(again, argparse.Namespace(self_addr="2001:db8::1"), {})
    assert again.site.defaults.server_url == "https://[2001:db8::1]:8443"


def test_a_loopback_self_addr_exits_1(tmp_path: Path) -> None:
    code, _, err = run_cli(
        ["create", "-M", "n1-push", "-H", "sim", "--self-addr", "127.0.0.1"], cwd=tmp_path
    )
    assert code == 1 and "routable" in err


# ---- --context-file ------------------------------------------------------------------


def test_context_file_reads_an_object_and_an_absent_file_is_empty(tmp_path: Path) -> None:
    assert read_context(None) == {} and read_context(str(tmp_path / "none.json")) == {}
    good = tmp_path / "ctx.json"
    good.write_text('{"node_ip": "192.0.2.3"}')
    assert read_context(str(good)) == {"node_ip": "192.0.2.3"}
    for text in ("{not json", "[1, 2]"):
        good.write_text(text)
        with pytest.raises(FlagError, match="context file"):
            read_context(str(good))


def test_an_invalid_context_file_exits_1_before_the_run(site: Path, tmp_path: Path) -> None:
    bad = tmp_path / "ctx.json"
    bad.write_text("{oops")
    code, _, err = run_cli(
        _site_args(site, "create", "-M", "n1-push", "-H", "sim", "-y", "--context-file", str(bad))
    )
    assert code == 1 and "invalid JSON in context file" in err
    assert not (tmp_path / "store").exists()


def test_context_after_a_run_keeps_what_was_read_and_follows_the_store() -> None:
    loaded = {"keep": 1, "gone_vm_id": 99001, "gone_ip": "192.0.2.4"}
    resources = {"node.edge.create": {"name": "edge", "vm_id": 99002, "ip": "192.0.2.5"}}
    assert context_after(loaded, ["edge", "gone"], resources) == {
        "keep": 1,
        "edge_vm_id": 99002,
        "edge_ip": "192.0.2.5",
    }


# ---- iac-driver's `manifest ACTION` form -----------------------------------------------


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["manifest", "apply", "-M", "n1"], ["create", "--report-verb", "apply", "-M", "n1"]),
        (["manifest", "destroy", "-y"], ["destroy", "--report-verb", "destroy", "-y"]),
        (["manifest", "test", "-M", "n2"], ["test", "--report-verb", "test", "-M", "n2"]),
        (["manifest", "validate", "-M", "n1"], ["validate", "-M", "n1"]),
        (
            ["--color", "never", "manifest", "apply"],
            ["--color", "never", "create", "--report-verb", "apply"],
        ),
        (["create", "-M", "manifest"], ["create", "-M", "manifest"]),  # not the noun
    ],
)
def test_the_manifest_form_maps_to_the_verbs(words: list[str], expected: list[str]) -> None:
    assert rewrite(words).words == expected


def test_manifest_apply_reports_the_verb_the_user_typed() -> None:
    words = rewrite(["manifest", "apply", "-M", "n1-push", "-H", "sim"]).words
    assert words is not None
    args = build_parser().parse_args(words)
    assert args.command == "create" and args.report_verb == "apply"
    assert build_parser().parse_args(["create"]).report_verb is None


@pytest.mark.parametrize(
    ("words", "code"), [(["manifest"], 1), (["manifest", "frob"], 1), (["manifest", "-h"], 0)]
)
def test_manifest_without_a_known_action(words: list[str], code: int) -> None:
    got, out, err = run_cli(words)
    assert got == code
    text = out if code == 0 else err
    assert "apply" in text and "validate" in text and "Traceback" not in err


def test_manifest_validate_validates(site: Path) -> None:
    code, out, err = run_cli(_site_args(site, "manifest", "validate", "-M", "n1-push"))
    assert code == 0 and "valid" in out, err


# ---- validate --manifest-json ----------------------------------------------------------

INLINE = {
    "schema_version": 2,
    "name": "inline",
    "nodes": [{"name": "a", "type": "vm", "preset": "vm-small", "image": "debian-12"}],
}


def test_validate_takes_the_manifest_as_json(site: Path) -> None:
    code, out, err = run_cli(_site_args(site, "validate", "--manifest-json", json.dumps(INLINE)))
    assert code == 0 and "<manifest-json>: valid" in out, err


def test_validate_manifest_json_reports_its_errors_and_unknown_names(site: Path) -> None:
    broken = {**INLINE, "nodes": [{"name": "a", "type": "vm", "preset": "vm-gigantic"}]}
    code, _, err = run_cli(_site_args(site, "validate", "--manifest-json", json.dumps(broken)))
    assert code == 1 and "<manifest-json>" in err and "vm-gigantic" in err
    code, _, err = run_cli(["validate", "--no-site-config", "--manifest-json", "{not json"])
    assert code == 1 and "Traceback" not in err
    code, _, err = run_cli(["validate", "--manifest-json", "{}", "-M", "n1-push"])
    assert code == 1 and "alone" in err


# ---- readiness: refused before anything runs -------------------------------------------


def test_only_an_encrypted_secrets_file_says_how_to_decrypt(site: Path, tmp_path: Path) -> None:
    (site / "secrets.yaml").rename(site / "secrets.yaml.enc")
    code, _, err = run_cli(_site_args(site, "create", "-M", "n1-push", "-H", "sim", "-y"))
    assert code == 1
    assert "secrets.yaml.enc" in err and "make decrypt" in err
    assert "refused before anything was created" in err
    assert not (tmp_path / "store" / "sim").exists()  # the host was never asked


def test_a_sops_encrypted_secrets_file_is_not_decrypted(site: Path) -> None:
    (site / "secrets.yaml").write_text("sops:\n    kms: []\n")
    code, out, _ = run_cli(_site_args(site, "create", "-M", "n1-push", "-H", "sim", "--preflight"))
    assert code == 1 and "still SOPS-encrypted" in out and "not ready" in out


def test_a_missing_node_file_and_its_other_problems_are_listed_at_once(
    site: Path, tmp_path: Path
) -> None:
    (site / "secrets.yaml").rename(site / "secrets.yaml.enc")
    code, out, _ = run_cli(_site_args(site, "test", "-M", "n1-push", "-H", "nohost", "--preflight"))
    assert code == 1
    assert "FAIL secrets" in out and "FAIL node config" in out
    assert "nodes/nohost.yaml" in out and "hosts/nohost.yaml" in out
    assert not (tmp_path / "store" / "sim").exists()


def test_a_lab_without_gateway_dns_or_ssh_key_is_refused_before_anything_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site-config"
    shutil.copytree(REHEARSAL, site)
    monkeypatch.setenv("PVEPLAN_STORE", str(tmp_path / "store"))
    secrets = site / "secrets.yaml"
    kept = [line for line in secrets.read_text().splitlines() if "ssh-ed25519" not in line]
    secrets.write_text("\n".join(kept).replace("ssh_keys:", "ssh_keys: {}") + "\n")
    words = ["create", "-M", "flat-12", "-H", "father", "--simulate", "--site-config", str(site)]
    code, _, err = run_cli([*words, "-y"])
    assert code == 1
    for name in ("FAIL gateway", "FAIL DNS", "FAIL SSH key"):
        assert name in err
    assert "defaults.gateway" in err and "#preflight" in err
    assert not (tmp_path / "store" / "sim").exists()  # nothing was created, or even started
    shutil.copy(REHEARSAL / "secrets.yaml", secrets)  # the keys back; still no gateway
    code, _, err = run_cli([*words, "--dry-run"])  # --dry-run checks nothing, as iac-driver
    assert code == 0, err


@pytest.mark.parametrize(
    ("extra", "checked"),
    [
        ([], True),
        (["--skip-preflight"], False),
        (["--skip", "preflight"], False),
        (["--dry-run"], False),
        (["--preflight"], True),
    ],
)
def test_the_checks_run_before_the_verb_unless_skipped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, extra: list[str], checked: bool
) -> None:
    from pveplan.cli import _apply, _readiness

    calls: list[str] = []

    def readiness(args: argparse.Namespace, console: Console, *, only: bool = False) -> bool:
        calls.append("checks")
        return True

    def run_create(args: argparse.Namespace, console: Console) -> int:
        calls.append("run")
        return 0

    monkeypatch.setattr(_readiness, "readiness", readiness)
    monkeypatch.setattr(_apply, "run_create", run_create)
    code, _, err = run_cli(["create", "-M", "n1-push", "-H", "sim", "-y", *extra], cwd=tmp_path)
    assert code == 0, err
    expected = ["checks"] if checked else []
    if "--preflight" not in extra:
        expected.append("run")
    assert calls == expected


def test_failed_checks_stop_the_verb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pveplan.cli import _apply, _readiness

    monkeypatch.setattr(_readiness, "readiness", lambda args, console, only=False: False)
    monkeypatch.setattr(_apply, "run_test", lambda args, console: pytest.fail("it ran"))
    code, _, _ = run_cli(["test", "-M", "n1-push", "-H", "sim", "-y"], cwd=tmp_path)
    assert code == 1


def test_self_addr_is_where_the_plans_pull_nodes_fetch_their_specs(site: Path) -> None:
    def servers(*extra: str) -> set[object]:
        args = build_parser().parse_args(
            _site_args(site, "create", "-M", "n1-pull", "-H", "sim", *extra)
        )
        plan = make_plan(args, _console(Path.cwd())).plan_file.plan
        return {s.args["server"] for s in plan.steps if "server" in s.args}

    assert servers() == {None}  # site.yaml sets no server_url: the run's own server
    assert servers("--self-addr", "192.0.2.1") == {"https://192.0.2.1:44443"}


def test_manifest_apply_dry_run_reports_apply(site: Path) -> None:
    code, out, err = run_cli(
        _site_args(
            site, "manifest", "apply", "-M", "n1-push", "-H", "sim", "--dry-run", "--json-output"
        )
    )
    assert code == 0, err
    assert json.loads(out)["verb"] == "apply"
