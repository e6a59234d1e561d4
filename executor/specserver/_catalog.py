"""What the spec server serves: one published spec per node, and the secrets to check
who asks. The caller builds it from the site config; the server only reads it.

Both Structs hold secrets (documents carry secret values, plus tokens and the signing key),
so their reprs name identities only: a catalog that ends up in a log line, a traceback or a
test failure shows which nodes it serves and nothing else.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from pveplan.executor._errors import ExecutorError
from pveplan.executor.pull._tokens import DEFAULT_TOKEN_TTL

AuthMethod = Literal["network", "site_token", "node_token"]


class PublishedSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One node's spec as served by `GET /spec/{identity}`.

    `auth_method` says what a request for it must present: nothing (`network`: the network
    is trusted), the site token, or the node's own token; a valid provisioning token for the
    node is accepted in both token postures. `document` is the exact body served.
    """

    identity: str
    spec_name: str
    auth_method: AuthMethod
    spec_hash: str
    document: bytes

    def __repr__(self) -> str:
        return (
            f"PublishedSpec(identity={self.identity!r}, spec_name={self.spec_name!r},"
            f" auth_method={self.auth_method!r}, spec_hash={self.spec_hash[:12]!r},"
            f" document=<{len(self.document)} bytes>)"
        )


class Catalog(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one server generation serves; replaced whole on reload.

    `conflicts` maps identities that cannot be served to why (two manifests define the
    node differently); `site_token`, `node_tokens` and `signing_key` are the secrets
    requests are checked against (`None`/absent: that kind of token is refused).
    """

    specs: dict[str, PublishedSpec]
    conflicts: dict[str, str] = {}
    site_token: str | None = None
    node_tokens: dict[str, str] = {}
    signing_key: str | None = None
    token_ttl: int = DEFAULT_TOKEN_TTL

    def __repr__(self) -> str:
        return (
            f"Catalog(specs={sorted(self.specs)!r}, conflicts={sorted(self.conflicts)!r},"
            f" site_token={'<set>' if self.site_token else None},"
            f" node_tokens={sorted(self.node_tokens)!r},"
            f" signing_key={'<set>' if self.signing_key else None},"
            f" token_ttl={self.token_ttl})"
        )


class CatalogError(ExecutorError):
    """`load_catalog` failed for a reason whose message is safe to log (it names files and
    fields, never a secret's value). The server logs other exceptions by type only, since
    their text (a YAML error quoting a line of the secrets file) might hold a secret."""
