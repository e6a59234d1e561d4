"""Where a store is: a local directory, or a PostgreSQL database a team shares.

`locate_store` is pure like `store_path`: the CLI passes the environment (and the site
config's `store:` setting) in. A PostgreSQL store is named by a libpq URL,
`postgresql://USER@HOST[:PORT]/DBNAME[?sslmode=...]`; its password never travels inside
the address: it is taken out of the URL (where the environment may carry it) and kept in
a field that neither `repr` nor `display` shows, so no message or log can print it.

A shared store still needs a directory on this machine for what is local by nature
(built bundles, the simulator, server logs): `cache_dir`, from `$PVEPLAN_CACHE_DIR`, else
the XDG cache directory. For a local store that directory is the store itself.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ._errors import StoreError
from ._layout import store_path, xdg_dir

SCHEMES = ("postgresql://", "postgres://")

PASSWORD_ENV = "PVEPLAN_STORE_PASSWORD"
"""A PostgreSQL store's password from the environment, when the URL carries none (libpq's
own PGPASSWORD and ~/.pgpass work too: an address without a password leaves it to them)."""


@dataclass(frozen=True)
class StoreAddress:
    """A store's location: `path` for a local store, `url` (password-free) for PostgreSQL."""

    path: Path | None = None
    url: str | None = None
    cache_dir: Path | None = None
    password: str | None = field(default=None, repr=False, compare=False)

    @property
    def shared(self) -> bool:
        return self.url is not None

    @property
    def display(self) -> str:
        """How messages name the store: its directory, or its URL without a password."""
        return self.url if self.url is not None else str(self.path)

    @property
    def local_dir(self) -> Path:
        """This machine's directory for bundles, the simulator and logs."""
        if self.url is None:
            assert self.path is not None
            return self.path
        assert self.cache_dir is not None
        return self.cache_dir


def is_store_url(value: str) -> bool:
    return value.startswith(SCHEMES)


def cache_path(env: Mapping[str, str]) -> Path:
    """`$PVEPLAN_CACHE_DIR`, else `$XDG_CACHE_HOME/pveplan` (absolute only), else
    `~/.cache/pveplan`: the local directory of a machine using a shared store."""
    explicit = env.get("PVEPLAN_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return xdg_dir(env.get("XDG_CACHE_HOME"), env.get("HOME"), ".cache")


def locate_store(
    env: Mapping[str, str],
    configured: str | None = None,
    password: str | None = None,
) -> StoreAddress:
    """The store to use: `$PVEPLAN_STORE`, else the site config's `store:` (`configured`),
    else the local default (`store_path`).

    `password` is the site's secrets entry for the store, if any; a password written in
    `$PVEPLAN_STORE`'s URL wins, then `$PVEPLAN_STORE_PASSWORD`, then `password`. A URL in
    the site config must not carry one (site.yaml is committed): that is refused.
    """
    explicit = env.get("PVEPLAN_STORE")
    if explicit and not is_store_url(explicit):
        return StoreAddress(path=Path(explicit))
    if explicit:
        url, inline = split_password(explicit)
    elif configured and is_store_url(configured):
        url, inline = split_password(configured)
        if inline is not None:
            raise StoreError(
                "the site config's `store:` URL contains a password",
                "site.yaml is committed: remove the password from the URL and put it in "
                f"secrets.yaml (section store:, key password), or in ${PASSWORD_ENV}",
            )
    elif configured:
        return StoreAddress(path=Path(configured).expanduser())
    else:
        return StoreAddress(path=store_path(env))
    secret = inline or env.get(PASSWORD_ENV) or password
    return StoreAddress(url=verified_tls(url, env), cache_dir=cache_path(env), password=secret)


def verified_tls(url: str, env: Mapping[str, str]) -> str:
    """`url`, with `sslmode=verify-full` (and the system's CAs) added when the server is
    not on this machine and neither the URL nor libpq's PGSSLMODE chose a mode: libpq's
    own default ("prefer") would accept any certificate, or none."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    host = (query.get("host") or [parts.hostname or ""])[0]
    if _on_this_machine(host) or "sslmode" in query or env.get("PGSSLMODE"):
        return url
    extra = {"sslmode": "verify-full"}
    if "sslrootcert" not in query and not env.get("PGSSLROOTCERT"):
        extra["sslrootcert"] = "system"
    joined = "&".join(filter(None, [parts.query, urllib.parse.urlencode(extra)]))
    return urllib.parse.urlunsplit(parts._replace(query=joined))


def _on_this_machine(host: str) -> bool:
    if not host or host.startswith("/") or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_password(url: str) -> tuple[str, str | None]:
    """(the URL without its password, the password or None); a malformed URL is refused.

    The user information is everything between `://` and the last `@` before the query,
    split at its first `:`, so a password that was not percent-encoded (one holding `/`
    or `@`) is still taken out whole rather than left in what is shown.
    """
    scheme, _, rest = url.partition("://")
    authority_end = len(rest.split("?", 1)[0])
    at = rest.rfind("@", 0, authority_end)
    userinfo, hostpart = (rest[:at], rest[at + 1 :]) if at >= 0 else ("", rest)
    user, colon, secret = userinfo.partition(":")
    clean = f"{scheme}://{user}@{hostpart}" if userinfo else url
    try:
        parts = urllib.parse.urlsplit(clean)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        raise StoreError(
            f"the store URL is malformed: {exc}",
            "write it as postgresql://USER@HOST[:PORT]/DBNAME",
        ) from None
    if not parts.path.strip("/") and "dbname=" not in parts.query:
        raise StoreError(
            "the store URL names no database",
            "write it as postgresql://USER@HOST[:PORT]/DBNAME",
        )
    return clean, urllib.parse.unquote(secret) if colon else None
