"""What `pve-setup` leaves in the local site config: the node file and the API token.

iac-driver runs `make node-config FORCE=1` and edits secrets.yaml with regular
expressions. Here both are written atomically (temp file, fsync, rename); secrets.yaml
keeps its comments and layout where a one-line edit can do it (checked by reading the
result back), is rewritten from its data otherwise, and is never left world-readable.
A node file someone wrote by hand is not overwritten: that is refused, with what to do.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from .._model import StepFailed

MARK = "# written by pveplan (pve-setup)"
SECRETS = "secrets.yaml"


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_node_file(site_root: Path, node: str, document: dict[str, Any]) -> Path | None:
    """nodes/NODE.yaml holds `document`; the path if it changed, None if it already did."""
    path = site_root / "nodes" / f"{node}.yaml"
    text = f"{MARK}\n" + yaml.safe_dump(document, sort_keys=True)
    try:
        current = path.read_text()
    except FileNotFoundError:
        current = None
    except OSError as exc:
        raise StepFailed(f"cannot read {path}: {exc.strerror or exc}") from None
    if current == text:
        return None
    if current is not None and not current.startswith(MARK):
        raise StepFailed(
            f"{path} exists and was not written by pveplan: move it away (or delete it) "
            "and run pve-setup again, which writes it"
        )
    try:
        write_atomic(path, text.encode(), 0o644)
    except OSError as exc:
        raise StepFailed(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def set_api_token(site_root: Path, node: str, token: str) -> bool:
    """secrets.yaml's api_tokens.NODE is `token` (mode 0600); whether it changed."""
    path = site_root / SECRETS
    try:
        text = path.read_text()
    except FileNotFoundError:
        if (site_root / f"{SECRETS}.enc").exists():
            raise StepFailed(
                f"{site_root} has {SECRETS}.enc only: decrypt it first (homestak: "
                "`make decrypt` in the site config), then run pve-setup again"
            ) from None
        text = ""
    except OSError as exc:
        raise StepFailed(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError:
        raise StepFailed(f"{path} is not valid YAML: fix it, then run again") from None
    if not isinstance(data, dict):
        raise StepFailed(f"{path} is not a mapping of sections")
    tokens = data.get("api_tokens")
    if isinstance(tokens, dict) and tokens.get(node) == token:
        return False
    wanted = {**data, "api_tokens": {**(tokens if isinstance(tokens, dict) else {}), node: token}}
    edited = _edit_in_place(text, node, token)
    if edited is None or _load(edited) != wanted:
        edited = yaml.safe_dump(wanted, sort_keys=False)
    try:
        write_atomic(path, edited.encode(), 0o600)
    except OSError as exc:
        raise StepFailed(f"cannot write {path}: {exc.strerror or exc}") from None
    return True


def site_api_token(site_root: Path, node: str) -> str | None:
    """secrets.yaml's api_tokens.NODE, if it is readable and there."""
    try:
        data = yaml.safe_load((site_root / SECRETS).read_text())
    except (OSError, yaml.YAMLError):
        return None
    tokens = data.get("api_tokens") if isinstance(data, dict) else None
    value = tokens.get(node) if isinstance(tokens, dict) else None
    return value if isinstance(value, str) else None


def _load(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _edit_in_place(text: str, node: str, token: str) -> str | None:
    """`text` with one line set or added under `api_tokens:`, or None if no one-line edit
    fits (the caller checks the result by loading it)."""
    line = f"  {node}: {json.dumps(token)}"
    lines = text.splitlines()
    header = next(
        (i for i, ln in enumerate(lines) if re.fullmatch(r"api_tokens:\s*(\{\s*\})?\s*", ln)),
        None,
    )
    if header is None:
        return text + ("" if not text or text.endswith("\n") else "\n") + f"api_tokens:\n{line}\n"
    lines[header] = "api_tokens:"
    end = header + 1
    while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
        if re.match(rf"\s+{re.escape(node)}\s*:", lines[end]):
            lines[end] = line
            return "\n".join(lines) + "\n"
        end += 1
    lines.insert(header + 1, line)
    return "\n".join(lines) + "\n"
