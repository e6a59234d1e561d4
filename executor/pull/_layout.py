"""Where a pull-mode node keeps its pveplan files, all under one system root.

Every node-side path is resolved under `sysroot()`: `$PVEPLAN_SYSROOT`, else `/`. On a
real VM the variable is unset and the paths are the real ones (`/root/.pveplan/...`); the
simulator sets it to the VM's directory tree, so the very same code converges a simulated
VM by writing into that tree. The constants are relative to the sysroot, never absolute,
so no path can silently escape it.

    root/.pveplan/pull/pull.json     where the spec server is, who we are (cloud-init)
    root/.pveplan/pull/token         the node's credential, 0600 (absent for `network`)
    root/.pveplan/state/spec.yaml    the last spec fetched, 0600 (it holds secret values)
    root/.pveplan/state/complete.json | failure.json    homestak's state markers
    root/.pveplan/store              the node's own store (workspace `config@IDENTITY`)
    root/.pveplan/bundles/HASH/...   the installed pveplan bundle (as on nested hosts)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import msgspec

from pveplan.executor._errors import ExecutorError

HOME = "root"
PULL_DIR = "root/.pveplan/pull"
STATE_DIR = "root/.pveplan/state"
NODE_STORE = "root/.pveplan/store"
BUNDLES_DIR = "root/.pveplan/bundles"

PULL_JSON = "pull.json"
TOKEN_FILE = "token"
SPEC_FILE = "spec.yaml"
COMPLETE_FILE = "complete.json"
FAILURE_FILE = "failure.json"


class LayoutError(ExecutorError):
    """A node-side file is missing or unreadable; `str()` is the message for the user."""


def sysroot() -> Path:
    """The root every node path lives under (`$PVEPLAN_SYSROOT`, else `/`)."""
    return Path(os.environ.get("PVEPLAN_SYSROOT") or "/")


def node_path(relative: str) -> Path:
    """`relative` (one of this module's constants, or below one) under the sysroot."""
    return sysroot() / relative


class PullConfig(msgspec.Struct, frozen=True, kw_only=True):
    """pull.json: how this node reaches its spec server, written by cloud-init."""

    server: str
    """The spec server's https base URL, e.g. `https://10.0.0.1:8443`."""
    fingerprint: str
    """SHA-256 of the server certificate (DER), hex; colons and case do not matter."""
    identity: str
    """The node's name in the manifest (what `/spec/{identity}` serves)."""
    instance: str
    """This VM's instance id (its creation), so a re-created VM is told apart."""
    bundle: str
    """sha256 hex of the pveplan bundle the bootstrap installed (`.pveplan/bundles/HASH`)."""


def read_pull_config(path: Path | None = None) -> PullConfig:
    """pull.json (default: under the sysroot), validated; LayoutError when it is not usable."""
    path = path or node_path(f"{PULL_DIR}/{PULL_JSON}")
    try:
        return msgspec.json.decode(path.read_bytes(), type=PullConfig)
    except FileNotFoundError:
        raise LayoutError(
            f"{path} does not exist: this is not a pull-mode node (cloud-init writes it), "
            "or pass --server, --fingerprint and --identity"
        ) from None
    except OSError as exc:
        raise LayoutError(f"cannot read {path}: {exc.strerror or exc}") from None
    except msgspec.DecodeError as exc:
        raise LayoutError(f"{path} is not a valid pull config: {exc}") from None


def read_token(path: Path | None = None) -> str | None:
    """The node's credential from its token file, or None when it has none (`network`)."""
    path = path or node_path(f"{PULL_DIR}/{TOKEN_FILE}")
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise LayoutError(f"cannot read the token file {path}: {exc}") from None
    return token or None


def write_private(
    path: Path, data: bytes, mode: int = 0o600, owner: tuple[int, int] | None = None
) -> None:
    """Write `data` to `path` atomically (temp file, fsync, rename) with `mode` (and
    `owner`, as uid/gid) set on the new file before it gets its name: a reader sees the
    old file or the whole new one, and a secret is never readable by others, not even
    half-written. The rename replaces a symlink at `path`, never what it points to."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, *owner)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
