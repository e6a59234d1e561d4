"""Helpers shared by the dsl tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from pveplan.dsl import DslError, LoadedManifest, load_manifest

FIXTURES = Path(__file__).parent.parent / "fixtures"
HOMESTAK_MANIFESTS = FIXTURES / "homestak-site-config" / "manifests"


def load_text(tmp_path: Path, name: str, text: str | bytes) -> LoadedManifest:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return load_manifest(str(path))


def errors_of(tmp_path: Path, name: str, text: str | bytes) -> list[str]:
    """Each diagnostic as 'line:col: summary | detail' (the file name left out)."""
    with pytest.raises(DslError) as info:
        load_text(tmp_path, name, text)
    out = []
    for diag in info.value.diagnostics:
        loc = diag.location
        where = f"{loc.line}:{loc.col}" if loc else "-"
        out.append(f"{where}: {diag.summary}" + (f" | {diag.detail}" if diag.detail else ""))
    return out
