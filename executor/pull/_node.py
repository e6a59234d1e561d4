"""`pveplan spec get` on a pull-mode node: fetch this node's spec and save it as spec.yaml.

The node asks the spec server from pull.json (`GET /spec/{identity}?instance=ID`, with its
token when it has one). At first boot the driver may not be serving yet, so connection
failures and 5xx answers are retried with backoff until the timeout; a refusal (401, 403),
an unknown node (404), a conflict (409) or a certificate that does not match the pin are
final at once: waiting cannot change them. The document is saved whole as spec.yaml
(0600: it holds the secret values the spec names), atomically; a failure leaves
failure.json saying why, for `config apply`'s report and for whoever looks.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from pveplan.executor._errors import ExecutorError
from pveplan.planner import SpecDocument, SpecError, decode_spec_document

from ._client import HttpStatusError, PinMismatch, PullClient, PullError
from ._layout import LayoutError, PullConfig, read_pull_config, read_token, write_private
from ._node_spec import encode_document, spec_path
from ._node_state import mark_failure

IDENTITY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
RETRY_STATUSES = frozenset({408, 425, 429})
"""4xx answers that mean "not now" rather than "no": retried like 5xx."""
FIRST_DELAY = 1.0
MAX_DELAY = 15.0
REQUEST_TIMEOUT = 10.0


class NodeError(ExecutorError):
    """A node command cannot go on; `str()` is the one message for the user."""


class Source(msgspec.Struct, frozen=True, kw_only=True):
    """Where the spec comes from and who asks: pull.json, as overridden by hand."""

    server: str
    fingerprint: str
    identity: str
    instance: str
    token: str | None = None

    def __repr__(self) -> str:  # the token stays out of logs
        return f"Source(server={self.server!r}, identity={self.identity!r})"


def source(
    *,
    server: str | None = None,
    fingerprint: str | None = None,
    identity: str | None = None,
    instance: str | None = None,
    token_file: Path | None = None,
) -> Source:
    """pull.json and the token file, each field overridable (by hand: pull.json may then
    be absent, as long as server, fingerprint and identity are given)."""
    pull: PullConfig | None = None
    try:
        pull = read_pull_config()
    except LayoutError as exc:
        if not (server and fingerprint and identity):
            raise NodeError(str(exc)) from None
    try:
        token = read_token(token_file)
    except LayoutError as exc:
        raise NodeError(str(exc)) from None
    found = Source(
        server=server or (pull.server if pull else ""),
        fingerprint=fingerprint or (pull.fingerprint if pull else ""),
        identity=identity or (pull.identity if pull else ""),
        instance=instance if instance is not None else (pull.instance if pull else ""),
        token=token,
    )
    if not IDENTITY_RE.fullmatch(found.identity):
        raise NodeError(f"{found.identity!r} is not a node name")
    return found


def fetch_spec(src: Source, *, timeout: float, log: Callable[[str], None]) -> SpecDocument:
    """The node's spec document from the server, retrying what may pass until `timeout`."""
    try:
        client = PullClient(src.server, src.fingerprint, token=src.token, timeout=REQUEST_TIMEOUT)
    except PullError as exc:
        raise NodeError(str(exc)) from None
    deadline = time.monotonic() + timeout
    delay = FIRST_DELAY
    path = f"/spec/{src.identity}"
    with client:
        while True:
            try:
                data = client.get_json(path, {"instance": src.instance})
                break
            except PinMismatch as exc:
                raise NodeError(str(exc)) from None
            except HttpStatusError as exc:
                if exc.status < 500 and exc.status not in RETRY_STATUSES:
                    raise NodeError(_refusal(exc, src)) from None
                last = str(exc)
            except PullError as exc:
                last = str(exc)
            left = deadline - time.monotonic()
            if left <= 0:
                raise NodeError(f"no spec after {timeout:g}s: {last}")
            wait = min(delay, left)
            log(f"{last}; retrying in {wait:.0f}s")
            time.sleep(wait)
            delay = min(delay * 2, MAX_DELAY)
    try:
        document = decode_spec_document(data)
    except SpecError as exc:
        raise NodeError(f"the server sent an unusable spec: {exc}") from None
    if document.identity != src.identity:
        raise NodeError(
            f"the server sent the spec of {document.identity!r}, but this node is "
            f"{src.identity!r}: refusing it"
        )
    return document


def _refusal(exc: HttpStatusError, src: Source) -> str:
    hint = {
        401: "the node's token was not accepted (expired, or minted for another spec?)",
        403: "the server refuses this node",
        404: f"the server knows no node {src.identity!r}",
        409: "the server expects another instance of this node (a re-created VM?)",
    }.get(exc.status)
    return f"{exc}" + (f" ({hint})" if hint else "")


def spec_get(
    src: Source, *, timeout: float, log: Callable[[str], None], dest: Path | None = None
) -> SpecDocument:
    """Fetch and save the spec (spec.yaml, 0600); on failure write failure.json (phase
    `spec`) and raise NodeError."""
    try:
        document = fetch_spec(src, timeout=timeout, log=log)
        write_private(dest or spec_path(), encode_document(document), 0o600)
    except NodeError as exc:
        _fail(str(exc))
        raise
    except OSError as exc:
        message = f"cannot save the spec: {exc.strerror or exc} ({exc.filename})"
        _fail(message)
        raise NodeError(message) from None
    return document


def _fail(message: str) -> None:
    # An unwritable state directory must not hide the message, which still reaches the user.
    with contextlib.suppress(OSError):
        mark_failure("spec", message)


def node_spec_get(
    *,
    timeout: float,
    log: Callable[[str], None],
    server: str | None = None,
    fingerprint: str | None = None,
    identity: str | None = None,
    instance: str | None = None,
    token_file: Path | None = None,
) -> SpecDocument:
    """`pveplan spec get` on a node: `spec_get` from pull.json and the token file, each
    field overridable (see `source`). Any failure is one `NodeError`."""
    src = source(
        server=server,
        fingerprint=fingerprint,
        identity=identity,
        instance=instance,
        token_file=token_file,
    )
    return spec_get(src, timeout=timeout, log=log)
