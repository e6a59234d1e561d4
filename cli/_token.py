"""`pveplan token inspect`: decode a provisioning token, and with --verify check it.

The decoding and the verdicts are the executor's (`inspect_token`); this module finds the
signing key (the site config, discovered as every command does), reads the token (an
argument or standard input) and renders the result as homestak's `token inspect` lays it
out, or as JSON. The token and the key are never printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from pveplan.planner import PlanError

if TYPE_CHECKING:
    from pveplan.executor import TokenInspection

    from . import Console

SIGNING_KEY = "auth.signing_key"
TTL_HINT = "pveplan serve refuses tokens older than a day (see docs/homestak-compat.md#tokens)"


def run_token(args: argparse.Namespace, console: Console) -> int:
    from pveplan.executor import TokenRefused, inspect_token

    token = _read_token(args.token)
    key = _signing_key(args, console) if args.verify else None
    try:
        result = inspect_token(token, key, now=int(time.time()))
    except TokenRefused as refused:
        console.error(f"error: {refused.reason}")
        return 1
    if args.json:
        console.print(json.dumps(_as_json(result), indent=2, sort_keys=True))
    else:
        _render(result, console)
    if result.serve and result.serve.startswith("refused: expired"):
        console.error(f"hint: {TTL_HINT}")
    return 0 if result.signature in (None, "valid") else 1


def _read_token(given: str) -> str:
    if given != "-":
        return given
    text = sys.stdin.read(8192)
    if not text.strip():
        raise PlanError.at(None, "no token on standard input", "pipe the token in, or give it")
    return text


def _signing_key(args: argparse.Namespace, console: Console) -> str:
    from pveplan.executor import NON_HEX_KEY_HINT, signing_key_is_hex
    from pveplan.planner import SecretRef, discover_site_config, load_site_config

    site = load_site_config(discover_site_config(args.site_config, console.env, console.cwd))
    ref = SecretRef(name=SIGNING_KEY)
    if not site.secrets.has(ref):
        raise PlanError.at(
            None,
            f"{site.secrets.path} has no {SIGNING_KEY}: there is nothing to verify against",
            "inspect without --verify, or add the key the tokens were minted with",
        )
    key = site.secrets.reveal(ref)
    if not signing_key_is_hex(key):
        console.error(f"hint: {NON_HEX_KEY_HINT}")
    return key


def _as_json(result: TokenInspection) -> dict[str, Any]:
    return {
        "claims": result.claims,
        "issued": result.issued,
        "signature": result.signature,
        "serve": result.serve,
    }


def _render(result: TokenInspection, console: Console) -> None:
    claims = result.claims
    console.print("Claims:")
    console.print(f"  version (v):   {claims.get('v', '?')}")
    console.print(f"  node    (n):   {claims.get('n', '?')}")
    console.print(f"  spec    (s):   {claims.get('s', '?')}")
    issued = claims.get("iat")
    if issued is None:
        console.print("  issued  (iat): (not set)")
    else:
        console.print(
            f"  issued  (iat): {issued}" + (f" ({result.issued})" if result.issued else "")
        )
    for name, value in claims.items():
        if name not in ("v", "n", "s", "iat"):
            console.print(f"  {name}: {value}")
    if result.signature is None:
        return
    console.print("")
    console.print(f"Signature: {result.signature.upper()}")
    console.print(f"serve:     {result.serve}")
