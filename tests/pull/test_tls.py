"""The server certificate: it loads in ssl, and fingerprints are read in every usual form."""

from __future__ import annotations

import hashlib
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from pveplan.executor.pull import (
    client_context,
    fingerprint,
    generate_certificate,
    load_or_create_certificate,
    normalize_fingerprint,
    server_context,
)

from ._support import CANARY, CERT, KEY, OTHER_CERT


def test_generated_certificate_loads_and_names_its_hosts() -> None:
    cert_pem, key_pem = generate_certificate("spec", hosts=("10.0.0.5", "driver.lan", "::1"))
    context = server_context(cert_pem, key_pem)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.5"),
        ipaddress.ip_address("::1"),
    ]
    assert sans.get_values_for_type(x509.DNSName) == ["driver.lan"]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime.days >= 3650
    assert b"PRIVATE KEY" in key_pem


def test_client_context_does_not_verify_against_cas() -> None:
    context = client_context()
    assert context.verify_mode == ssl.CERT_NONE
    assert not context.check_hostname


def test_mismatched_key_is_refused_without_quoting_it() -> None:
    with pytest.raises(ValueError) as caught:
        server_context(OTHER_CERT, KEY)
    assert "PRIVATE" not in str(caught.value)


def test_fingerprint_pem_and_der_agree() -> None:
    der = ssl.PEM_cert_to_DER_cert(CERT.decode())
    expected = hashlib.sha256(der).hexdigest().upper()
    assert fingerprint(CERT) == fingerprint(der)
    assert fingerprint(CERT).replace(":", "") == expected
    assert len(fingerprint(CERT).split(":")) == 32
    assert fingerprint(CERT) != fingerprint(OTHER_CERT)


@given(
    digest=st.binary(min_size=32, max_size=32),
    upper=st.booleans(),
    colons=st.booleans(),
    prefix=st.sampled_from(
        ["", "sha256:", "SHA256:", "SHA256 Fingerprint=", "sha256 fingerprint="]
    ),
    padding=st.sampled_from(["", " ", "\n", "  \t"]),
)
def test_fingerprint_formats_normalize(
    digest: bytes, upper: bool, colons: bool, prefix: str, padding: str
) -> None:
    canonical = ":".join(f"{byte:02X}" for byte in digest)
    text = digest.hex()
    if colons:
        text = ":".join(text[i : i + 2] for i in range(0, 64, 2))
    text = padding + prefix + (text.upper() if upper else text) + padding
    assert normalize_fingerprint(text) == canonical
    assert normalize_fingerprint(canonical) == canonical


@pytest.mark.parametrize(
    "text",
    ["", "AB:CD", "0" * 63, "0" * 65, "g" * 64, "md5:" + "0" * 64, "AB" + ":AB" * 30, "A:B" * 32],
)
def test_bad_fingerprints_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a SHA-256 certificate fingerprint"):
        normalize_fingerprint(text)


@given(st.text(max_size=120))
def test_normalize_accepts_only_fingerprints(text: str) -> None:
    try:
        result = normalize_fingerprint(text)
    except ValueError:
        return
    assert len(result) == 95 and normalize_fingerprint(result) == result


def test_a_bad_fingerprint_is_not_quoted() -> None:
    with pytest.raises(ValueError) as caught:
        normalize_fingerprint(f"a token pasted here {CANARY}")
    assert CANARY not in str(caught.value)


def test_load_or_create_certificate_keeps_the_first() -> None:
    secrets: dict[str, bytes] = {}
    cert, key, created = load_or_create_certificate(secrets.get, secrets.__setitem__)
    assert created
    assert secrets == {"serve/tls-cert": cert, "serve/tls-key": key}
    again = load_or_create_certificate(secrets.get, secrets.__setitem__)
    assert again == (cert, key, False)
    as_text = {name: value.decode() for name, value in secrets.items()}
    assert load_or_create_certificate(as_text.get, as_text.__setitem__)[:2] == (cert, key)


def test_load_or_create_certificate_refuses_a_broken_pair() -> None:
    secrets = {"serve/tls-cert": OTHER_CERT, "serve/tls-key": KEY}
    with pytest.raises(ValueError, match="delete both secrets"):
        load_or_create_certificate(secrets.get, secrets.__setitem__)
    assert secrets["serve/tls-cert"] == OTHER_CERT


def test_load_or_create_certificate_with_the_store(tmp_path: object) -> None:
    from pathlib import Path

    from pveplan.store import open_store

    with open_store(Path(str(tmp_path)) / "store") as store:
        first = load_or_create_certificate(store.get_secret, store.put_secret)
        second = load_or_create_certificate(store.get_secret, store.put_secret)
    assert first[2] and not second[2] and first[:2] == second[:2]
