"""Signed plans: `keygen`, `plan --sign`, `sign`, and the check `apply` makes.

What runs must be what was reviewed: a plan file is refused when unsigned, signed by
another key, or when its body no longer matches what was signed, even if its hashes
were recomputed to match the edit. Free header fields (another signature, a tool version)
may be edited; bound ones (tests/planner/test_plan_binding.py) may not. The refusals happen before any step runs, so
these tests need no simulator; tests/integration/test_reviewed_plans.py applies one.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pveplan.planner._errors import PlanError
from pveplan.planner._hashing import plan_hash, step_hash
from pveplan.planner._plan import Plan
from pveplan.planner._planfile import PlanFile, decode_plan_file, encode_plan_file, read_plan_file
from pveplan.planner._signing import (
    fingerprint,
    load_private_key,
    parse_public_keys,
    require_signature,
    sign,
)

from ..cli_runner import run_cli
from .test_cli_plan import plan_args, site  # noqa: F401  (the fixture)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    """Two key pairs made by `pveplan keygen`: the approver's, and someone else's."""
    approver, other = tmp_path / "keys" / "approver", tmp_path / "keys" / "other"
    for path in (approver, other):
        code, out, err = run_cli(["keygen", str(path), "-C", path.name])
        assert code == 0, err
        assert out.count("ssh-ed25519 ") == 1
    return approver, other


@pytest.fixture
def signed(site: Path, tmp_path: Path, keys: tuple[Path, Path]) -> Path:  # noqa: F811
    path = tmp_path / "n2.json"
    code, out, err = run_cli(
        ["plan", *plan_args(site, "n2-tiered"), "-o", str(path), "--sign", str(keys[0])]
    )
    assert code == 0, err
    assert "(signed)" in out
    return path


def _apply(path: Path, site: Path, *pubkeys: Path) -> tuple[int, str]:  # noqa: F811
    argv = ["apply", str(path), "--site-config", str(site), "--yes"]
    for key in pubkeys:
        argv += ["--require-signature", f"{key}.pub"]
    code, out, err = run_cli(argv)
    return code, out + err


def _trusted(path: Path) -> list:
    return parse_public_keys(Path(f"{path}.pub").read_text(), "test")


def _rehash(plan: Plan) -> Plan:
    """`plan` with every hash recomputed from its content: what a forger would do."""
    hashes: dict[str, str] = {}
    steps = []
    subplans = {address: _rehash(sub) for address, sub in plan.subplans.items()}
    for step in plan.steps:
        args = dict(step.args)
        if step.address in subplans:
            args["subplan"] = subplans[step.address].hash
        refs = {n: f"{hashes[r.split('#')[0]]}#{r.split('#')[1]}" for n, r in step.refs.items()}
        new_hash = step_hash(
            kind=step.kind,
            kind_version=step.kind_version,
            host=step.host,
            args=args,
            secrets=step.secrets,
            ref_hashes=refs,
            dep_hashes=[hashes[d] for d in step.deps],
        )
        hashes[step.address] = new_hash
        steps.append(msgspec.structs.replace(step, args=args, hash=new_hash))
    root = plan_hash(
        plan.manifest, plan.host, plan.action, plan.settings, [(s.address, s.hash) for s in steps]
    )
    return msgspec.structs.replace(plan, steps=tuple(steps), subplans=subplans, hash=root)


def _forge(plan_file: PlanFile, memory: int) -> PlanFile:
    """The signed file with one VM's memory changed and every hash made to match."""
    plan = plan_file.plan
    steps = tuple(
        msgspec.structs.replace(s, args={**s.args, "memory": memory})
        if s.address == "node.root-pve.create"
        else s
        for s in plan.steps
    )
    forged = _rehash(msgspec.structs.replace(plan, steps=steps))
    return msgspec.structs.replace(plan_file, plan=forged, hash=forged.hash)


def test_a_signed_plan_verifies_with_the_approvers_key_only(
    signed: Path, keys: tuple[Path, Path]
) -> None:
    plan_file = read_plan_file(signed)
    approver = load_private_key(keys[0])
    assert [s.key for s in plan_file.header.signatures] == [fingerprint(approver.public_key())]
    assert require_signature(plan_file, _trusted(keys[0]), "f") == fingerprint(
        approver.public_key()
    )
    with pytest.raises(PlanError, match="none of them a trusted key"):
        require_signature(plan_file, _trusted(keys[1]), "f")


