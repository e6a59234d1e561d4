"""TLS for PVE's API: the system's CAs, or one certificate pinned by its SHA-256 fingerprint.

PVE hosts mostly serve a self-signed certificate (`pve-ssl.pem`, signed by the cluster's
own CA), which no public CA vouches for. A node file may therefore pin the certificate
itself (`api_fingerprint`, in the form `pvenode cert info` and the web UI print). Pinning
replaces CA and host-name checks by an exact match, and the match is made **inside the
TLS handshake**: `PinnedContext` makes every connection's `SSLObject` compare the peer's
certificate the moment the handshake completes, and fail the handshake on a mismatch. An
HTTP client writes a request only on a connection whose handshake succeeded, so the API
token never reaches a peer that is not the pinned one, whichever client or network
backend (trio's SSLStream, anyio's TLS stream) drives the handshake: they all make their
`SSLObject`s with `context.wrap_bio`, which takes `sslobject_class`.

Without a pin the context is Python's default: the system's CAs and the host name, the
same as any browser would check. There is no third, "insecure", mode.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl

from .._errors import ExecutorError

__all__ = ["PinMismatch", "PinnedContext", "api_ssl_context", "cert_fingerprint"]


def cert_fingerprint(der: bytes) -> str:
    """A DER certificate's SHA-256 fingerprint as PVE and openssl print it ("AB:CD:...")."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


class PinMismatch(ExecutorError, ssl.SSLCertVerificationError):
    """The peer's certificate is not the pinned one; the handshake failed, nothing was sent.

    An SSLError, so every TLS stack treats it as the failed handshake it is; the transport
    finds it in the chain of the client's error and says which fingerprints differ."""

    def __init__(self, presented: str, pinned: str) -> None:
        super().__init__(f"certificate {presented} is not the pinned {pinned}")
        self.presented = presented
        self.pinned = pinned


class _PinnedSSLObject(ssl.SSLObject):
    """An SSLObject whose handshake completes only with the pinned certificate."""

    def do_handshake(self) -> None:
        super().do_handshake()  # SSLWantReadError etc. until the handshake is done
        context = self.context
        assert isinstance(context, PinnedContext)
        der = self.getpeercert(binary_form=True)
        presented = cert_fingerprint(der) if der else "(no certificate)"
        if not hmac.compare_digest(presented, context.pin):
            raise PinMismatch(presented, context.pin)


class PinnedContext(ssl.SSLContext):
    """A client context that trusts exactly one certificate, by fingerprint (see the
    module doc). CA and name checks are off because the pin is stronger than both: it names
    the one certificate, and it is checked before the handshake may complete."""

    pin: str
    sslobject_class = _PinnedSSLObject  # type: ignore[assignment]

    def __new__(cls, pin: str) -> PinnedContext:
        context = super().__new__(cls, ssl.PROTOCOL_TLS_CLIENT)
        context.pin = pin
        return context

    def __init__(self, pin: str) -> None:
        self.check_hostname = False
        self.verify_mode = ssl.CERT_NONE  # the pin, checked in the handshake, verifies
        self.minimum_version = ssl.TLSVersion.TLSv1_2

    def wrap_socket(self, *args: object, **kwargs: object) -> ssl.SSLSocket:
        # SSLSocket has no sslobject_class: a blocking client would skip the pin.
        raise TypeError("a PinnedContext checks its pin only on SSLObjects (wrap_bio)")


def api_ssl_context(pin: str | None) -> ssl.SSLContext:
    """The context for one PVE API endpoint: pinned to `pin` (a normalised fingerprint),
    else the system's CAs with host-name checks."""
    if pin:
        return PinnedContext(pin)
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
