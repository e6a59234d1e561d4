"""`token inspect`: what a provisioning token says, and whether its signature holds.

A pull node that is refused (403) leaves the operator with a token and a question: is it
for this node, when was it minted, by whom (which key)? Claims are not secret (homestak's
design: tokens are signed, not encrypted), so they can be shown without a key; with the
site's `auth.signing_key` the signature is checked too, and so is everything `serve`
checks (node, version, age), so the answer says whether `serve` would take it now.

Decoding is lenient (padding optional, surrounding blanks dropped) where `check_token` is
strict, because a token pasted from a log or a cloud-init file should still be readable;
the verdict on whether it is accepted is `check_token`'s alone. Nothing here ever returns
or raises the token or the key.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
from typing import Any

import msgspec

from ._tokens import DEFAULT_TOKEN_TTL, MAX_TOKEN_LENGTH, TokenRefused, check_token, hmac_key

KNOWN_CLAIMS = {"v": "version", "n": "node", "s": "spec", "iat": "issued"}
"""homestak's v1 claims and what each means (`docs/pull.md`)."""


class TokenInspection(msgspec.Struct, frozen=True):
    """The decoded claims of a token, and, when a key was given, the verdicts."""

    claims: dict[str, Any]
    issued: str | None = None
    """`iat` as ISO 8601 UTC, when it is a number."""
    signature: str | None = None
    """"valid" or "invalid" when checked against a key; None when no key was given."""
    serve: str | None = None
    """"accepted" or why `pveplan serve` would refuse it now (a key was given)."""


def _lenient_b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def inspect_token(
    token: str,
    signing_key: str | None = None,
    *,
    now: int,
    ttl: int = DEFAULT_TOKEN_TTL,
) -> TokenInspection:
    """The claims of `token`; with `signing_key`, whether its HMAC holds and whether
    `pveplan serve` would accept it at `now`. `TokenRefused` when it does not decode."""
    token = token.strip()
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenRefused(f"malformed token: longer than {MAX_TOKEN_LENGTH} characters")
    parts = token.split(".")
    if len(parts) != 2:
        raise TokenRefused(f"malformed token: expected 2 dot-separated parts, got {len(parts)}")
    payload_b64 = parts[0]
    try:
        claims = json.loads(_lenient_b64decode(payload_b64))
    except (binascii.Error, ValueError, RecursionError):
        raise TokenRefused("malformed token: the payload is not base64url JSON") from None
    if not isinstance(claims, dict):
        raise TokenRefused("malformed token: the payload is not a JSON object")
    issued = claims.get("iat")
    when = None
    if isinstance(issued, int) and not isinstance(issued, bool):
        try:
            when = datetime.datetime.fromtimestamp(issued, tz=datetime.UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            when = None
    if signing_key is None:
        return TokenInspection(claims=claims, issued=when)
    return TokenInspection(
        claims=claims,
        issued=when,
        signature="valid" if signature_holds(token, signing_key) else "invalid",
        serve=_serve_verdict(token, signing_key, claims, now, ttl),
    )


def signature_holds(token: str, signing_key: str) -> bool:
    """Whether the token's HMAC is the one `signing_key` gives (constant-time compare)."""
    payload_b64, _, mac_b64 = token.strip().partition(".")
    try:
        actual = _lenient_b64decode(mac_b64)
        payload = payload_b64.encode("ascii")
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(hmac_key(signing_key), payload, hashlib.sha256).digest()
    return hmac.compare_digest(expected, actual)


def _serve_verdict(token: str, signing_key: str, claims: dict[str, Any], now: int, ttl: int) -> str:
    node = claims.get("n")
    if not isinstance(node, str):
        return "refused: malformed token (no node claim)"
    try:
        check_token(token.strip(), signing_key, node=node, now=now, ttl=ttl)
    except TokenRefused as refused:
        return f"refused: {refused.reason}"
    return "accepted"
