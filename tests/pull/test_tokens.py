"""Provisioning tokens: what is minted checks, and nothing else does."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pveplan.executor.pull import (
    DEFAULT_TOKEN_TTL,
    TokenClaims,
    TokenRefused,
    check_token,
    looks_like_provisioning_token,
    mint_token,
)
from pveplan.executor.pull._tokens import (
    NON_HEX_KEY_HINT,
    _b64encode,
    _mac,
    signing_key_is_hex,
)

KEY = "signing-key-for-tests"
NOW = 1_800_000_000
TOKEN = mint_token("edge", "edge-spec", KEY, now=NOW)


def refused(token: str, **kwargs: object) -> str:
    arguments: dict[str, object] = {"node": "edge", "now": NOW, **kwargs}
    with pytest.raises(TokenRefused) as caught:
        check_token(token, KEY, **arguments)  # type: ignore[arg-type]
    assert token not in caught.value.reason or len(token) < 4
    return caught.value.reason


def signed(payload: bytes, key: str = KEY) -> str:
    """A token over arbitrary payload bytes, correctly signed: tests the payload checks."""
    payload_b64 = _b64encode(payload)
    return f"{payload_b64}.{_mac(key, payload_b64)}"


def test_round_trip() -> None:
    assert check_token(TOKEN, KEY, node="edge", now=NOW + 10) == TokenClaims(
        node="edge", spec="edge-spec", issued=NOW
    )
    assert looks_like_provisioning_token(TOKEN)


def test_format_is_the_documented_one() -> None:
    payload_b64, mac_b64 = TOKEN.split(".")
    assert "=" not in TOKEN
    payload = base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4))
    assert payload == b'{"v":1,"n":"edge","s":"edge-spec","iat":1800000000}'
    assert json.loads(payload) == {"iat": NOW, "n": "edge", "s": "edge-spec", "v": 1}
    assert mac_b64 == _mac(KEY, payload_b64)


def test_other_node() -> None:
    assert refused(TOKEN, node="core") == "token for another node"


def test_other_key() -> None:
    assert refused(mint_token("edge", "s", "another-key", now=NOW)) == "bad signature"


def test_expired() -> None:
    reason = refused(TOKEN, now=NOW + DEFAULT_TOKEN_TTL + 5)
    assert reason == f"expired token (issued {DEFAULT_TOKEN_TTL + 5} s ago, lifetime 86400 s)"
    assert refused(TOKEN, now=NOW + 61, ttl=60).startswith("expired token (issued 61 s ago")
    check_token(TOKEN, KEY, node="edge", now=NOW + DEFAULT_TOKEN_TTL)


def test_future() -> None:
    assert refused(TOKEN, now=NOW - 3600) == "token issued in the future"


def test_payload_checks_behind_a_valid_signature() -> None:
    assert refused(signed(b'{"iat":1,"n":"edge","s":"x","v":2}')) == "unsupported token version"
    assert refused(signed(b'{"v":1}')) == "malformed token"
    assert refused(signed(b"[]")) == "malformed token"
    assert refused(signed(b"not json")) == "malformed token"
    assert refused(signed(b'{"iat":"1","n":"edge","s":"x","v":1}')) == "malformed token"
    assert refused(signed(b'{"iat":1,"n":"edge","s":"x","v":1,"admin":true}')) == (
        "malformed token"
    )


def test_no_key_refuses() -> None:
    with pytest.raises(TokenRefused):
        check_token(TOKEN, "", node="edge", now=NOW)
    with pytest.raises(ValueError):
        mint_token("edge", "s", "")


@pytest.mark.parametrize(
    "token",
    ["", ".", "a.", ".b", "a.b.c", "abc", "a b.c", "é.b", "a=.b", "x" * 5000 + ".y"],
)
def test_malformed(token: str) -> None:
    assert refused(token) == "malformed token"


@given(
    index=st.integers(0, len(TOKEN) - 1),
    replacement=st.characters(codec="utf-8"),
)
def test_any_substitution_is_refused(index: int, replacement: str) -> None:
    if TOKEN[index] == replacement:
        return
    mutated = TOKEN[:index] + replacement + TOKEN[index + 1 :]
    refused(mutated)


@given(index=st.integers(0, len(TOKEN)), inserted=st.text(min_size=1, max_size=3))
def test_any_insertion_is_refused(index: int, inserted: str) -> None:
    refused(TOKEN[:index] + inserted + TOKEN[index:])


@given(start=st.integers(0, len(TOKEN) - 1), length=st.integers(1, 8))
def test_any_deletion_is_refused(start: int, length: int) -> None:
    refused(TOKEN[:start] + TOKEN[start + length :])


@given(
    index=st.integers(0, len(TOKEN) - 1),
    bit=st.integers(0, 7),
)
def test_any_bit_flip_is_refused(index: int, bit: int) -> None:
    raw = bytearray(TOKEN.encode())
    raw[index] ^= 1 << bit
    refused(raw.decode("latin-1"))


@given(st.text(max_size=300))
def test_arbitrary_text_only_ever_raises_token_refused(text: str) -> None:
    refused(text)


@given(
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=80
    ),
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=80
    ),
)
def test_token_shaped_garbage_is_refused(payload: str, mac: str) -> None:
    refused(f"{payload}.{mac}")


@given(st.binary(max_size=200))
def test_signed_garbage_payloads_only_ever_raise_token_refused(payload: bytes) -> None:
    token = signed(payload)
    try:
        claims = check_token(token, KEY, node="edge", now=NOW)
    except TokenRefused:
        return
    assert claims.node == "edge"  # only a well-formed payload for this node gets through


# ---- homestak's tokens -------------------------------------------------------------------
# iac-driver mints (config_resolver._mint_provisioning_token) and verifies (server/auth.py)
# with the HMAC keyed by bytes.fromhex(auth.signing_key), over the base64url (unpadded) text
# of json.dumps({"v", "n", "s", "iat"}, separators=(",", ":")). Written out here from that
# description, sharing nothing with pveplan's code, so the two are checked against each other.

HEX_KEY = "3f" * 8 + "a1b2c3d4" * 6  # 64 hex digits, as `secrets.token_hex(32)` writes


def homestak_mint(node: str, spec: str, key_hex: str, iat: int) -> str:
    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    payload = b64(
        json.dumps({"v": 1, "n": node, "s": spec, "iat": iat}, separators=(",", ":")).encode()
    )
    signature = hmac.new(bytes.fromhex(key_hex), payload, hashlib.sha256).digest()
    return f"{payload.decode()}.{b64(signature).decode()}"


def homestak_verifies(token: str, key_hex: str) -> bool:
    payload, _, signature = token.partition(".")
    expected = hmac.new(bytes.fromhex(key_hex), payload.encode(), hashlib.sha256).digest()
    padded = signature + "=" * (-len(signature) % 4)
    return hmac.compare_digest(expected, base64.urlsafe_b64decode(padded))


def test_a_token_homestak_minted_is_accepted() -> None:
    token = homestak_mint("edge", "base", HEX_KEY, NOW)
    claims = check_token(token, HEX_KEY, node="edge", now=NOW + 60)
    assert claims == TokenClaims(node="edge", spec="base", issued=NOW)
    assert looks_like_provisioning_token(token)
    with pytest.raises(TokenRefused, match="bad signature"):
        check_token(token, "4e" * 32, node="edge", now=NOW)


@given(
    node=st.text(min_size=1, max_size=40),
    spec=st.text(max_size=40),
    iat=st.integers(0, 2**40),
    key=st.binary(min_size=1, max_size=64),
)
def test_pveplan_mints_byte_for_byte_what_homestak_mints(
    node: str, spec: str, iat: int, key: bytes
) -> None:
    key_hex = key.hex()
    ours = mint_token(node, spec, key_hex, now=iat)
    assert ours == homestak_mint(node, spec, key_hex, iat)
    assert homestak_verifies(ours, key_hex)
    assert check_token(ours, key_hex.upper(), node=node, now=iat).spec == spec


def test_a_key_that_is_not_hex_still_works_between_pveplan_ends() -> None:
    """Old pveplan keys were random text: they key the HMAC with their text (homestak would
    refuse such a key outright), so existing sites keep working."""
    assert not signing_key_is_hex(KEY)
    text_keyed = hmac.new(KEY.encode(), TOKEN.split(".")[0].encode(), hashlib.sha256).digest()
    assert TOKEN.split(".")[1] == _b64encode(text_keyed)
    assert signing_key_is_hex(HEX_KEY) and signing_key_is_hex(secrets.token_hex(32))
    assert "docs/homestak-compat.md#tokens" in NON_HEX_KEY_HINT
