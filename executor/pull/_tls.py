"""The spec server's TLS certificate: made once, kept in the store, pinned by the nodes.

Pull-mode nodes cannot check the driver's certificate against a CA (the driver is a laptop
or a lab box, with no name a CA would sign), so they pin it instead: the driver generates a
self-signed certificate once, keeps it with its secrets, and hands each node the SHA-256
fingerprint of it (in cloud-init, with the token). The client compares the fingerprint of
whatever the server presents before sending a byte of its request, so a token never goes to
a server that is not the driver. Hence `client_context` does not verify against CAs: the pin
is the verification.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import re
import ssl
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

# cryptography is imported by the two functions that need it, not with every run.

CERT_SECRET = "serve/tls-cert"
KEY_SECRET = "serve/tls-key"
VALIDITY = datetime.timedelta(days=3650)
_HEX64 = re.compile(r"[0-9A-Fa-f]{64}")
_PAIRS = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31}")
_PREFIXES = ("sha256 fingerprint=", "sha256fingerprint=", "sha256:", "sha256=")


def generate_certificate(
    common_name: str = "pveplan spec server",
    *,
    hosts: Sequence[str] = ("127.0.0.1", "localhost"),
) -> tuple[bytes, bytes]:
    """A new self-signed certificate and its key, both PEM: ECDSA P-256 (what every TLS
    stack, Python's ssl included, speaks), valid ten years from yesterday (a node whose clock
    lags still accepts it), with a SAN per host (IP addresses as IP SANs). Clients pin the
    fingerprint, so the names are informative; they keep tools like curl happy."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    sans: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem


def _der(cert_pem_or_der: bytes) -> bytes:
    if cert_pem_or_der.lstrip().startswith(b"-----BEGIN"):
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        try:
            cert = x509.load_pem_x509_certificate(cert_pem_or_der)
        except ValueError:
            raise ValueError("the PEM text is not a valid X.509 certificate") from None
        return cert.public_bytes(serialization.Encoding.DER)
    return bytes(cert_pem_or_der)


def _colons(hex_digits: str) -> str:
    upper = hex_digits.upper()
    return ":".join(upper[i : i + 2] for i in range(0, len(upper), 2))


def fingerprint(cert_pem_or_der: bytes) -> str:
    """The certificate's SHA-256 fingerprint as openssl prints it ("AB:CD:...", 32 pairs).
    PEM input is hashed as its DER, so both forms of one certificate agree."""
    return _colons(hashlib.sha256(_der(cert_pem_or_der)).hexdigest())


def normalize_fingerprint(text: str) -> str:
    """`text` as an uppercase colon-separated SHA-256 fingerprint.

    Accepts what people paste: "AB:CD:..." in any case, 64 bare hex digits, with or without
    a "sha256:" or openssl's "SHA256 Fingerprint=" in front. Anything else is a ValueError
    (its message does not repeat the input: a token pasted into the wrong field stays out of
    error output).
    """
    value = text.strip()
    lowered = value.lower()
    for prefix in _PREFIXES:
        if lowered.startswith(prefix):
            value = value[len(prefix) :].strip()
            break
    if _HEX64.fullmatch(value):
        return _colons(value)
    if _PAIRS.fullmatch(value):
        return value.upper()
    raise ValueError(
        "not a SHA-256 certificate fingerprint: expected 64 hex digits, bare or as 32"
        ' colon-separated pairs ("AB:CD:..."), optionally after "sha256:"'
        f" (got {len(text)} characters)"
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A server-side context (TLS 1.2 or later) serving this certificate.

    `load_cert_chain` only reads files, so the PEMs are written for the moment into a
    private temporary directory (0700, files 0600) that is removed before returning.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    # No TLS 1.3 session tickets: clients keep a connection alive rather than resume one,
    # and unasked-for tickets cost the server a write (and a stall) per handshake.
    context.num_tickets = 0
    with tempfile.TemporaryDirectory(prefix="pveplan-tls-") as tmp:
        os.chmod(tmp, 0o700)
        cert_path, key_path = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        _write_private(cert_path, cert_pem)
        _write_private(key_path, key_pem)
        try:
            context.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            raise ValueError(
                f"the spec server's certificate or key does not load ({exc.reason or 'invalid'})"
            ) from None
    return context


def client_context() -> ssl.SSLContext:
    """A client context that does not check the server against CAs or names: the caller
    pins the certificate's fingerprint itself, right after the handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("ascii") if isinstance(value, str) else bytes(value)


def load_or_create_certificate(
    read: Callable[[str], bytes | str | None],
    write: Callable[[str, bytes], None],
    *,
    hosts: Sequence[str] = ("127.0.0.1", "localhost"),
) -> tuple[bytes, bytes, bool]:
    """The spec server's certificate and key from the secrets "serve/tls-cert" and
    "serve/tls-key" (read with `read`, e.g. `store.get_secret`), generated and stored with
    `write` (e.g. `store.put_secret`) when either is missing (with SANs for `hosts`). Returns (cert PEM, key PEM,
    created). The certificate must outlive any one run: nodes pin its fingerprint.

    A stored pair that does not load is an error, not a reason to make a new one silently:
    every node pinned to the old fingerprint would stop trusting the driver.
    """
    cert, key = read(CERT_SECRET), read(KEY_SECRET)
    if cert is not None and key is not None:
        cert_pem, key_pem = _as_bytes(cert), _as_bytes(key)
        try:
            server_context(cert_pem, key_pem)
        except ValueError:
            raise ValueError(
                f"the stored spec server certificate ({CERT_SECRET}, {KEY_SECRET}) does not"
                " load; delete both secrets to generate a new one (pull-mode nodes must then"
                " be given the new fingerprint)"
            ) from None
        return cert_pem, key_pem, False
    cert_pem, key_pem = generate_certificate(hosts=hosts)
    write(KEY_SECRET, key_pem)
    write(CERT_SECRET, cert_pem)
    return cert_pem, key_pem, True