def test_apply_refuses_an_unsigned_plan(site: Path, tmp_path: Path, keys) -> None:  # noqa: F811
    path = tmp_path / "unsigned.json"
    assert run_cli(["plan", *plan_args(site, "n2-tiered"), "-o", str(path)])[0] == 0
    code, out = _apply(path, site, keys[0])
    assert code == 1
    assert f"plan file {path} is not signed, and a signature is required" in out
    assert "Traceback" not in out


def test_apply_refuses_a_plan_signed_by_another_key(signed: Path, site: Path, keys) -> None:  # noqa: F811
    code, out = _apply(signed, site, keys[1])
    assert code == 1
    assert "none of them a trusted key" in out
    assert fingerprint(load_private_key(keys[1]).public_key()) in out


def test_a_body_edited_after_signing_is_refused_even_with_its_hashes_recomputed(
    signed: Path,
    site: Path,  # noqa: F811
    keys,
) -> None:
    plan_file = read_plan_file(signed)
    # An edit without new hashes: the file no longer matches them.
    text = signed.read_text().replace('"memory": 8192', '"memory": 65536', 1)
    assert text != signed.read_text()
    signed.write_text(text)
    code, out = _apply(signed, site, keys[0])
    assert code == 1 and "does not match its hashes" in out
    # A forger recomputes every hash: the signature no longer verifies.
    forged = _forge(plan_file, 65536)
    assert forged.hash != plan_file.hash
    assert decode_plan_file(encode_plan_file(forged), "forged") == forged  # hashes sound
    signed.write_bytes(encode_plan_file(forged))
    code, out = _apply(signed, site, keys[0])
    assert code == 1
    assert "does not verify: the plan is not the one that was signed" in out


def test_header_edits_keep_the_signature_valid(signed: Path, keys, tmp_path: Path) -> None:
    plan_file = read_plan_file(signed)
    header = msgspec.structs.replace(
        plan_file.header, tool="pveplan 99.0", sources={}, site_config="elsewhere"
    )
    edited = sign(msgspec.structs.replace(plan_file, header=header), load_private_key(keys[1]))
    assert len(edited.header.signatures) == 2  # a second approver signed too
    assert require_signature(edited, _trusted(keys[0]), "f")
    assert require_signature(edited, _trusted(keys[1]), "f")


def test_bound_header_edits_break_the_signature_naming_the_field(signed: Path, keys) -> None:
    plan_file = read_plan_file(signed)
    header = msgspec.structs.replace(plan_file.header, manifest_files={"x.pvp": "0" * 32})
    edited = msgspec.structs.replace(plan_file, header=header)
    with pytest.raises(PlanError, match="`manifest_files` changed after signing"):
        require_signature(edited, _trusted(keys[0]), "f")


def test_a_tampered_signature_is_refused(signed: Path, keys) -> None:
    plan_file = read_plan_file(signed)
    signature = plan_file.header.signatures[0]
    raw = bytearray(signature.signature.encode())
    raw[5] = ord("A") if raw[5] != ord("A") else ord("B")
    bad = msgspec.structs.replace(signature, signature=raw.decode())
    tampered = msgspec.structs.replace(
        plan_file, header=msgspec.structs.replace(plan_file.header, signatures=(bad,))
    )
    with pytest.raises(PlanError, match="does not verify"):
        require_signature(tampered, _trusted(keys[0]), "f")


def test_signing_is_deterministic_and_resigning_replaces(signed: Path, keys) -> None:
    before = signed.read_bytes()
    code, out, _ = run_cli(["sign", str(signed), "--key", str(keys[0])])
    assert code == 0 and "Signed plan" in out
    assert signed.read_bytes() == before  # same key, same plan: the same bytes


