"""spec.yaml on a pull-mode node: where it lives, reading it back, writing it.

The document's model and its checks are the planner's (`pveplan.planner.SpecDocument`,
`node_spec`): the node builds its plan from it with `pveplan.planner.build_node_plan`.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from pveplan.planner import SpecDocument, SpecError, decode_spec_document

from ._layout import SPEC_FILE, STATE_DIR, LayoutError, node_path


def spec_path() -> Path:
    return node_path(f"{STATE_DIR}/{SPEC_FILE}")


def read_document(path: Path | None = None) -> SpecDocument:
    """spec.yaml (default: the state directory's), as `spec get` saved it."""
    path = path or spec_path()
    try:
        data = msgspec.yaml.decode(path.read_bytes())
    except FileNotFoundError:
        raise LayoutError(f"{path} does not exist: run `pveplan spec get` first") from None
    except OSError as exc:
        raise LayoutError(f"cannot read {path}: {exc.strerror or exc}") from None
    except msgspec.DecodeError as exc:
        raise SpecError(f"{path} is not valid YAML: {exc}") from None
    try:
        return decode_spec_document(data)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None


def encode_document(document: SpecDocument) -> bytes:
    return msgspec.yaml.encode(document)
