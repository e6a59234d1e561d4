"""A simulated PVE host's TLS certificate: self-signed, made once, kept in the host's tree.

PVE keeps a node's certificate at `/etc/pve/local/pve-ssl.pem` (key `pve-ssl.key`), so the
simulator keeps it at `hosts/NODE/etc/pve/local/` (for a nested host, its VM's tree): it
outlives daemon restarts, so a fingerprint pinned once stays right, and goes with the host
when a nested host is destroyed. Certificates are made by the daemon (one process, holding
the daemon lock) for a top-level host, and by installing PVE in a VM for a nested one (under
the state lock, before the daemon can see that host), as pve-cluster makes one at install;
anyone may read one and its fingerprint (pveplan reads a nested host's over SFTP, at
`/etc/pve/local/pve-ssl.pem` of the VM, to pin it).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

CERT = Path("etc/pve/local/pve-ssl.pem")
KEY = Path("etc/pve/local/pve-ssl.key")
VALID_DAYS = 3650
"""PVE's self-signed node certificates are valid for two years; the simulator's for ten, so
a long-lived simulator root never meets an expired one."""


def fingerprint_of(pem: bytes) -> str:
    """SHA-256 of the DER certificate as PVE shows it: `AB:CD:...` (uppercase hex)."""
    der = x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256())
    return ":".join(f"{byte:02X}" for byte in der)


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def make_certificate(node: str, address: str) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM): RSA 2048 as pve-cluster makes them, CN and SAN the node
    name and its address."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PVE Cluster Node"),
            x509.NameAttribute(NameOID.COMMON_NAME, node),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(node),
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address(address)),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def ensure_certificate(tree: Path, node: str, address: str) -> tuple[Path, Path, str]:
    """The host's (certificate path, key path, fingerprint), made first if missing or
    unreadable. The key is written before the certificate: a certificate on disk always
    has its key beside it."""
    cert_path, key_path = tree / CERT, tree / KEY
    try:
        return cert_path, key_path, fingerprint_of(cert_path.read_bytes())
    except (OSError, ValueError):
        pass
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_pem, key_pem = make_certificate(node, address)
    _write(key_path, key_pem, 0o600)
    _write(cert_path, cert_pem, 0o640)
    return cert_path, key_path, fingerprint_of(cert_pem)