def test_keygen_never_overwrites_and_keeps_the_private_key_private(keys) -> None:
    approver = keys[0]
    assert approver.stat().st_mode & 0o777 == 0o600
    code, _, err = run_cli(["keygen", str(approver)])
    assert code == 1 and "already exists" in err


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")
def test_ssh_keygen_keys_work_and_fingerprints_agree(signed: Path, tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ci", "-f", str(key)], check=True
    )
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{key}.pub"], check=True, capture_output=True, text=True
    ).stdout.split()[1]
    assert run_cli(["sign", str(signed), "--key", str(key)])[0] == 0
    assert listed in [s.key for s in read_plan_file(signed).header.signatures]
    assert require_signature(read_plan_file(signed), _trusted(key), "f") == listed
    protected = tmp_path / "protected"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "pass phrase", "-f", str(protected)], check=True
    )
    code, _, err = run_cli(["sign", str(signed), "--key", str(protected)])
    assert code == 1 and "passphrase" in err


def test_site_trusted_plan_keys_require_signed_plan_files(
    site: Path,  # noqa: F811
    tmp_path: Path,
    keys,
) -> None:
    public = Path(f"{keys[0]}.pub").read_text().strip()
    with (site / "site.yaml").open("a") as out:
        out.write(f'\ntrusted_plan_keys:\n  - "{public}"\n')
    unsigned = tmp_path / "unsigned.json"
    assert run_cli(["plan", *plan_args(site, "n1-push"), "-o", str(unsigned)])[0] == 0
    code, out = _apply(unsigned, site)
    assert code == 1 and "is not signed" in out
    # Compiling and applying in one go would skip the review: refused as well.
    code, out, err = run_cli(["apply", *plan_args(site, "n1-push"), "--yes"])
    assert code == 1 and "runs signed plans only" in err


def test_secrets_never_reach_signatures_or_messages(signed: Path, site: Path, keys) -> None:  # noqa: F811
    from .test_cli_plan import SECRET_VALUES

    private = keys[0].read_text()
    body = private.split("\n")[1]
    for text in (signed.read_text(), _apply(signed, site, keys[1])[1]):
        assert body not in text
        for secret in SECRET_VALUES:
            assert secret not in text


@settings(max_examples=25, deadline=None)
@given(
    tool=st.text(max_size=30),
    note=st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=3),
    memory=st.integers(min_value=16, max_value=1 << 20),
)
def test_property_header_edits_pass_and_body_edits_fail(
    tmp_path_factory: pytest.TempPathFactory, tool: str, note: dict, memory: int
) -> None:
    plan_file, key = _signed_sample(tmp_path_factory)
    trusted = [key.public_key()]
    header = msgspec.structs.replace(
        plan_file.header, tool=tool, sources={"anything": note} if note else {}
    )
    reread = decode_plan_file(
        encode_plan_file(msgspec.structs.replace(plan_file, header=header)), "h"
    )
    assert require_signature(reread, trusted, "h")
    if memory != 8192:
        forged = _forge(plan_file, memory)
        with pytest.raises(PlanError, match="does not verify"):
            require_signature(forged, trusted, "b")


_SAMPLE: list = []


def _signed_sample(factory: pytest.TempPathFactory):
    """One signed n2-tiered plan for the property (built once: hypothesis re-enters)."""
    if not _SAMPLE:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        root = factory.mktemp("sample")
        target = root / "site-config"
        shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "site-config", target)
        out = root / "p.json"
        with pytest.MonkeyPatch.context() as env:
            env.setenv("PVEPLAN_STORE", str(root / "store"))
            env.delenv("HOMESTAK_SITE_CONFIG", raising=False)
            code, _, err = run_cli(["plan", *plan_args(target, "n2-tiered"), "-o", str(out)])
        assert code == 0, err
        key = Ed25519PrivateKey.generate()
        _SAMPLE.append((sign(read_plan_file(out), key), key))
    return _SAMPLE[0]


def test_require_signature_takes_a_key_line_or_a_file_even_one_named_ssh_something(
    signed: Path, keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pveplan.planner._signing import trusted_keys

    line = Path(f"{keys[0]}.pub").read_text().strip()
    folder = tmp_path / "ssh-keys"
    folder.mkdir()
    (folder / "approvers.pub").write_text(f"# approvers\n\n{line}\n")
    approver = fingerprint(load_private_key(keys[0]).public_key())
    monkeypatch.chdir(tmp_path)
    for source in (line, "ssh-keys/approvers.pub"):
        found = trusted_keys([source], [])
        assert [fingerprint(k) for k in found] == [approver]
        assert require_signature(read_plan_file(signed), found, "f") == approver
