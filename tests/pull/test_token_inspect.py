"""`pveplan token inspect`: a token's claims, and with --verify, whether it holds."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pveplan.executor.pull import (
    DEFAULT_TOKEN_TTL,
    TokenRefused,
    inspect_token,
    mint_token,
)

from ..cli_runner import run_cli

ROOT = Path(__file__).resolve().parents[2]
HEX_KEY = "5e" * 32
NOW = 1_700_000_000


@given(
    node=st.text(min_size=1, max_size=30),
    spec=st.text(max_size=30),
    iat=st.integers(0, 2**33),
    key=st.binary(min_size=1, max_size=40).map(bytes.hex),
)
def test_what_is_minted_inspects_to_its_claims(node: str, spec: str, iat: int, key: str) -> None:
    token = mint_token(node, spec, key, now=iat)
    shown = inspect_token(token, now=iat)
    assert shown.claims == {"v": 1, "n": node, "s": spec, "iat": iat}
    assert shown.signature is None and shown.serve is None
    checked = inspect_token(f"  {token}\n", key, now=iat)
    assert (checked.signature, checked.serve) == ("valid", "accepted")
    flipped = f"{int(key[:2], 16) ^ 1:02x}{key[2:]}"  # (HMAC pads keys with zeros: not "00")
    other = inspect_token(token, flipped, now=iat)
    assert other.signature == "invalid" and other.serve == "refused: bad signature"


def test_serve_verdict_reports_the_age() -> None:
    token = mint_token("edge", "base", HEX_KEY, now=NOW)
    late = inspect_token(token, HEX_KEY, now=NOW + DEFAULT_TOKEN_TTL + 1)
    assert late.signature == "valid"
    assert late.serve is not None and late.serve.startswith("refused: expired token")
    assert late.issued == "2023-11-14T22:13:20+00:00"


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "!!!.x", "WzFd.x"])
def test_what_does_not_decode_is_refused(token: str) -> None:
    with pytest.raises(TokenRefused) as info:
        inspect_token(token, now=NOW)
    assert info.value.reason.startswith("malformed token")


@given(st.text(max_size=200))
def test_arbitrary_text_only_ever_raises_token_refused(text: str) -> None:
    with contextlib.suppress(TokenRefused):
        inspect_token(text, HEX_KEY, now=NOW)


def test_deeply_nested_or_huge_payloads_are_refused_not_crashed() -> None:
    deep = base64.urlsafe_b64encode(b"[" * 3000).decode().rstrip("=")
    for token in (f"{deep}.x", "a" * 5000 + ".b"):
        with pytest.raises(TokenRefused):
            inspect_token(token, now=NOW)


# ---- the command ------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The example site config with a hex signing key, as homestak writes one."""
    root = tmp_path / "site-config"
    shutil.copytree(ROOT / "examples" / "site-config", root)
    secrets = root / "secrets.yaml"
    text = secrets.read_text()
    start = text.index("signing_key:")
    end = text.index("\n", start)
    secrets.write_text(text[:start] + f'signing_key: "{HEX_KEY}"' + text[end:])
    return root


def test_inspect_from_stdin_shows_the_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    token = mint_token("edge", "base", HEX_KEY, now=NOW)
    monkeypatch.setattr("sys.stdin", io.StringIO(token + "\n"))
    code, out, err = run_cli(["token", "inspect", "-"])
    assert code == 0, err
    assert "node    (n):   edge" in out and "spec    (s):   base" in out
    assert f"{NOW} (2023-11-14T22:13:20+00:00)" in out
    assert "Signature" not in out and token not in out + err


def test_verify_against_the_site_configs_key(site: Path) -> None:
    good = mint_token("edge", "base", HEX_KEY)
    code, out, err = run_cli(["token", "inspect", good, "--verify", "--site-config", str(site)])
    assert code == 0, err
    assert "Signature: VALID" in out and "serve:     accepted" in out
    assert HEX_KEY not in out + err
    bad = mint_token("edge", "base", "77" * 32)
    code, out, _ = run_cli(["token", "inspect", bad, "--verify", "--site-config", str(site)])
    assert code == 1 and "Signature: INVALID" in out


def test_json(site: Path) -> None:
    token = mint_token("edge", "base", HEX_KEY, now=NOW)
    argv = ["token", "inspect", token, "--json", "--verify", "--site-config", str(site)]
    code, out, err = run_cli(argv)
    assert code == 0, err
    result = json.loads(out)
    assert result["claims"] == {"v": 1, "n": "edge", "s": "base", "iat": NOW}
    assert result["signature"] == "valid"
    assert result["serve"].startswith("refused: expired token")
    assert "docs/homestak-compat.md#tokens" in err


def test_a_text_signing_key_gets_the_compat_hint(tmp_path: Path) -> None:
    """The example site config's key is text (changing it would move the pinned plan
    hashes): inspect still verifies with it, and says homestak could not."""
    site = ROOT / "examples" / "site-config"
    key = "example-signing-key-not-secret"
    token = mint_token("edge", "base", key)
    code, out, err = run_cli(["token", "inspect", token, "--verify", "--site-config", str(site)])
    assert code == 0 and "Signature: VALID" in out
    assert "hint: auth.signing_key is not hex" in err
    assert "(see docs/homestak-compat.md#tokens)" in err and key not in out + err


def test_user_errors_exit_1_with_one_message(tmp_path: Path, monkeypatch) -> None:
    code, _, err = run_cli(["token", "inspect", "not-a-token"])
    assert code == 1 and err.startswith("error: malformed token") and "Traceback" not in err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = run_cli(["token", "inspect", "-"])
    assert code == 1 and "no token on standard input" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    token = mint_token("edge", "base", HEX_KEY)
    code, _, err = run_cli(["token", "inspect", token, "--verify", "--site-config", str(empty)])
    assert code == 1 and "has no auth.signing_key" in err
