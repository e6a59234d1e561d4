"""SSH keys pveplan makes: the driver's client key and each VM's host key (ed25519).

A VM's host key is generated here, before the VM exists, and given to it through
cloud-init, so the first SSH connection already verifies a key we know: there is no
trust-on-first-use anywhere. Private halves live in the store's secrets table only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # cryptography loads when a key is first made or read, not with pveplan
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def generate_ed25519(comment: str = "") -> tuple[bytes, str]:
    """A new key pair: (private key in OpenSSH format, public key as one OpenSSH line)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    return private, _public_line(key, comment)


def public_line(private: bytes, comment: str = "") -> str:
    """The OpenSSH public line of an OpenSSH private key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = serialization.load_ssh_private_key(private, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("expected an ed25519 key")
    return _public_line(key, comment)


def _public_line(key: Ed25519PrivateKey, comment: str) -> str:
    from cryptography.hazmat.primitives import serialization

    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    return f"{public} {comment}".strip()


def same_key(a: str, b: str) -> bool:
    """Whether two OpenSSH public lines hold the same key (comments aside)."""
    return a.split()[:2] == b.split()[:2]
