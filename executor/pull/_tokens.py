"""Provisioning tokens: short-lived, per-node credentials the driver mints for pull mode.

A VM that pulls its spec needs something to prove it is the node it claims to be. The
driver holds `auth.signing_key` and mints, for each node it provisions, a token naming that
node and its spec; the spec server checks the signature, the node and the age, so a token
copied off one VM opens nothing but that node's own spec, and only for `DEFAULT_TOKEN_TTL`.

Wire format: homestak's (iac-driver's `_mint_provisioning_token`), byte for byte, so a
token either side mints opens the other side's server. No JWT library, no algorithm field
an attacker could choose:

    base64url(payload) "." base64url(HMAC-SHA256(key, payload_b64))

base64url without padding; the payload is compact JSON in homestak's key order, non-ASCII
escaped as `\\uXXXX` (Python's `json.dumps(..., separators=(",", ":"))`):
`{"v":1,"n":<node>,"s":<spec>,"iat":<unix seconds>}`. The MAC covers the payload's
*encoded* text, so any change to the token's bytes is caught before the payload is parsed.

The HMAC key is `auth.signing_key` hex-decoded (homestak writes 32 random bytes as 64 hex
digits). A key that is not hex (pveplan once suggested random text) keys the HMAC with its
UTF-8 text instead: such tokens work between pveplan's own driver and server, but homestak
cannot verify them (its server answers 500), hence `NON_HEX_KEY_HINT`.

A refused token raises `TokenRefused` whose reason is short and safe to log: it never holds
the token or the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time

import msgspec

from pveplan.executor._errors import ExecutorError

TOKEN_VERSION = 1
DEFAULT_TOKEN_TTL = 86400
"""Seconds a provisioning token stays valid after it was minted."""
CLOCK_SKEW = 300
"""Seconds a token may seem to come from the future (the minting clock runs ahead) and still
be accepted; anything further ahead is refused."""
MAX_TOKEN_LENGTH = 4096
"""Longer inputs are refused unparsed: a real token is a few hundred bytes."""
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
NON_HEX_KEY_HINT = (
    "auth.signing_key is not hex, so homestak's tools cannot verify the tokens it signs; "
    "make one with python3 -c 'import secrets; print(secrets.token_hex(32))' "
    "(see docs/homestak-compat.md#tokens)"
)


class TokenRefused(ExecutorError):
    """A token was not accepted; `reason` (also `str(error)`) says why, without the token."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class TokenClaims(msgspec.Struct, frozen=True):
    """What an accepted token vouches for: the node, its spec, and when it was minted."""

    node: str
    spec: str
    issued: int


class _Payload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The signed JSON. Fields other than `v` are optional here only so that a token of
    another version is reported as such rather than as malformed."""

    v: int
    iat: int | None = None
    n: str | None = None
    s: str | None = None


_payload_decoder = msgspec.json.Decoder(_Payload)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict base64url: only the alphabet, no padding, and canonical (re-encodes the same),
    so two different strings never decode to the same bytes."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None
    if _b64encode(data) != text:
        raise ValueError("not canonical base64url")
    return data


def signing_key_is_hex(signing_key: str) -> bool:
    """Whether homestak can use `signing_key`: it must be hex (`bytes.fromhex` accepts it)."""
    try:
        return bool(bytes.fromhex(signing_key))
    except ValueError:
        return False


def hmac_key(signing_key: str) -> bytes:
    """The bytes that key the HMAC: the hex-decoded key as homestak does, or, for a key
    that is not hex, its UTF-8 text (see the module docstring and `NON_HEX_KEY_HINT`)."""
    try:
        key = bytes.fromhex(signing_key)
    except ValueError:
        key = b""
    return key or signing_key.encode("utf-8")


def _mac(signing_key: str, payload_b64: str) -> str:
    digest = hmac.new(hmac_key(signing_key), payload_b64.encode("ascii"), hashlib.sha256)
    return _b64encode(digest.digest())


def payload_json(node: str, spec: str, issued: int) -> bytes:
    """The payload exactly as homestak writes it (key order, separators, ASCII escapes)."""
    claims = {"v": TOKEN_VERSION, "n": node, "s": spec, "iat": issued}
    return json.dumps(claims, separators=(",", ":")).encode("ascii")


def mint_token(node: str, spec: str, signing_key: str, *, now: int | None = None) -> str:
    """A provisioning token for `node` (whose spec is `spec`), issued `now` (default: now)."""
    if not signing_key:
        raise ValueError("cannot mint a provisioning token without a signing key")
    if not node:
        raise ValueError("cannot mint a provisioning token for an empty node name")
    issued = int(time.time()) if now is None else int(now)
    payload_b64 = _b64encode(payload_json(node, spec, issued))
    return f"{payload_b64}.{_mac(signing_key, payload_b64)}"


def looks_like_provisioning_token(token: str) -> bool:
    """Whether `token` has the shape of a provisioning token (two base64url parts joined by
    one '.'); says nothing of its validity. Lets the server tell a provisioning token from
    a static one before checking either."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        return False
    payload_b64, mac_b64 = token.split(".")
    return bool(_B64URL.fullmatch(payload_b64) and _B64URL.fullmatch(mac_b64))


def check_token(
    token: str,
    signing_key: str,
    *,
    node: str,
    now: int | None = None,
    ttl: int = DEFAULT_TOKEN_TTL,
) -> TokenClaims:
    """The claims of `token` if it is a valid provisioning token for `node`, minted with
    `signing_key` no longer than `ttl` seconds before `now`; else `TokenRefused`.

    The signature is checked (in constant time) before the payload is parsed: nothing an
    attacker wrote is interpreted unless it was signed with the key.
    """
    if not signing_key:
        raise TokenRefused("no signing key to check the token against")
    if not looks_like_provisioning_token(token) or not token.isascii():
        raise TokenRefused("malformed token")
    payload_b64, mac_b64 = token.split(".")
    try:
        _b64decode(mac_b64)
        payload_json = _b64decode(payload_b64)
    except ValueError:
        raise TokenRefused("malformed token") from None
    if not hmac.compare_digest(_mac(signing_key, payload_b64).encode(), mac_b64.encode()):
        raise TokenRefused("bad signature")
    try:
        payload = _payload_decoder.decode(payload_json)
    except msgspec.DecodeError:
        raise TokenRefused("malformed token") from None
    if payload.v != TOKEN_VERSION:
        raise TokenRefused("unsupported token version")
    if payload.iat is None or payload.n is None or payload.s is None:
        raise TokenRefused("malformed token")
    if not hmac.compare_digest(payload.n.encode("utf-8"), node.encode("utf-8")):
        raise TokenRefused("token for another node")
    current = int(time.time()) if now is None else int(now)
    age = current - payload.iat
    if age < -CLOCK_SKEW:
        raise TokenRefused("token issued in the future")
    if age > ttl:
        raise TokenRefused(f"expired token (issued {age} s ago, lifetime {ttl} s)")
    return TokenClaims(node=payload.n, spec=payload.s, issued=payload.iat)
