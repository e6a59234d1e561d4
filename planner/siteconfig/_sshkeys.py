"""Is a secrets.yaml `ssh_keys` value an SSH public key? Checked by parsing, never echoed.

cloud-init and PVE copy a key into `authorized_keys` as they find it, so a value that is
not one key line (a typo, a wrapped line, a private key pasted by mistake) used to pass
`validate` and fail, or lock everybody out, at apply. `key_problem` says what is wrong
in words that quote nothing of the value: the value may be a private key, and the
message goes to terminals, logs and CI output. Only the fixed names of key types are
ever shown.

ssh-ed25519, ssh-rsa and ecdsa-sha2-* keys are parsed by cryptography's
`load_ssh_public_key` (the key must be a real point or modulus); security-key types
(`sk-*@openssh.com`), which cryptography does not load, get a format check of their wire
fields. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import struct

PARSED_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)
"""Key types parsed in full by cryptography."""

SK_TYPES = {
    "sk-ssh-ed25519@openssh.com": 2,  # public key, application
    "sk-ecdsa-sha2-nistp256@openssh.com": 3,  # curve name, point, application
}
"""Security-key types (FIDO), checked by format: the number of wire fields after the type."""

KEY_TYPES = (*PARSED_TYPES, *SK_TYPES)

MIN_RSA_BITS = 1024
"""OpenSSH refuses RSA keys shorter than this (since 8.8), so cloud-init's copy would be dead."""

_PRIVATE_MARKERS = ("PRIVATE KEY", "PuTTY-User-Key-File", "b3BlbnNzaC1rZXktdjE")
"""Text only a private key holds: a PEM/OpenSSH header, PuTTY's .ppk header, or the base64
of `openssh-key-v1` that opens an OpenSSH private key's body (pasted without its header)."""

PUBLIC_HINT = (
    "write the one line of the key's .pub file, quoted: "
    '"ssh-ed25519 AAAA... comment" (`cat ~/.ssh/id_ed25519.pub`)'
)


def key_problem(value: str) -> tuple[str, str] | None:
    """(what is wrong, how to fix it) for a value that is not one SSH public key line;
    None for a good key. Neither part quotes anything of `value`."""
    if any(marker in value for marker in _PRIVATE_MARKERS):
        return (
            "is a private key, not a public key",
            "put the public half here (the .pub file); remove the private key from "
            "secrets.yaml, and treat it as exposed if the file was shared or committed",
        )
    if "\n" in value or "\r" in value:
        return (
            "spans more than one line",
            "a public key is one line: join the pieces, and quote the value "
            '("ssh-ed25519 AAAA... comment") rather than writing a YAML block (| or >)',
        )
    words = value.split()
    if not words:
        return "is blank", PUBLIC_HINT
    kind = words[0]
    if kind not in KEY_TYPES:
        if kind.startswith("-----BEGIN") or kind.startswith("----"):
            return (
                "is a PEM or RFC 4716 key file, not an OpenSSH public key line",
                "convert it with `ssh-keygen -i -f FILE` (or `-i -m PKCS8`) and write that line",
            )
        return (
            "does not start with a key type",
            "its first word must be one of: " + ", ".join(KEY_TYPES) + "; " + PUBLIC_HINT,
        )
    if len(words) < 2:
        return f"has no key data after its type {kind}", PUBLIC_HINT
    try:
        blob = base64.b64decode(words[1], validate=True)
    except (binascii.Error, ValueError):
        return "has key data that is not valid base64", "copy the key again from its .pub file"
    fields = _wire_strings(blob)
    if fields is None or not fields:
        return (
            f"has key data that is not an SSH {kind} key",
            "copy the key again from its .pub file",
        )
    inner = fields[0].decode("ascii", "replace")
    if inner != kind:
        named = inner if inner in KEY_TYPES else "another type"
        return (
            f"says {kind} but its key data is {named}",
            "the type word and the key data must come from the same .pub line",
        )
    if kind in SK_TYPES:
        if len(fields) != 1 + SK_TYPES[kind] or any(not f for f in fields):
            return f"has key data that is not a well-formed {kind} key", "copy the key again"
        return None
    return _parsed_problem(kind, f"{kind} {words[1]}".encode())


def _parsed_problem(kind: str, line: bytes) -> tuple[str, str] | None:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    try:
        key = load_ssh_public_key(line)
    except (ValueError, UnsupportedAlgorithm):
        return (
            f"has key data that does not parse as an {kind} key",
            "it is damaged (a character changed or lost): copy the key again from its .pub file",
        )
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return (
            f"is a {key.key_size}-bit RSA key, which OpenSSH refuses",
            f"use an ed25519 key (ssh-keygen -t ed25519), or RSA of at least {MIN_RSA_BITS} bits",
        )
    return None


def _wire_strings(blob: bytes) -> list[bytes] | None:
    """The SSH wire-format strings (uint32 length + bytes) of `blob`; None if it is not
    made of them exactly."""
    out: list[bytes] = []
    at = 0
    while at < len(blob):
        if at + 4 > len(blob):
            return None
        (size,) = struct.unpack(">I", blob[at : at + 4])
        at += 4
        if at + size > len(blob):
            return None
        out.append(blob[at : at + size])
        at += size
    return out
