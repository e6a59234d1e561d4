"""The command-line surface shared by `pvesh`, `qm` and `pveum`: options and output.

`parse_options` reads `--name value` arguments against a method's parameter table (flags,
the output-format options); `render` prints a result the way pvesh does for each
`--output-format` (text tables with box borders, compact or pretty JSON).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pveplan.sim._errors import ApiError, param_error
from pveplan.sim._params import spec_for
from pveplan.sim._stdio import write_stderr

# --- output ------------------------------------------------------------------------


def json_compact(data: Any) -> str:
    """pvesh `--output-format json`: canonical (sorted keys) and compact."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def json_pretty(data: Any) -> str:
    """`json-pretty` and `qm guest cmd`: sorted keys, 3-space indent."""
    return json.dumps(data, sort_keys=True, indent=3, ensure_ascii=False)


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json_compact(value)
    return str(value)


def box_table(header: list[str], rows: list[list[str]]) -> str:
    """PVE's text table (pvesh/pveum default output) with box-drawing borders."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def rule(left: str, mid: str, right: str, fill: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + right + "\n"

    def line(cells: list[str]) -> str:
        return "│" + "│".join(f" {c:<{w}} " for c, w in zip(cells, widths, strict=True)) + "│\n"

    parts = [rule("┌", "┬", "┐", "─"), line(header), rule("╞", "╪", "╡", "═")]
    for index, row in enumerate(rows):
        if index:
            parts.append(rule("├", "┼", "┤", "─"))
        parts.append(line(row))
    parts.append(rule("└", "┴", "┘", "─"))
    return "".join(parts)


def render_text(data: Any) -> str:
    """pvesh's default `text` output: scalars raw, objects and lists as tables."""
    if data is None:
        return ""
    if isinstance(data, dict):
        rows = [[key, cell(data[key])] for key in sorted(data)]
        return box_table(["key", "value"], rows)
    if isinstance(data, list):
        if not all(isinstance(item, dict) for item in data):
            return "".join(cell(item) + "\n" for item in data)
        columns = sorted({key for item in data for key in item})
        if not columns:
            return ""
        rows = [[cell(item.get(col)) for col in columns] for item in data]
        return box_table(columns, rows)
    return cell(data) + "\n"


def render(data: Any, fmt: str) -> str:
    """A result in one of pvesh's output formats."""
    if fmt == "json":
        return json_compact(data) + "\n"
    if fmt == "json-pretty":
        return json_pretty(data) + "\n"
    return render_text(data)


# --- command lines ---------------------------------------------------------------------

FORMAT_FLAGS = {"noborder", "noheader", "human-readable", "quiet", "noproxy"}
OUTPUT_FORMATS = ("text", "json", "json-pretty", "yaml")
OPTION_RE = re.compile(r"^--?([A-Za-z][\w-]*)(?:=(.*))?$", re.DOTALL)


@dataclass
class Options:
    """A command line split the way PVE's Getopt setup splits it."""

    params: dict[str, str] = field(default_factory=dict)
    output: dict[str, str] = field(default_factory=dict)
    positional: list[str] = field(default_factory=list)

    @property
    def output_format(self) -> str:
        fmt = self.output.get("output-format", "text")
        if fmt not in OUTPUT_FORMATS:
            choices = ", ".join(OUTPUT_FORMATS)
            raise param_error(
                {
                    "output-format": f"value '{fmt}' does not have a value in the enumeration '{choices}'"
                }
            )
        return fmt


def _is_flag(table: dict[str, dict[str, Any]], name: str) -> bool:
    spec = spec_for(table, name)
    return name in FORMAT_FLAGS or (spec is not None and spec.get("type") == "boolean")


def parse_options(argv: list[str], table: dict[str, dict[str, Any]]) -> Options:
    """`--name value`, `-name value`, `--name=value`; a boolean may omit its value."""
    opts = Options()
    index = 0
    while index < len(argv):
        match = OPTION_RE.match(argv[index])
        index += 1
        if not match:
            opts.positional.append(argv[index - 1])
            continue
        name, value = match[1], match[2]
        following = argv[index] if index < len(argv) else None
        if value is None and _is_flag(table, name):
            takes = following is not None and not following.startswith("-")
            value, index = (following, index + 1) if takes else ("1", index)
        elif value is None:
            if following is None:
                write_stderr(f"Option {name} requires an argument")
                raise ApiError(400, "unable to parse option")
            value, index = following, index + 1
        target = opts.output if name == "output-format" or name in FORMAT_FLAGS else opts.params
        target[name] = value
    return opts
