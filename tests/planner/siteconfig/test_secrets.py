"""Secrets: read only when needed, revealed only on request, never shown."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pveplan import dsl
from pveplan.planner import PlanError
from pveplan.planner.siteconfig import SecretRef, Secrets, load_site_config, resolve_manifest
from tests._tiers import examples

from .conftest import FAKE, FIXTURE, manifest, site_with, write


def all_text(exc: BaseException) -> str:
    """Everything an exception could show: its str and every diagnostic field."""
    parts = [str(exc), repr(exc)]
    for diag in getattr(exc, "diagnostics", ()):
        parts += [diag.summary, diag.detail, repr(diag)]
        if diag.location is not None:
            parts += [diag.location.source_line, str(diag.location)]
    return "\n".join(parts)


def test_keys_refs_and_reveal(fixture_site) -> None:
    secrets = fixture_site.secrets
    assert secrets.keys("ssh_keys") == ("alice", "bob")
    assert secrets.keys("nothing") == ()
    ref = secrets.ref("ssh_keys", "alice")
    assert ref == SecretRef(name="ssh_keys.alice")
    assert (ref.section, ref.key, str(ref)) == ("ssh_keys", "alice", "ssh_keys.alice")
    assert secrets.has(ref)
    assert not secrets.has(secrets.ref("ssh_keys", "carol"))
    assert secrets.reveal(ref) == (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA5gr2yJzAHgb2/rdC4FK8hQfuUuDAaqcPMi7lktEe8t"
        " alice-FAKESECRET@test"
    )
    assert secrets.reveal(secrets.ref("auth", "signing_key")).startswith(FAKE)


def test_a_secret_ref_holds_only_the_name() -> None:
    ref = SecretRef(name="ssh_keys.alice")
    assert msgspec.json.encode(ref) == b'{"name":"ssh_keys.alice"}'
    with pytest.raises(ValueError):
        SecretRef(name="nodot")


def test_secrets_are_not_read_until_needed(monkeypatch, site_dir) -> None:
    reads: list[Path] = []
    original = Path.read_bytes

    def counting(self: Path) -> bytes:
        reads.append(self)
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", counting)
    secrets_file = site_dir / "secrets.yaml"
    site = load_site_config(site_dir)
    site.presets["vm-small"], site.specs["pve"], site.postures["dev"], site.host("father")
    site.images.get("debian-12")
    assert secrets_file not in reads
    assert not site.secrets.loaded
    assert "not loaded" in repr(site.secrets)

    assert site.secrets.keys("ssh_keys") == ("alice", "bob")
    assert reads.count(secrets_file) == 1
    site.secrets.keys("api_tokens")
    site.secrets.reveal(site.secrets.ref("ssh_keys", "bob"))
    assert reads.count(secrets_file) == 1  # read once, then kept


def test_a_broken_secrets_file_only_matters_when_a_secret_is_needed(site_dir) -> None:
    site = site_with(site_dir, {"secrets.yaml": "ssh_keys: [unclosed\n"})
    assert site.presets["vm-large"].cores == 4
    assert site.host("mother").api_token == SecretRef(name="api_tokens.mother")
    with pytest.raises(PlanError) as info:
        site.secrets.keys("ssh_keys")
    assert info.value.location.file.endswith("secrets.yaml")


def test_missing_secrets_file_means_no_secrets(site_dir) -> None:
    site = site_with(site_dir, {"secrets.yaml": None})
    assert site.secrets.keys("ssh_keys") == ()
    assert not site.secrets.exists()
    with pytest.raises(PlanError) as info:
        site.secrets.reveal(site.secrets.ref("auth", "signing_key"))
    assert "does not exist" in info.value.summary


def test_unknown_secret_suggests_by_name_only(fixture_site) -> None:
    with pytest.raises(PlanError) as info:
        fixture_site.secrets.reveal(SecretRef(name="ssh_keys.alcie"))
    assert "did you mean 'alice'?" in info.value.detail
    assert FAKE not in all_text(info.value)


def test_repr_and_str_never_show_values(fixture_site) -> None:
    secrets = fixture_site.secrets
    secrets.keys("ssh_keys")
    assert secrets.loaded
    for text in (repr(secrets), str(secrets), repr(fixture_site), str(fixture_site)):
        assert FAKE not in text
        assert "AAAA" not in text


def test_non_string_values_are_reported_without_the_value(site_dir) -> None:
    site = site_with(
        site_dir,
        {
            "secrets.yaml": """\
            passwords:
              vm_root: 8675309
            ssh_keys:
              alice: [ssh-ed25519, AAAAVALUE]
            auth: signing-FAKESECRET
            """
        },
    )
    with pytest.raises(PlanError) as info:
        site.secrets.keys("ssh_keys")
    text = all_text(info.value)
    assert "8675309" not in text and "AAAAVALUE" not in text and FAKE not in text
    summaries = [d.summary for d in info.value.diagnostics]
    assert summaries == [
        "secret passwords.vm_root must be a string, not a number",
        "secret ssh_keys.alice must be a string, not a list",
        "secrets section 'auth' must be a mapping of names to values",
    ]
    assert [d.location.line for d in info.value.diagnostics] == [2, 4, 5]


def test_yaml_errors_do_not_quote_the_file(site_dir) -> None:
    site = site_with(
        site_dir,
        {"secrets.yaml": 'ssh_keys:\n  alice: "ssh-ed25519 AAAALEAK-FAKESECRET\n  bob: x\n'},
    )
    with pytest.raises(PlanError) as info:
        site.secrets.keys("ssh_keys")
    text = all_text(info.value)
    assert "AAAALEAK" not in text and FAKE not in text
    assert info.value.location is not None and info.value.location.source_line == ""


def test_invalid_values_with_tags_do_not_leak(site_dir) -> None:
    site = site_with(site_dir, {"secrets.yaml": "auth:\n  signing_key: !!int FAKESECRET99\n"})
    with pytest.raises(PlanError) as info:
        site.secrets.keys("auth")
    assert FAKE not in all_text(info.value)


def test_resolved_manifests_hold_no_secret_values(fixture_site) -> None:
    for path in sorted((FIXTURE / "manifests").glob("*.yaml")):
        resolved = resolve_manifest(dsl.load_manifest(str(path)), fixture_site, "father")
        encoded = msgspec.json.encode(resolved).decode()
        assert FAKE not in encoded and FAKE not in repr(resolved)
        assert "ssh_keys.alice" in encoded  # by name, yes


def test_unresolved_key_errors_hold_no_secret_values(site_dir) -> None:
    write(
        site_dir,
        {
            "specs/base.yaml": "schema_version: 1\naccess:\n  users:\n    - {name: x, ssh_keys: [alicee]}\n"
        },
    )
    loaded = manifest(
        site_dir,
        "schema_version: 2\nname: m\nnodes:\n  - {name: a, type: vm, spec: base, image: debian-12}\n",
    )
    with pytest.raises(PlanError) as info:
        resolve_manifest(loaded, load_site_config(site_dir))
    assert "did you mean 'alice'?" in info.value.detail
    assert FAKE not in all_text(info.value)


@settings(max_examples=examples(50), deadline=None)
@given(value=st.text(st.characters(categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=80))
def test_any_value_round_trips_and_repr_does_not_depend_on_it(tmp_path_factory, value) -> None:
    root = tmp_path_factory.mktemp("s")
    path = root / "secrets.yaml"
    path.write_text(f"ssh_keys:\n  k: {json.dumps(value, ensure_ascii=False)}\n", encoding="utf-8")
    secrets = Secrets(path)
    before = repr(secrets)
    assert secrets.reveal(secrets.ref("ssh_keys", "k")) == value
    assert repr(secrets) == before.replace("not loaded", "loaded")
    assert str(secrets) == repr(secrets)


def test_unusable_secret_names_are_errors(site_dir) -> None:
    site = site_with(site_dir, {"secrets.yaml": 'ssh_keys:\n  "": FAKESECRET\n'})
    with pytest.raises(PlanError) as info:
        site.secrets.keys("ssh_keys")
    assert info.value.summary == "secret name ssh_keys. is not valid"
    assert FAKE not in all_text(info.value)


def test_an_empty_string_means_not_set(tmp_path: Path) -> None:
    """homestak's secrets.yaml.example writes `signing_key: ""` for "not set yet"."""
    path = tmp_path / "secrets.yaml"
    path.write_text(
        'ssh_keys:\n  alice: "ssh-ed25519 AAAAFAKESECRET alice"\n  bob: ""\nauth:\n  signing_key: ""\n'
    )
    secrets = Secrets(path)
    assert secrets.keys("ssh_keys") == ("alice",)
    assert not secrets.has(secrets.ref("auth", "signing_key"))
