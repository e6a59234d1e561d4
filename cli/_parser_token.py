"""The parser of `pveplan token`: homestak's `./run.sh token inspect TOKEN [--verify]`.

iac-driver has `token inspect` and no other token action (minting happens inside create),
so pveplan has the same one. Its examples read the token from a file or standard input,
so a token never has to be typed where `ps` and shell history would keep it.
"""

from __future__ import annotations

import argparse

from ._parser import add_action, add_command


def add_token_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """token inspect."""
    examples = (
        "pveplan token inspect - < /root/.pveplan/pull/token",
        "pveplan token inspect - --verify --site-config examples/site-config < token.txt",
        'pveplan token inspect "$(cat token.txt)" --json',
    )
    token = add_command(
        commands,
        "token",
        help="decode a provisioning token and check its signature",
        description="Provisioning tokens (what a pull node presents to `pveplan serve`): "
        "`inspect` shows a token's claims (node, spec, when it was minted); with --verify "
        "it checks the HMAC against the site config's auth.signing_key and says whether "
        "`pveplan serve` would accept the token now. Exit 1 when the token does not decode "
        "or, with --verify, when its signature does not hold. See docs/pull.md.",
        examples=examples,
    )
    actions = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    inspect = add_action(
        actions,
        "token",
        "inspect",
        help="show a token's claims; --verify checks it",
        examples=examples,
    )
    inspect.add_argument("token", metavar="TOKEN", help="the token, or - to read it from stdin")
    inspect.add_argument(
        "--verify",
        action="store_true",
        help="check the signature with the site config's auth.signing_key",
    )
    inspect.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    inspect.add_argument(
        "--site-config", metavar="DIR", help="the site config holding the signing key (--verify)"
    )
