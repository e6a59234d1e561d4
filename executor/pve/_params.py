"""How values are written on PVE's command line, following pve-api.md's pitfalls.

Kept apart from the driver so each rule is one small, tested function: booleans are 0/1
(over HTTP `true` fails a type check), `sshkeys` is percent-encoded like JavaScript's
`encodeURIComponent` (`+` for a space is refused), tags are `;`-joined. (A UPID in a
`pvesh` path stays as it is: pvesh routes the path itself, it is not a URL.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import quote

PvesValue = str | int | bool

# encodeURIComponent leaves A-Z a-z 0-9 - _ . ! ~ * ' ( ) unescaped; PVE's validator
# accepts exactly those plus %.
_URI_COMPONENT_SAFE = "-_.!~*'()"


def encode_sshkeys(keys: Iterable[str]) -> str:
    """The `sshkeys` value: the keys joined by newlines, then percent-encoded."""
    return quote("\n".join(k.strip() for k in keys), safe=_URI_COMPONENT_SAFE)


def tags(values: Iterable[str]) -> str:
    """A tag list as PVE stores it: lower-cased, unique, sorted, joined by `;`."""
    return ";".join(sorted({v.lower() for v in values}))


def flag_value(value: PvesValue) -> str:
    """One parameter value as text: booleans as 0/1."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def flags(params: Mapping[str, PvesValue | None]) -> list[str]:
    """`--key value` pairs in a stable order (None values are left out)."""
    out: list[str] = []
    for key in sorted(params):
        value = params[key]
        if value is not None:
            out.extend((f"--{key}", flag_value(value)))
    return out


def property_string(first: str | None, **fields: PvesValue | None) -> str:
    """`first,k=v,...` (PVE's property strings, e.g. a drive or a NIC)."""
    parts = [first] if first else []
    parts.extend(
        f"{k.replace('_', '-')}={flag_value(v)}" for k, v in fields.items() if v is not None
    )
    return ",".join(parts)
