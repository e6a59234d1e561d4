"""`pveplan keygen` and `pveplan sign`: plan-signing keys, and approving a plan file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pveplan.planner import (
    PlanError,
    encode_plan_file,
    fingerprint,
    generate_key_pair,
    load_private_key,
    read_plan_file,
    sign,
)

from ._fmt import write_atomic

if TYPE_CHECKING:
    from . import Console


def run_keygen(args: argparse.Namespace, console: Console) -> int:
    path = Path(args.file)
    line = generate_key_pair(path, args.comment)
    console.print(
        f"Wrote the private key to {path} (keep it secret) and the public key to {path}.pub:"
    )
    console.print(line)
    console.print(
        "Trust it with `apply --require-signature "
        + f"{path}.pub` or in site.yaml's trusted_plan_keys."
    )
    return 0


def run_sign(args: argparse.Namespace, console: Console) -> int:
    path = Path(args.file)
    plan_file = read_plan_file(path)  # verified: a damaged or edited body is not signed
    key = load_private_key(Path(args.key))
    signed = sign(plan_file, key)
    try:
        write_atomic(path, encode_plan_file(signed).decode())
    except OSError as exc:
        raise PlanError.at(None, f"cannot write {path}: {exc.strerror or exc}") from None
    console.print(f"Signed plan {signed.hash} in {path} with {fingerprint(key.public_key())}.")
    return 0
