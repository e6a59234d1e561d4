"""cloud-init snippets of the site config (`user_data`, `vendor_data`): checked at plan
time, so `validate` refuses what the VM's first boot would choke on or pveplan would
overwrite.

A user-data snippet is merged into the user-data pveplan writes for the VM (which carries
its user, keys and pinned host key), so it must be a `#cloud-config` mapping and must not
set what pveplan sets; its lists (`packages`, `runcmd`, `write_files`, ...) are added after
pveplan's. A vendor-data snippet goes to cloud-init as it is (PVE's `cicustom vendor=`),
which reads it under the user-data: any format cloud-init takes; a `#cloud-config` one
must parse. A snippet may hold secrets, so no problem quotes its text: only the line.
"""

from __future__ import annotations

from typing import Any

import yaml

CLOUD_CONFIG = "#cloud-config"
OWNED_KEYS = (
    "disable_root",
    "hostname",
    "ssh_authorized_keys",
    "ssh_deletekeys",
    "ssh_keys",
    "timezone",
    "users",
)
"""What pveplan's own user-data sets: its user and keys, the VM's pinned host key (how
pveplan verifies the VM), its name, and the spec's timezone."""
MERGED_LISTS = ("bootcmd", "packages", "runcmd", "write_files")
"""List keys pveplan's user-data may hold too: the snippet's entries come after pveplan's."""


def snippet_problem(text: str, kind: str) -> tuple[str, str] | None:
    """(summary, detail) of what is wrong with a `kind` ("user_data" or "vendor_data")
    snippet's `text`; None when cloud-init and pveplan can use it."""
    if not text.strip():
        return "is empty", "write cloud-config in it, or remove the reference"
    cloud_config = text.lstrip().startswith(CLOUD_CONFIG)
    if kind == "user_data" and not cloud_config:
        return (
            f"does not start with {CLOUD_CONFIG}",
            "pveplan merges user-data into its own cloud-config; for a script or another "
            "format, use vendor_data",
        )
    if not cloud_config:
        return None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at its line {mark.line + 1}" if mark is not None else ""
        return (
            f"is not valid YAML{where}",
            "fix the snippet (its text is not shown: it may hold secrets)",
        )
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return "is not a mapping of cloud-config keys", "write `key: value` lines after the header"
    if kind != "user_data":
        return None
    owned = sorted(key for key in data if key in OWNED_KEYS)
    if owned:
        return (
            f"sets {', '.join(owned)}, which pveplan's user-data sets",
            "pveplan writes the VM's user, keys, host key, hostname and timezone itself "
            "(the timezone from the spec): remove them from the snippet",
        )
    wrong = sorted(k for k in MERGED_LISTS if k in data and not isinstance(data[k], list))
    if wrong:
        return f"sets {', '.join(wrong)} to something other than a list", "make each a list"
    return None


def merge_user_data(base: dict[str, Any], text: str) -> dict[str, Any]:
    """`base` (pveplan's cloud-config) with the checked snippet `text` merged in: the
    snippet's lists after pveplan's, its other keys added."""
    data = yaml.safe_load(text) or {}
    out = dict(base)
    for key, value in data.items():
        if key in MERGED_LISTS and isinstance(out.get(key), list):
            out[key] = [*out[key], *value]
        else:
            out[key] = value
    return out
