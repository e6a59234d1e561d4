"""Keyed digests of the secrets a plan names: the one place they are computed.

A plan never holds a secret's value, only its name and HMAC-SHA256 under the site's
`auth.signing_key` (`SecretUse`), so a changed secret changes the steps that use it.
The compiler, the spec server's catalog and `apply FILE`'s moved-inputs check all need
the same digests from the same site, so they share this.
"""

from __future__ import annotations

from collections.abc import Callable

from ._errors import PlanError
from ._hashing import secret_digest
from ._plan import SecretUse
from .siteconfig import SecretRef

SIGNING_KEY = "auth.signing_key"

Reveal = Callable[[SecretRef], str]


class SecretDigests:
    """Digests of one site's secrets, each computed once (many nodes share keys)."""

    def __init__(self, reveal: Reveal) -> None:
        self._reveal = reveal
        self._signing_key: str | None = None
        self._uses: dict[str, SecretUse] = {}

    def signing_key(self) -> str:
        if self._signing_key is None:
            try:
                self._signing_key = self._reveal(SecretRef(name=SIGNING_KEY))
            except PlanError:
                raise PlanError.at(
                    None,
                    "secrets.yaml has no auth.signing_key, which plans need to digest secrets",
                    "add one as homestak writes it, 64 hex digits: auth: {signing_key: ...}, "
                    "from python3 -c 'import secrets; print(secrets.token_hex(32))'",
                ) from None
        return self._signing_key

    def use(self, name: str) -> SecretUse:
        """The secret `name` as a plan holds it; `PlanError` if it is not defined."""
        use = self._uses.get(name)
        if use is None:
            value = self._reveal(SecretRef(name=name))
            use = self._uses[name] = SecretUse(
                name=name, digest=secret_digest(self.signing_key(), value)
            )
        return use
