"""A size that comes from a preset is shown with its position in the site config (issue 16).

Before, `sources` held only positions the manifest itself wrote, so editing
`presets/vm-small.yaml` printed `memory: 2048 -> 3072` with no position at all.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..cli_runner import run_cli


def _plan(site: Path, *more: str) -> tuple[int, str, str]:
    return run_cli(["plan", "-M", "n1-push", "-H", "sim", "--site-config", str(site), *more])


def _line_of(path: Path, prefix: str) -> int:
    lines = path.read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.startswith(prefix))


def test_a_preset_edit_points_at_the_preset_file(site: Path, tmp_path: Path) -> None:
    assert _plan(site, "-o", str(tmp_path / "before.json"))[0] == 0
    preset = site / "presets" / "vm-small.yaml"
    preset.write_text(preset.read_text().replace("memory: 2048", "memory: 3072"))
    code, out, err = _plan(site, "--against", str(tmp_path / "before.json"))
    assert code == 0, err
    line = _line_of(preset, "memory:")
    assert re.search(rf"memory: 2048 -> 3072  \(\.\./presets/vm-small\.yaml:{line}:9\)", out), out


def test_switching_presets_points_at_the_new_presets_lines(site: Path, tmp_path: Path) -> None:
    assert _plan(site, "-o", str(tmp_path / "before.json"))[0] == 0
    manifest = site / "manifests" / "n1-push.pvp"
    manifest.write_text(manifest.read_text().replace('"vm-small"', '"vm-medium"'))
    code, out, err = _plan(site, "--against", str(tmp_path / "before.json"))
    assert code == 0, err
    memory_line = _line_of(site / "presets" / "vm-medium.yaml", "memory:")
    assert f"(../presets/vm-medium.yaml:{memory_line}:9)" in out, out
