"""Signed plans: an approver's ed25519 signature, which `apply` can insist on.

The point is that what runs is exactly what was reviewed, where it was reviewed for. A
signature sits in the plan file's header (which is not hashed), so signing never changes
the plan or its hash, and several people can sign one file. What is signed is the plan
hash, the SHA-256 of the plan's canonical body, and the header fields apply acts on
(`BOUND_HEADER_FIELDS`: the workspace, the prior state it was planned against, the
digests the inputs are checked against). The plan hash (xxh3-128) is a content address,
fast and stable, but not made to stand up to someone crafting a second body with the same
hash; SHA-256 is. So editing the body fails twice over, and pointing a signed plan at
another workspace or another prior state fails the signature, naming the field (each
signature records a digest per bound field, inside what it signs). Editing a free field
(the tool line, source positions, another signature) changes nothing apply does.

Keys are OpenSSH ed25519 keys, so `ssh-keygen -t ed25519` keys work as well as those
`pveplan keygen` makes; a trusted key is its public line (`ssh-ed25519 AAAA... name`),
as in `authorized_keys`, and is named by its `SHA256:` fingerprint, as `ssh-keygen -l`
names it. Ed25519 signatures are deterministic: the same key signs the same plan to the
same bytes on every machine, so a signed plan file stays byte-identical.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ._errors import PlanError
from ._hashing import canonical, digest
from ._planfile import BOUND_HEADER_FIELDS, PlanFile, PlanSignature

SIGNATURE_CONTEXT = b"pveplan-plan-signature/2\0"


def fingerprint(public: Ed25519PublicKey) -> str:
    """`SHA256:<base64>` of the key's OpenSSH wire form, as `ssh-keygen -l` prints it."""
    blob = base64.b64decode(public_line(public).split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def public_line(public: Ed25519PublicKey, comment: str = "") -> str:
    """The key as one OpenSSH line (`ssh-ed25519 AAAA... comment`)."""
    text = public.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    return f"{text} {comment}".strip()


def bound_scope(plan_file: PlanFile) -> dict[str, str]:
    """A digest of each bound header field's value: how a signature names what moved."""
    header = plan_file.header
    return {name: digest(canonical(getattr(header, name))) for name in BOUND_HEADER_FIELDS}


def signed_message(plan_file: PlanFile) -> bytes:
    """What a signature covers: the plan hash, the SHA-256 of the canonical body, and the
    bound header fields' values (as canonical JSON, so nothing can be spliced between)."""
    body = hashlib.sha256(canonical(plan_file.plan)).hexdigest()
    header = {name: getattr(plan_file.header, name) for name in BOUND_HEADER_FIELDS}
    return SIGNATURE_CONTEXT + canonical({"body": body, "hash": plan_file.hash, "header": header})


def generate_key_pair(path: Path, comment: str) -> str:
    """A new key at `path` (0600, OpenSSH format) and `path.pub`; the public line."""
    public_path = path.with_name(path.name + ".pub")
    for existing in (path, public_path):
        if existing.exists():
            raise PlanError.at(
                None,
                f"{existing} already exists",
                "pveplan keygen never overwrites a key: choose another file name",
            )
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    line = public_line(key.public_key(), comment)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(private)
        public_path.write_text(line + "\n")
    except OSError as exc:
        raise PlanError.at(None, f"cannot write the key {path}: {exc.strerror or exc}") from None
    return line


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An ed25519 private key from an OpenSSH or PKCS#8 PEM file (not encrypted)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PlanError.at(
            None, f"cannot read the signing key {path}: {exc.strerror or exc}"
        ) from None
    hint = "make one with `pveplan keygen FILE` (or `ssh-keygen -t ed25519 -N '' -f FILE`)"
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            key = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise PlanError.at(
            None,
            f"the signing key {path} is protected by a passphrase, which pveplan cannot ask for",
            "keep plan-signing keys unencrypted in a file only you can read (0600), "
            "or in your CI's secret store",
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise PlanError.at(None, f"{path} is not a private key pveplan can read", hint) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise PlanError.at(None, f"{path} is not an ed25519 key", hint)
    return key


def parse_public_keys(text: str, source: str) -> list[Ed25519PublicKey]:
    """Every `ssh-ed25519 ...` line of `text` (blank lines and `#` comments skipped)."""
    keys = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = serialization.load_ssh_public_key(line.encode())
        except (ValueError, UnsupportedAlgorithm):
            key = None
        if not isinstance(key, Ed25519PublicKey):
            raise PlanError.at(
                None,
                f"{source} line {number} is not an ed25519 public key",
                "a trusted key is one line as in authorized_keys: `ssh-ed25519 AAAA... name` "
                "(the .pub file `pveplan keygen` writes)",
            )
        keys.append(key)
    return keys


def trusted_keys(sources: Iterable[str], site_keys: Iterable[str]) -> list[Ed25519PublicKey]:
    """The keys to require: each `--require-signature` value (a key line, or a file of
    them) and site.yaml's `trusted_plan_keys`."""
    keys: list[Ed25519PublicKey] = []
    for source in sources:
        if source.lstrip().startswith("ssh-") and " " in source.strip():  # a key, not a path
            keys.extend(parse_public_keys(source, "--require-signature"))
            continue
        try:
            text = Path(source).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise PlanError.at(
                None, f"cannot read the public key file {source}: {reason}"
            ) from None
        found = parse_public_keys(text, source)
        if not found:
            raise PlanError.at(None, f"{source} holds no public key")
        keys.extend(found)
    for line in site_keys:
        keys.extend(parse_public_keys(line, "site.yaml trusted_plan_keys"))
    return keys


def sign(plan_file: PlanFile, key: Ed25519PrivateKey) -> PlanFile:
    """`plan_file` with `key`'s signature added (replacing an older one by the same key)."""
    own = fingerprint(key.public_key())
    signature = PlanSignature(
        key=own,
        signature=base64.b64encode(key.sign(signed_message(plan_file))).decode(),
        scope=bound_scope(plan_file),
    )
    others = [s for s in plan_file.header.signatures if s.key != own]
    signatures = tuple(sorted([*others, signature], key=lambda s: s.key))
    header = msgspec.structs.replace(plan_file.header, signatures=signatures)
    return msgspec.structs.replace(plan_file, header=header)


def require_signature(plan_file: PlanFile, keys: list[Ed25519PublicKey], name: str) -> str:
    """The fingerprint of a trusted key whose signature verifies, else a `PlanError`
    saying why not: unsigned, signed only by others, or a signature that fails."""
    trusted = {fingerprint(key): key for key in keys}
    signatures = plan_file.header.signatures
    hint = (
        "apply only plans signed after review: "
        f"`pveplan sign {name} --key KEYFILE` by a holder of a trusted key"
    )
    if not signatures:
        raise PlanError.at(
            None, f"plan file {name} is not signed, and a signature is required", hint
        )
    message = signed_message(plan_file)
    failed: list[PlanSignature] = []
    for entry in signatures:
        key = trusted.get(entry.key)
        if key is None:
            continue
        try:
            key.verify(base64.b64decode(entry.signature, validate=True), message)
        except (InvalidSignature, binascii.Error, ValueError):
            failed.append(entry)
            continue
        return entry.key
    if failed:
        raise PlanError.at(
            None,
            f"the signature of {failed[0].key} on plan file {name} does not verify: "
            + _what_moved(plan_file, failed[0]),
            "re-plan, review and sign again; never edit a signed plan file",
        )
    signers = ", ".join(s.key for s in signatures)
    raise PlanError.at(
        None,
        f"plan file {name} is signed by {signers}, none of them a trusted key "
        f"({', '.join(sorted(trusted)) or 'none'})",
        hint,
    )


def _what_moved(plan_file: PlanFile, entry: PlanSignature) -> str:
    """Why a signature fails, as precisely as its recorded scope allows."""
    if not entry.scope:
        return (
            "it was made by an older pveplan whose signatures did not cover the header "
            "(workspace, planned_against), so it cannot bind the plan to one workspace"
        )
    now = bound_scope(plan_file)
    moved = [field for field in BOUND_HEADER_FIELDS if entry.scope.get(field) != now[field]]
    if moved:
        fields = ", ".join(f"`{field}`" for field in moved)
        return f"header field(s) {fields} changed after signing"
    return "the plan is not the one that was signed"
