"""secrets.yaml as homestak writes it: `auth.node_tokens` as a mapping, and a site config
whose secrets are still encrypted (`secrets.yaml.enc` only, before `make decrypt`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pveplan.cli._catalog import _node_tokens
from pveplan.planner import PlanError
from pveplan.planner.siteconfig import SecretRef, load_site_config, resolve_manifest

from ...cli_runner import run_cli
from .conftest import FAKE, manifest, site_with, write

NODE = "schema_version: 2\nname: m\nnodes:\n  - {name: a, type: vm, image: debian-12, spec: base}\n"
NESTED = f"""\
ssh_keys:
  alice: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA5gr2yJzAHgb2/rdC4FK8hQfuUuDAaqcPMi7lktEe8t a"
auth:
  signing_key: "{FAKE}-signing-key"
  site_token: "{FAKE}-site"
  node_tokens:
    dev1: "{FAKE}-dev1"
    dev2: "{FAKE}-dev2"
"""


def test_auth_node_tokens_as_a_mapping_is_read_as_homestak_wrote_it(site_dir: Path) -> None:
    site = site_with(site_dir, {"secrets.yaml": NESTED})
    secrets = site.secrets
    assert secrets.keys("auth") == (
        "node_tokens.dev1",
        "node_tokens.dev2",
        "signing_key",
        "site_token",
    )
    assert secrets.reveal(SecretRef(name="auth.node_tokens.dev1")) == f"{FAKE}-dev1"
    assert secrets.reveal(SecretRef(name="auth.signing_key")) == f"{FAKE}-signing-key"
    resolve_manifest(manifest(site_dir, NODE), site, None)  # no refusal


def test_validate_and_plan_accept_a_site_config_with_node_tokens_as_a_mapping(
    site_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PVEPLAN_STORE", str(site_dir.parent / "store"))
    write(site_dir, {"secrets.yaml": NESTED})
    path = manifest(site_dir, NODE).files[0]
    code, out, err = run_cli(["validate", path, "--site-config", str(site_dir)])
    assert code == 0, err
    code, out, err = run_cli(["plan", path, "-H", "father", "--site-config", str(site_dir)])
    assert code == 0, err
    assert FAKE not in out + err


def test_homestak_node_tokens_are_the_spec_servers_static_node_tokens(site_dir: Path) -> None:
    text = NESTED + f'node_tokens:\n  dev2: "{FAKE}-pveplan-dev2"\n  dev3: "{FAKE}-dev3"\n'
    site = site_with(site_dir, {"secrets.yaml": text})
    assert _node_tokens(site) == {
        "dev1": f"{FAKE}-dev1",
        "dev2": f"{FAKE}-pveplan-dev2",  # pveplan's own section wins
        "dev3": f"{FAKE}-dev3",
    }


def test_nested_values_are_still_checked_at_their_line(site_dir: Path) -> None:
    text = "auth:\n  node_tokens:\n    dev1: [1, 2]\n    dev2: {}\n"
    site = site_with(site_dir, {"secrets.yaml": text})
    with pytest.raises(PlanError) as info:
        site.secrets.keys("auth")
    (diag,) = info.value.diagnostics
    assert diag.summary == "secret auth.node_tokens.dev1 must be a string, not a list"
    assert (diag.location.line, diag.location.col) == (3, 5)


# ---- secrets.yaml.enc only ----------------------------------------------------------------


def encrypted_only(site_dir: Path, makefile: bool) -> Path:
    (site_dir / "secrets.yaml").rename(site_dir / "secrets.yaml.enc")
    if makefile:
        (site_dir / "Makefile").write_text("decrypt:\n\tsops -d secrets.yaml.enc > secrets.yaml\n")
    return site_dir


def test_encrypted_only_secrets_say_how_to_decrypt(site_dir: Path) -> None:
    site = load_site_config(encrypted_only(site_dir, makefile=True))
    assert site.secrets.still_encrypted()
    assert f"cd {site_dir} && make decrypt" in site.secrets.decrypt_hint()
    with pytest.raises(PlanError) as info:
        site.secrets.reveal(SecretRef(name="auth.signing_key"))
    assert "still encrypted" in info.value.summary
    assert "does not exist" not in str(info.value)
    assert "make decrypt" in info.value.detail


def test_without_a_makefile_the_hint_is_the_sops_command(site_dir: Path) -> None:
    site = load_site_config(encrypted_only(site_dir, makefile=False))
    hint = site.secrets.decrypt_hint()
    assert "sops" in hint and "-d secrets.yaml.enc" in hint and "age" in hint


def test_a_decrypted_or_absent_secrets_file_is_not_still_encrypted(site_dir: Path) -> None:
    (site_dir / "secrets.yaml.enc").write_text("sops: {}\n")
    assert not load_site_config(site_dir).secrets.still_encrypted()  # secrets.yaml is there
    (site_dir / "secrets.yaml").unlink()
    (site_dir / "secrets.yaml.enc").unlink()
    assert not load_site_config(site_dir).secrets.still_encrypted()  # no secrets at all


def test_validate_on_encrypted_secrets_says_decrypt_not_missing(
    site_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PVEPLAN_STORE", str(site_dir.parent / "store"))
    encrypted_only(site_dir, makefile=True)
    path = manifest(site_dir, NODE).files[0]
    code, _, err = run_cli(["validate", path, "--site-config", str(site_dir)])
    assert code == 1 and "Traceback" not in err
    assert "still encrypted" in err and f"cd {site_dir} && make decrypt" in err
    assert "does not exist" not in err
