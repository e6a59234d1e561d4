"""SSH keys: the FK form `ssh_keys.<id>` as the seeds write it, and secrets.yaml values
checked as real public keys, at their line:col, quoting nothing of a value."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from pveplan.planner import PlanError
from pveplan.planner.siteconfig import SecretRef, load_site_config, resolve_manifest
from pveplan.planner.siteconfig._sshkeys import key_problem

from ...cli_runner import run_cli
from .conftest import manifest, write

ALICE = SecretRef(name="ssh_keys.alice")
BOB = SecretRef(name="ssh_keys.bob")
NODE = "schema_version: 2\nname: m\nnodes:\n  - {name: a, type: vm, image: debian-12, spec: base}\n"


def openssh(key: object) -> str:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def private_pem() -> str:
    return (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        .decode()
    )


def wire(*fields: bytes) -> str:
    return base64.b64encode(b"".join(struct.pack(">I", len(f)) + f for f in fields)).decode()


ED25519 = openssh(ed25519.Ed25519PrivateKey.generate().public_key())
RSA = openssh(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key())
ECDSA = openssh(ec.generate_private_key(ec.SECP256R1()).public_key())
SK_ED25519 = "sk-ssh-ed25519@openssh.com " + wire(
    b"sk-ssh-ed25519@openssh.com", b"\x01" * 32, b"ssh:"
)


def resolve(site_dir: Path, text: str = NODE, host: str | None = None):
    return resolve_manifest(manifest(site_dir, text), load_site_config(site_dir), host)


# ---- ssh_keys.<id>: the seeds' FK form --------------------------------------------------


def test_fk_form_and_bare_ids_name_the_same_keys(site_dir) -> None:
    spec = """\
    schema_version: 1
    access:
      users:
        - {name: fk, ssh_keys: [ssh_keys.alice]}
        - {name: bare, ssh_keys: [alice]}
        - {name: mixed, ssh_keys: [ssh_keys.bob, alice]}
    """
    write(site_dir, {"specs/base.yaml": spec})
    (node,) = resolve(site_dir).nodes
    keys = {u.name: u.ssh_keys for u in node.spec.users}
    assert keys == {"fk": (ALICE,), "bare": (ALICE,), "mixed": (BOB, ALICE)}


def test_fk_form_in_a_hosts_file(site_dir) -> None:
    write(site_dir, {"hosts/srv.yaml": "access:\n  authorized_keys: [ssh_keys.alice, bob]\n"})
    resolved = resolve(site_dir, NODE.replace(", spec: base", ""), host="srv")
    assert resolved.host_config.authorized_keys == (ALICE, BOB)


def test_unknown_key_in_fk_form_suggests_in_that_form(site_dir) -> None:
    spec = "schema_version: 1\naccess:\n  users:\n    - {name: x, ssh_keys: [ssh_keys.alcie]}\n"
    write(site_dir, {"specs/base.yaml": spec})
    with pytest.raises(PlanError) as info:
        resolve(site_dir)
    (diag,) = info.value.diagnostics
    assert diag.summary == "unknown ssh key 'ssh_keys.alcie'"
    assert diag.detail.startswith(
        "did you mean 'ssh_keys.alice'? ssh keys that exist: ssh_keys.alice, ssh_keys.bob"
    )
    assert (diag.location.line, diag.location.col) == (4, 28)


def test_an_fk_naming_no_key_is_an_error(site_dir) -> None:
    spec = "schema_version: 1\naccess:\n  users:\n    - {name: x, ssh_keys: [ssh_keys.]}\n"
    write(site_dir, {"specs/base.yaml": spec})
    with pytest.raises(PlanError) as info:
        resolve(site_dir)
    assert info.value.diagnostics[0].summary == "an ssh key reference names no key"


# ---- what a public key is ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        ED25519,
        ED25519 + " alice@laptop",
        RSA + " rsa user",
        ECDSA,
        SK_ED25519 + " yubikey",
        "  " + ED25519 + "  ",
    ],
    ids=["ed25519", "comment", "rsa", "ecdsa", "sk-ed25519", "spaces"],
)
def test_real_public_keys_pass(value: str) -> None:
    assert key_problem(value) is None


BLOB = ED25519.split()[1]


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ("not a key", "does not start with a key type"),
        ("", "is blank"),
        ("ssh-ed25519", "has no key data after its type ssh-ed25519"),
        (f"ssh-ed25519 {BLOB[:-3]}!!!", "has key data that is not valid base64"),
        (f"ssh-rsa {BLOB}", "says ssh-rsa but its key data is ssh-ed25519"),
        (f"ssh-dss {BLOB}", "does not start with a key type"),
        (f'from="10.0.0.1" {ED25519}', "does not start with a key type"),
        (
            f"ssh-ed25519 {wire(b'ssh-ed25519', b'short')}",
            "has key data that does not parse as an ssh-ed25519 key",
        ),
        (f"ssh-ed25519 {base64.b64encode(b'garbage').decode()}", "is not an SSH ssh-ed25519 key"),
        (ED25519[:40] + "\n" + ED25519[40:], "spans more than one line"),
        (ED25519 + "\n", "spans more than one line"),
        (
            "sk-ssh-ed25519@openssh.com " + wire(b"sk-ssh-ed25519@openssh.com", b"\x01" * 32),
            "not a well-formed sk-ssh-ed25519@openssh.com key",
        ),
        (
            openssh(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()),
            None,  # 1024 bits, OpenSSH's floor, is accepted
        ),
        ("-----BEGIN PUBLIC KEY----- MCowBQYDK2VwAyEA", "is a PEM or RFC 4716 key file"),
    ],
)
def test_malformed_keys_are_named(value: str, what: str | None) -> None:
    problem = key_problem(value)
    if what is None:
        assert problem is None
        return
    assert problem is not None and what in problem[0], problem


@pytest.mark.parametrize("form", ["pem", "body-only", "putty"])
def test_a_private_key_is_recognised_and_never_quoted(form: str) -> None:
    pem = private_pem()
    body = "".join(pem.splitlines()[1:-1])
    value = {
        "pem": pem,
        "body-only": body,
        "putty": "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n",
    }[form]
    what, hint = key_problem(value)  # type: ignore[misc]
    assert what == "is a private key, not a public key"
    for piece in (body[:20], body[-20:], "PuTTY-User"):
        assert piece not in what + hint


# ---- checked where secrets.yaml says it, by validate and plan ----------------------------


def bad_secrets(site_dir: Path, pem: str) -> None:
    quoted = pem.replace("\n", "\\n")
    write(
        site_dir,
        {
            "specs/base.yaml": "schema_version: 1\naccess:\n  users: [{name: x, ssh_keys: [ssh_keys.ok]}]\n",
            "secrets.yaml": (
                "ssh_keys:\n"
                f'  ok: "{ED25519} ok@FAKESECRET"\n'
                '  typo: "not a key"\n'
                f'  pasted: "{quoted}"\n'
                "auth:\n"
                '  signing_key: "FAKESECRET"\n'
            ),
        },
    )


def test_every_bad_key_is_an_error_at_its_value(site_dir) -> None:
    pem = private_pem()
    bad_secrets(site_dir, pem)
    with pytest.raises(PlanError) as info:
        resolve(site_dir)
    diags = info.value.diagnostics
    assert [(d.summary, d.location.line, d.location.col) for d in diags] == [
        ("ssh key 'typo' in secrets.yaml does not start with a key type", 3, 9),
        ("ssh key 'pasted' in secrets.yaml is a private key, not a public key", 4, 11),
    ]
    assert all(
        d.location.file.endswith("secrets.yaml") and not d.location.source_line for d in diags
    )


def test_validate_and_plan_refuse_a_bad_key_without_echoing_it(site_dir, monkeypatch) -> None:
    monkeypatch.setenv("PVEPLAN_STORE", str(site_dir.parent / "store"))
    pem = private_pem()
    bad_secrets(site_dir, pem)
    path = manifest(site_dir, NODE).files[0]
    body = "".join(pem.splitlines()[1:-1])
    code, out, err = run_cli(["validate", path, "--site-config", str(site_dir)])
    assert code == 1
    assert f"{site_dir / 'secrets.yaml'}:3:9: error: ssh key 'typo'" in err
    assert f"{site_dir / 'secrets.yaml'}:4:11: error: ssh key 'pasted'" in err
    code, out2, err2 = run_cli(["plan", path, "-H", "father", "--site-config", str(site_dir)])
    assert code == 1 and "ssh key 'pasted' in secrets.yaml is a private key" in err2
    for text in (out, err, out2, err2):
        assert body[:24] not in text and body[-24:] not in text
        assert "not a key" not in text and "FAKESECRET" not in text


def test_fk_form_as_the_seeds_readme_writes_it(site_dir, monkeypatch) -> None:
    """homestak's site-config README: `ssh_keys: [ssh_keys.admin@host]`, ids being the key's
    comment (user@host, which may hold dots); validate and plan take it, and it resolves to
    that key and no other."""
    monkeypatch.setenv("PVEPLAN_STORE", str(site_dir.parent / "store"))
    secrets = (site_dir / "secrets.yaml").read_text()
    key = f'  admin@srv1.lan: "{ED25519} admin@srv1.lan"\n'
    write(site_dir, {"secrets.yaml": secrets.replace("ssh_keys:\n", "ssh_keys:\n" + key)})
    spec = """\
    schema_version: 1
    access:
      posture: dev
      users:
        - name: homestak
          sudo: true
          ssh_keys:
            - ssh_keys.admin@srv1.lan
    """
    write(site_dir, {"specs/base.yaml": spec})
    (node,) = resolve(site_dir).nodes
    assert node.spec.users[0].ssh_keys == (SecretRef(name="ssh_keys.admin@srv1.lan"),)
    path = manifest(site_dir, NODE).files[0]
    code, _, err = run_cli(["validate", path, "--site-config", str(site_dir)])
    assert code == 0, err
    code, out, err = run_cli(["plan", path, "-H", "father", "--site-config", str(site_dir)])
    assert code == 0, err
    assert ED25519.split()[1] not in out + err
