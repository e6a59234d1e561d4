"""Simulated `pvesh`, `qm` and `pveum` of a PVE 9.1 host, over a simulator root's state.

pveplan's driver talks to real PVE hosts through these three commands over SSH, so the
simulator answers the same argument vectors with the same stdout, stderr and exit codes
(pve-api.md is the reference): synchronous parameter errors as `400 Parameter
verification failed.` plus `param: message` lines, other failures as a bare message, and
task-returning calls that run synchronously, echo the task log and print the UPID even
when the worker failed. Every command is a separate process, so all state lives in the
root's `state.json` (see docs/simulator.md); guest-side effects of a VM's boot are
delegated to `sim._guest`.

Run as `python -m pveplan.sim._pvecli TOOL ROOT NODE ARGS...`, or through the launchers
that `sim._setup` writes into `hosts/NODE/bin/` (`pveversion` too, which is no
API call: it is neither delayed nor recorded).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import secrets
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from pveplan.sim import _network
from pveplan.sim._runcmd import kill_runcmd, launch
from pveplan.sim._setup import (
    KERNEL_RELEASE,
    PVE_VERSION,
    STORAGES,
    delete_trees,
    remove_host_node,
)
from pveplan.sim._state import (
    SimRoot,
    allocate_address,
    append_record,
    locked_state,
    nested_host,
    read_config,
    read_state,
    take_fault,
    vm_key,
)

QEMU_VERSION = "10.1.2"
RUNNING_MACHINE = "pc-i440fx-10.1+pve0"
CLI_USER = "root@pam"
KIB, MIB, GIB, TIB = 1024, 1024**2, 1024**3, 1024**4
NEXTID_RANGE = (100, 1_000_000)
SIM_IMAGE_PREFIX = "sim://images/"
# The same images over HTTPS, as PVE's `download-url` accepts only http(s) URLs: the
# `.invalid` TLD (RFC 2606) can never be a real host, so the name cannot mean anything else.
SIM_IMAGE_HTTPS = "https://images.sim.pveplan.invalid/"


# --- errors ------------------------------------------------------------------------


class ApiError(Exception):
    """A synchronous failure: what pveproxy would answer with a non-200 status."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def param_error(errors: dict[str, str]) -> ApiError:
    """PVE's `raise_param_exc`: 400 with per-parameter messages."""
    return ApiError(400, "Parameter verification failed.", errors)


def fail(message: str) -> ApiError:
    """A plain `die` in an API handler: HTTP 500 with the bare message."""
    return ApiError(500, message)


class TaskError(Exception):
    """A failure inside a worker: the call still succeeds, the task's exitstatus has it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoHandler(Exception):
    """No API method for this (command, path): pvesh's `No 'get' handler defined`."""

    def __init__(self, cmd: str, path: str) -> None:
        super().__init__(f"No '{cmd}' handler defined for '{path}'")
        self.message = str(self)


def render_error(err: ApiError) -> str:
    """An API error as PVE's CLI prints it on stderr."""
    text = err.message if err.message.endswith("\n") else err.message + "\n"
    if 400 <= err.status < 500:
        text = f"{err.status} {text}"
    lines = "".join(f"{key}: {msg}\n" for key, msg in sorted((err.errors or {}).items()))
    return text + lines


def _conf_missing(node: str, vmid: int) -> str:
    return f"Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"


# --- output ------------------------------------------------------------------------


def json_compact(data: Any) -> str:
    """pvesh `--output-format json`: canonical (sorted keys) and compact."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def json_pretty(data: Any) -> str:
    """`json-pretty` and `qm guest cmd`: sorted keys, 3-space indent."""
    return json.dumps(data, sort_keys=True, indent=3, ensure_ascii=False)


def _cell(value: Any) -> str:
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
        rows = [[key, _cell(data[key])] for key in sorted(data)]
        return box_table(["key", "value"], rows)
    if isinstance(data, list):
        if not all(isinstance(item, dict) for item in data):
            return "".join(_cell(item) + "\n" for item in data)
        columns = sorted({key for item in data for key in item})
        if not columns:
            return ""
        rows = [[_cell(item.get(col)) for col in columns] for item in data]
        return box_table(columns, rows)
    return _cell(data) + "\n"


def render(data: Any, fmt: str) -> str:
    """A result in one of pvesh's output formats."""
    if fmt == "json":
        return json_compact(data) + "\n"
    if fmt == "json-pretty":
        return json_pretty(data) + "\n"
    return render_text(data)


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()


# --- parameter validation (pve-common JSONSchema, for the methods simulated) -------

NOT_IN_SCHEMA = (
    "property is not defined in schema and the schema does not allow additional properties"
)
MISSING = "property is missing and it is not optional"
INDEXED_LIMITS = {
    "scsi": 30,
    "ide": 3,
    "sata": 5,
    "virtio": 15,
    "net": 31,
    "serial": 3,
    "unused": 255,
    "ipconfig": 31,
    "hostpci": 15,
    "numa": 7,
    "parallel": 2,
    "usb": 13,
    "virtiofs": 9,
}
BOOLEAN_WORDS = {"1": 1, "on": 1, "yes": 1, "true": 1, "0": 0, "off": 0, "no": 0, "false": 0}
DNS_NAME_RE = re.compile(
    r"^(([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$"
)
VMID_RE = re.compile(r"^[1-9][0-9]{2,8}$")
TAG_RE = re.compile(r"^[a-z0-9_][a-z0-9_\-+.]*$", re.IGNORECASE)
URLENCODED_RE = re.compile(r"^[-%a-zA-Z0-9_.!~*'()]*$")
STORAGE_ID_RE = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.IGNORECASE)
CONFIGID_RE = re.compile(r"^[a-z][a-z0-9_-]+$", re.IGNORECASE)
NODE_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$")
IFACE_RE = re.compile(r"^[a-z][a-z0-9_]{1,20}([:.]\d+)?$", re.IGNORECASE)
MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
DISK_SIZE_RE = re.compile(r"^(\d+(\.\d+)?)([KMGT])?$")
USERID_RE = re.compile(r"^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+$")
TOKENID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9.\-_]+$")
SPLIT_LIST_RE = re.compile(r"[\s,;\0]+")


def split_list(text: str) -> list[str]:
    """PVE::Tools::split_list: items separated by commas, semicolons or whitespace."""
    return [item for item in SPLIT_LIST_RE.split(text) if item]


def normalize_tags(text: str) -> str:
    """Tags as PVE stores them: lower-cased, de-duplicated, sorted, joined with `;`."""
    return ";".join(sorted({tag.lower() for tag in split_list(text)}))


def _check_tags(text: str) -> str | None:
    bad = [tag for tag in split_list(text) if not TAG_RE.match(tag)]
    return "invalid characters in tag" if bad else None


def _check_storage_id(text: str) -> str | None:
    if len(text) < 2:
        return f"storage ID '{text}' cannot be shorter than 2 characters"
    return None if STORAGE_ID_RE.match(text) else f"storage ID '{text}' contains illegal characters"


def _check_configids(text: str) -> str | None:
    bad = [key for key in split_list(text) if not CONFIGID_RE.match(key)]
    return f"invalid configuration ID '{bad[0]}'" if bad else None


def _check_mac(text: str) -> str | None:
    if MAC_RE.match(text) and not int(text[:2], 16) & 1:
        return None
    return "value does not look like a valid unicast MAC address"


def _regex_check(regex: re.Pattern[str], message: str) -> Callable[[str], str | None]:
    return lambda text: None if regex.match(text) else message


def _check_iface(text: str) -> str | None:
    """pve-common's `pve-iface`."""
    return None if IFACE_RE.match(text) else f"invalid network interface name '{text}'"


def _check_iface_list(text: str) -> str | None:
    return next((p for p in map(_check_iface, split_list(text)) if p), None)


def _ip_check(version: int, cidr: bool, message: str) -> Callable[[str], str | None]:
    """`ipv4`, `ipv6`, `CIDRv4`, `CIDRv6`: PVE's CIDR formats want a prefix above 7."""

    def check(text: str) -> str | None:
        address, slash, prefix = text.partition("/")
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return message
        if parsed.version != version or bool(slash) != cidr:
            return message
        if cidr and not (prefix.isdigit() and 7 < int(prefix) <= parsed.max_prefixlen):
            return message
        return None

    return check


def _check_ipv4_mask(text: str) -> str | None:
    """`ipv4mask`: a dotted mask with contiguous ones (`255.255.255.0`)."""
    try:
        bits = int(ipaddress.IPv4Address(text))
    except ValueError:
        return "value does not look like a valid IP address mask"
    inverted = ~bits & 0xFFFFFFFF
    return (
        None
        if inverted & (inverted + 1) == 0
        else "value does not look like a valid IP address mask"
    )


STRING_FORMATS: dict[str, Callable[[str], str | None]] = {
    "pve-vmid": _regex_check(VMID_RE, "value does not look like a valid VM ID"),
    "dns-name": _regex_check(DNS_NAME_RE, "value does not look like a valid DNS name"),
    "pve-tag-list": _check_tags,
    "urlencoded": lambda text: (
        None if URLENCODED_RE.match(text) else f"invalid urlencoded string: {text}"
    ),
    "pve-storage-id": _check_storage_id,
    "pve-configid": lambda text: _check_configids(text) if text else None,
    "pve-configid-list": _check_configids,
    "pve-node": _regex_check(NODE_RE, "value does not look like a valid node name"),
    "mac-addr": _check_mac,
    "disk-size": _regex_check(DISK_SIZE_RE, "unable to parse disk size"),
    "pve-iface": _check_iface,
    "pve-iface-list": _check_iface_list,
    "ipv4": _ip_check(4, False, "value does not look like a valid IPv4 address"),
    "ipv6": _ip_check(6, False, "value does not look like a valid IPv6 address"),
    "CIDRv4": _ip_check(4, True, "value does not look like a valid IPv4 CIDR network"),
    "CIDRv6": _ip_check(6, True, "value does not look like a valid IPv6 CIDR network"),
    "ipv4mask": _check_ipv4_mask,
}


def _perl_pattern(pattern: str) -> re.Pattern[str]:
    """A JSONSchema `pattern` (Perl syntax, implicitly anchored) as a Python regex."""
    return re.compile("^(?:" + pattern.replace("(?^:", "(?:") + ")$")


def _check_type(kind: str | None, value: str) -> tuple[Any, str | None]:
    if kind == "boolean":
        flag = BOOLEAN_WORDS.get(value.lower())
        if flag is not None:
            return flag, None
        return None, f"type check ('boolean') failed - got '{value}'"
    if kind == "integer":
        if re.fullmatch(r"[+-]?\d+", value):
            return int(value), None
        return None, f"type check ('integer') failed - got '{value}'"
    if kind == "number":
        if re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", value):
            return float(value), None
        return None, f"type check ('number') failed - got '{value}'"
    return value, None


def check_value(spec: dict[str, Any], value: str) -> tuple[Any, str | None, dict[str, str]]:
    """Typed value, an error for the parameter itself, and errors of property-string keys."""
    typed, error = _check_type(spec.get("type"), value)
    if error:
        return None, error, {}
    if isinstance(typed, int | float) and spec.get("type") != "boolean":
        if "maximum" in spec and typed > spec["maximum"]:
            return None, f"value must have a maximum value of {spec['maximum']}", {}
        if "minimum" in spec and typed < spec["minimum"]:
            return None, f"value must have a minimum value of {spec['minimum']}", {}
    fmt = spec.get("format")
    if fmt in FORMATS:
        if sub_errors := check_propstring(FORMATS[fmt], value):
            return None, "invalid format - format error\n", sub_errors
        return typed, None, {}
    if fmt in STRING_FORMATS and (problem := STRING_FORMATS[fmt](value)):
        return None, f"invalid format - {problem}\n", {}
    return typed, _check_string_limits(spec, value), {}


def _check_string_limits(spec: dict[str, Any], value: str) -> str | None:
    if "pattern" in spec and not _perl_pattern(spec["pattern"]).match(value):
        return "value does not match the regex pattern"
    if "maxLength" in spec and len(value) > spec["maxLength"]:
        return f"value may only be {spec['maxLength']} characters long"
    if "enum" in spec and value not in spec["enum"]:
        return (
            f"value '{value}' does not have a value in the enumeration '{', '.join(spec['enum'])}'"
        )
    return None


def spec_for(table: dict[str, dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The schema of parameter `name`, resolving indexed names like `scsi0` to `scsi[n]`."""
    if name in table:
        return table[name]
    match = re.fullmatch(r"([a-z]+)(\d+)", name)
    if not match or f"{match[1]}[n]" not in table:
        return None
    if int(match[2]) > INDEXED_LIMITS.get(match[1], 0) or str(int(match[2])) != match[2]:
        return None
    return table[f"{match[1]}[n]"]


def validate(table: dict[str, dict[str, Any]], raw: dict[str, str]) -> dict[str, Any]:
    """Check `raw` against a method's schema: typed values, or a 400 with every error."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name, value in raw.items():
        spec = spec_for(table, name)
        if spec is None:
            errors[name] = NOT_IN_SCHEMA
            continue
        typed, error, sub_errors = check_value(spec, value)
        if error:
            errors[name] = error
            errors.update({f"{name}.{key}": msg for key, msg in sub_errors.items()})
        else:
            values[name] = typed
    for name, spec in table.items():
        if spec.get("required") and "[n]" not in name and name not in raw:
            errors.setdefault(name, MISSING)
        requires = spec.get("requires")
        if requires and name in raw and requires not in raw:
            errors.setdefault(requires, f"missing property required by '{name}'")
    if errors:
        raise param_error(errors)
    return values


# --- property strings ----------------------------------------------------------------


def parse_propstring(
    fmt: dict[str, dict[str, Any]], text: str
) -> tuple[dict[str, str], dict[str, str]]:
    """`k=v,k2=v2` per a format: (values by canonical key, errors by key)."""
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    default_key = next((key for key, spec in fmt.items() if spec.get("default_key")), None)
    for part in (p for p in text.split(",") if p):
        key, has_eq, value = part.partition("=")
        if not has_eq:
            if default_key is None or default_key in values:
                errors[default_key or part] = (
                    "value without key, but schema does not define a default key"
                )
                continue
            key, value = default_key, part
        spec = fmt.get(key)
        if spec is None:
            errors[key] = NOT_IN_SCHEMA
            continue
        if "keyAlias" in spec:
            values[spec["keyAlias"]] = key
        key = spec.get("alias", key)
        if key in values:
            errors[key] = f"duplicate key in comma-separated list property: {key}"
        values[key] = value
    return values, errors


def check_propstring(fmt: dict[str, dict[str, Any]], text: str) -> dict[str, str]:
    """Errors of a property-string value, keyed by its sub-keys (empty when valid)."""
    values, errors = parse_propstring(fmt, text)
    for key, value in values.items():
        if key in errors:
            continue
        _typed, error, _sub = check_value(fmt[key], value)
        if error:
            errors[key] = error
    for key, spec in fmt.items():
        if spec.get("required") and key not in values:
            errors.setdefault(key, MISSING)
    return errors


def split_drive(text: str) -> tuple[str, dict[str, str]]:
    """A stored drive value: its volume and its options (lenient: the value was checked)."""
    parts = text.split(",")
    options: dict[str, str] = {}
    volume = ""
    for part in parts:
        key, has_eq, value = part.partition("=")
        if not has_eq:
            volume = part
        elif key in ("file", "volume"):
            volume = value
        else:
            options[key] = value
    return volume, options


def join_drive(volume: str, options: dict[str, str]) -> str:
    """A drive value as PVE prints it: the volume, then the options sorted by key."""
    return ",".join([volume, *(f"{key}={options[key]}" for key in sorted(options))])


# --- sizes ---------------------------------------------------------------------------

UNIT_BYTES = {"": 1, "K": KIB, "M": MIB, "G": GIB, "T": TIB}


def parse_size(text: str, default_unit: str = "") -> int:
    """`32G`, `512M`, `10` (bytes unless `default_unit`) as bytes."""
    match = DISK_SIZE_RE.match(text)
    if not match:
        raise ValueError(text)
    return int(float(match[1]) * UNIT_BYTES[match[3] or default_unit])


def format_size(size: int) -> str:
    """Bytes as PVE writes a drive's `size=`: the largest unit that divides it exactly."""
    for unit in ("T", "G", "M", "K"):
        if size and size % UNIT_BYTES[unit] == 0:
            return f"{size // UNIT_BYTES[unit]}{unit}"
    return str(size)


def human_size(size: int) -> str:
    """Sizes as PVE's import progress prints them (`2.0 GiB`)."""
    for unit, factor in (("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size:.1f} B"


# --- context, routing ----------------------------------------------------------------


@dataclass
class Ctx:
    """One invocation: which simulator, and which host node the command runs on."""

    root: SimRoot
    node: str

    def host_path(self, path: str) -> Path:
        """A path on this simulated host: absolute paths live under `hosts/NODE/`."""
        host = self.root.host_dir(self.node)
        if not path.startswith("/"):
            return Path(path).absolute()
        if Path(path).is_relative_to(self.root.path):
            return Path(path)
        return host / path.lstrip("/")


Handler = Callable[[Ctx, dict[str, Any], dict[str, Any]], Any]


@dataclass(frozen=True)
class Route:
    """One API method: `returns_null` methods print nothing (pvesh skips null results)."""

    method: str
    template: str
    regex: re.Pattern[str]
    handler: Handler
    returns_null: bool

    @property
    def table(self) -> dict[str, dict[str, Any]]:
        params = PARAMS[f"{self.method} {self.template}"]
        if self.template.endswith(("/qemu", "/config")) and self.method in ("POST", "PUT"):
            return {**VM_OPTIONS, **params}
        return params


ROUTES: list[Route] = []
CLI_METHODS = {"get": "GET", "create": "POST", "set": "PUT", "delete": "DELETE"}


def route(
    method: str, template: str, *, returns_null: bool = False
) -> Callable[[Handler], Handler]:
    """Register a handler for `method template` (`{name}` matches one path segment)."""
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)

    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(method, template, re.compile(f"^{pattern}$"), handler, returns_null))
        return handler

    return register


def find_route(cmd: str, path: str) -> tuple[Route, dict[str, str]]:
    """The route for a pvesh command and path, with its path parameters (URL-decoded)."""
    method = CLI_METHODS.get(cmd, cmd.upper())
    normal = "/" + "/".join(part for part in path.split("/") if part)
    for candidate in ROUTES:
        match = candidate.regex.match(normal)
        if match and candidate.method == method:
            return candidate, {key: unquote(value) for key, value in match.groupdict().items()}
    raise NoHandler(cmd, path)


def check_node(ctx: Ctx, node: str | None) -> None:
    """`{node}` must be this host (or `localhost`); PVE would proxy anything else."""
    if node is None or node in (ctx.node, "localhost"):
        return
    raise fail(
        f"hostname lookup '{node}' failed - failed to get address info for: {node}: "
        "Name or service not known"
    )


def _path_values(path: dict[str, str]) -> dict[str, Any]:
    """Typed path parameters (`vmid` checked like any integer parameter)."""
    values: dict[str, Any] = dict(path)
    if "vmid" in path:
        values.update(
            validate({"vmid": PARAMS["POST /nodes/{node}/qemu"]["vmid"]}, {"vmid": path["vmid"]})
        )
    if "storage" in path and (problem := _check_storage_id(path["storage"])):
        raise param_error({"storage": f"invalid format - {problem}\n"})
    if "iface" in path and (problem := _check_iface(path["iface"])):
        raise param_error({"iface": f"invalid format - {problem}\n"})
    return values


def call_route(ctx: Ctx, found: Route, path: dict[str, str], raw: dict[str, str]) -> Any:
    """Run one API method: node check, parameter verification, then the handler."""
    check_node(ctx, path.get("node"))
    params = validate(found.table, raw)
    return found.handler(ctx, _path_values(path), params)


def call_api(ctx: Ctx, cmd: str, path: str, raw: dict[str, str]) -> Any:
    """`pvesh CMD PATH` with already-parsed options (what `qm` and `pveum` build on)."""
    found, path_params = find_route(cmd, path)
    return call_route(ctx, found, path_params, raw)


# --- tasks ---------------------------------------------------------------------------

UPID_RE = re.compile(
    r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):"
    r"([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$"
)


def _process_start() -> int:
    """This process's start time in clock ticks since boot (PVE's `pstart`)."""
    try:
        stat = Path("/proc/self/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def make_upid(node: str, wtype: str, wid: str, user: str = CLI_USER) -> str:
    """`UPID:node:PID:PSTART:STARTTIME:type:id:user:` with uppercase hex fields."""
    return (
        f"UPID:{node}:{os.getpid():08X}:{_process_start():08X}:{int(time.time()):08X}:"
        f"{wtype}:{wid}:{user}:"
    )


@dataclass
class Task:
    """A running worker's log: lines go to stdout as they happen, as in PVE's CLI."""

    upid: str
    lines: list[str] = field(default_factory=list)
    warnings: int = 0

    def log(self, line: str) -> None:
        self.lines.append(line)
        _out(line + "\n")

    def warn(self, line: str) -> None:
        self.warnings += 1
        self.log(f"WARN: {line}")


def _save_task(ctx: Ctx, task: Task, wtype: str, wid: str, exitstatus: str | None) -> None:
    match = UPID_RE.match(task.upid)
    assert match is not None
    record = {
        "node": ctx.node,
        "type": wtype,
        "id": wid,
        "user": CLI_USER,
        "pid": int(match[3], 16),
        "pstart": int(match[4], 16),
        "starttime": int(match[5], 16),
        "status": "running" if exitstatus is None else "stopped",
        "log": list(task.lines),
    }
    if exitstatus is not None:
        record["exitstatus"] = exitstatus
    with locked_state(ctx.root) as state:
        state["tasks"][task.upid] = record


def run_task(ctx: Ctx, wtype: str, wid: str, worker: Callable[[Task], None]) -> str:
    """Run `worker` as a PVE task, synchronously as the CLI does, and return its UPID.

    A worker failure does not fail the call: its message goes to stderr and becomes the
    task's exitstatus (and the `TASK ERROR:` last log line), exactly like real PVE.
    """
    task = Task(make_upid(ctx.node, wtype, wid))
    _save_task(ctx, task, wtype, wid, None)
    try:
        worker(task)
        exitstatus = f"WARNINGS: {task.warnings}" if task.warnings else "OK"
        last = f"TASK {exitstatus}"
    except (TaskError, ApiError) as err:
        exitstatus = err.message.rstrip("\n")
        last = f"TASK ERROR: {exitstatus}"
        _err(exitstatus)
    task.lines.append(last)
    _save_task(ctx, task, wtype, wid, exitstatus)
    return task.upid


def task_failed(ctx: Ctx, upid: str) -> str | None:
    """The error of a finished task, or None when it succeeded (`OK`/`WARNINGS: N`)."""
    status = read_state(ctx.root)["tasks"].get(upid, {}).get("exitstatus", "")
    return None if status == "OK" or status.startswith("WARNINGS: ") else status


def _find_task(ctx: Ctx, upid: str) -> dict[str, Any]:
    if not UPID_RE.match(upid):
        raise param_error({"upid": "unable to parse worker upid"})
    task = read_state(ctx.root)["tasks"].get(upid)
    if task is None or task["node"] != ctx.node:
        raise fail("no such task")
    return task


@route("GET", "/nodes/{node}/tasks/{upid}/status")
def task_status(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    task = _find_task(ctx, path["upid"])
    user, _, token = task["user"].partition("!")
    result = {
        key: task[key] for key in ("node", "pid", "pstart", "starttime", "type", "id", "status")
    }
    result.update(upid=path["upid"], user=user)
    if token:
        result["tokenid"] = token
    if task["status"] == "stopped":
        result["exitstatus"] = task["exitstatus"]
    return result


@route("GET", "/nodes/{node}/tasks/{upid}/log")
def task_log(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    lines = _find_task(ctx, path["upid"])["log"] or ["no content"]
    start, limit = params.get("start", 0), params.get("limit", 50)
    chosen = lines[start:] if limit == 0 else lines[start : start + limit]
    return [{"n": start + index + 1, "t": text} for index, text in enumerate(chosen)]


# --- storage -------------------------------------------------------------------------

DIR_LAYOUT = {
    "iso": "template/iso",
    "vztmpl": "template/cache",
    "import": "import",
    "snippets": "snippets",
    "backup": "dump",
}
VOLNAME_KINDS = {
    "iso": "iso",
    "vztmpl": "vztmpl",
    "import": "import",
    "snippets": "snippets",
    "backup": "backup",
}


@dataclass
class Volume:
    """A parsed volume id: where it lives and what it is."""

    volid: str
    storage: str
    content: str
    vmid: int | None
    path: Path | None  # the file, for dir storages


def storage_def(state: dict[str, Any], node: str, storage: str) -> dict[str, Any]:
    """A storage of `node` (type, content, path), or PVE's error if it has none."""
    if storage not in state["storage"].get(node, {}) or storage not in STORAGES:
        raise fail(f"storage '{storage}' does not exist")
    return STORAGES[storage]


def storage_dir(ctx: Ctx, storage: str) -> Path:
    return ctx.root.host_dir(ctx.node) / STORAGES[storage]["path"]


def parse_volume(ctx: Ctx, state: dict[str, Any], volid: str) -> Volume:
    """`STORAGE:NAME` as PVE's storage plugins parse it (dir layout or LVM names)."""
    storage, sep, name = volid.partition(":")
    if not sep:
        raise fail(f"unable to parse volume ID '{volid}'")
    sdef = storage_def(state, ctx.node, storage)
    if sdef["type"] == "dir":
        return _parse_dir_volume(ctx, volid, storage, name)
    match = re.fullmatch(r"(?:vm|base)-(\d+)-(disk-\d+|cloudinit)", name)
    if not match:
        raise fail(f"unable to parse lvm volume name '{name}'")
    return Volume(volid, storage, "images", int(match[1]), None)


def _parse_dir_volume(ctx: Ctx, volid: str, storage: str, name: str) -> Volume:
    base = storage_dir(ctx, storage)
    kind, _, rest = name.partition("/")
    if kind in VOLNAME_KINDS and rest and "/" not in rest:
        return Volume(volid, storage, VOLNAME_KINDS[kind], None, base / DIR_LAYOUT[kind] / rest)
    match = re.fullmatch(r"(\d+)/((?:vm|base)-\1-[\w.-]+)", name)
    if match:
        return Volume(volid, storage, "images", int(match[1]), base / "images" / name)
    raise fail(f"unable to parse directory volume name '{name}'")


def volume_size(state: dict[str, Any], node: str, volume: Volume) -> int | None:
    """The size in bytes of an existing volume, or None when it does not exist."""
    if volume.path is not None:
        return volume.path.stat().st_size if volume.path.is_file() else None
    entry = state["storage"][node][volume.storage].get(volume.volid)
    return None if entry is None else int(entry["size"])


def _file_format(content: str, name: str) -> str:
    if content == "iso":
        return "iso"
    if content == "snippets":
        return "snippet"
    if content == "vztmpl":
        return "tzst" if name.endswith(".tar.zst") else name.rsplit(".", 1)[-1]
    return name.rsplit(".", 1)[-1] if "." in name else "raw"


def _scan_dir_storage(ctx: Ctx, state: dict[str, Any], storage: str) -> list[dict[str, Any]]:
    """A dir storage's volumes are its files, as on PVE (SFTP uploads included)."""
    base = storage_dir(ctx, storage)
    known = state["storage"][ctx.node][storage]
    found = []
    for content, sub in DIR_LAYOUT.items():
        for path in sorted((base / sub).glob("*")) if (base / sub).is_dir() else []:
            if path.is_file() and not path.name.startswith("."):
                found.append(_dir_entry(f"{storage}:{content}/{path.name}", content, path, known))
    for path in sorted((base / "images").glob("*/*")) if (base / "images").is_dir() else []:
        volid = f"{storage}:{path.parent.name}/{path.name}"
        entry = _dir_entry(volid, "images", path, known)
        found.append({**entry, "vmid": int(path.parent.name)})
    return found


def _dir_entry(volid: str, content: str, path: Path, known: dict[str, Any]) -> dict[str, Any]:
    stat = path.stat()
    ctime = known.get(volid, {}).get("ctime", int(stat.st_mtime))
    fmt = _file_format(content, path.name)
    return {"volid": volid, "content": content, "format": fmt, "size": stat.st_size, "ctime": ctime}


def list_volumes(ctx: Ctx, state: dict[str, Any], storage: str) -> list[dict[str, Any]]:
    """Every volume of a storage in the shape of GET .../storage/{storage}/content."""
    if STORAGES[storage]["type"] == "dir":
        return _scan_dir_storage(ctx, state, storage)
    entries = state["storage"][ctx.node][storage]
    return [{"volid": volid, **entries[volid]} for volid in sorted(entries)]


@route("GET", "/nodes/{node}/storage/{storage}/content")
def storage_content(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    state = read_state(ctx.root)
    storage_def(state, ctx.node, path["storage"])
    volumes = list_volumes(ctx, state, path["storage"])
    if "content" in params:
        volumes = [v for v in volumes if v["content"] == params["content"]]
    if "vmid" in params:
        volumes = [v for v in volumes if v.get("vmid") == params["vmid"]]
    return volumes


# --- download-url ---------------------------------------------------------------------

IMPORT_NAME_RE = re.compile(r"^[A-Za-z0-9\-.+=_]+\.(ova|qcow2|raw|vmdk)$")
ISO_NAME_RE = re.compile(r"^[^/]+\.(iso|img)$", re.IGNORECASE)
VZTMPL_NAME_RE = re.compile(r"^[^/]+\.(tar|tar\.(gz|xz|zst|bz2))$")
URL_RE = re.compile(r"^https?://.*$")


def sim_image_bytes(name: str) -> bytes:
    """The simulator's image called NAME: exactly `pveplan-sim-image NAME\\n` in UTF-8."""
    return f"pveplan-sim-image {name}\n".encode()


def _normalize_filename(filename: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]", "_", filename.rsplit("/", 1)[-1])


def _check_download(ctx: Ctx, storage: str, params: dict[str, Any]) -> str:
    """The synchronous checks of download-url; returns the normalized file name."""
    if not (URL_RE.match(params["url"]) or params["url"].startswith(SIM_IMAGE_PREFIX)):
        raise param_error({"url": "value does not match the regex pattern"})
    sdef = storage_def(read_state(ctx.root), ctx.node, storage)
    if sdef["path"] is None:
        raise fail(f"can't upload to storage type '{sdef['type']}', not a file based storage!")
    content = params["content"]
    if content not in sdef["content"]:
        raise fail(f"storage '{storage}' is not configured for content-type '{content}'")
    filename = _normalize_filename(params["filename"])
    rules = {"iso": ISO_NAME_RE, "vztmpl": VZTMPL_NAME_RE, "import": IMPORT_NAME_RE}
    if not rules[content].match(filename):
        msg = (
            "invalid filename or wrong extension" if content == "import" else "wrong file extension"
        )
        raise param_error({"filename": msg})
    return filename


def _fetch(url: str) -> bytes:
    """The bytes behind a URL: the simulator's images (`https://images.sim.pveplan.invalid/NAME.EXT`,
    or `sim://images/NAME.EXT`) are served here; there is no network."""
    prefix = next((p for p in (SIM_IMAGE_PREFIX, SIM_IMAGE_HTTPS) if url.startswith(p)), None)
    if prefix is not None:
        name = url[len(prefix) :]
        if not name or "/" in name:
            raise TaskError(f"download failed: 404 Not Found: {url}")
        return sim_image_bytes(name.rsplit(".", 1)[0] if "." in name else name)
    host = re.sub(r"^https?://([^/:]+).*$", r"\1", url)
    raise TaskError(
        f"download failed: wget: unable to resolve host address '{host}' (the simulator has no network)"
    )


def _download_worker(
    ctx: Ctx, storage: str, params: dict[str, Any], filename: str, task: Task
) -> None:
    content, url = params["content"], params["url"]
    fault = take_fault(ctx.root, "download", name=filename)
    target = storage_dir(ctx, storage) / DIR_LAYOUT[content] / filename
    shown = "/" + str(target.relative_to(ctx.root.host_dir(ctx.node)))
    task.log(f"downloading {url} to {shown}")
    if fault:
        raise TaskError(fault)
    if target.exists():
        raise TaskError(f"refusing to override existing file '{shown}'")
    data = _fetch(url)
    task.log(f"download of '{url}' to '{shown}' finished")
    if "checksum" in params:
        _verify_checksum(data, params["checksum-algorithm"], params["checksum"], task)
    _write_atomic(target, data)
    with locked_state(ctx.root) as state:
        entry = {"content": content, "format": _file_format(content, filename), "size": len(data)}
        state["storage"][ctx.node][storage][f"{storage}:{content}/{filename}"] = {
            **entry,
            "ctime": int(time.time()),
        }


def _verify_checksum(data: bytes, algorithm: str, expected: str, task: Task) -> None:
    task.log("calculating checksum...")
    got = hashlib.new(algorithm, data).hexdigest()
    if got.lower() != expected.lower():
        raise TaskError(f"checksum mismatch: got '{got}' != expect '{expected}'")
    task.log("OK, checksum verified")


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@route("POST", "/nodes/{node}/storage/{storage}/download-url")
def download_url(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
    filename = _check_download(ctx, path["storage"], params)
    return run_task(
        ctx,
        "download",
        filename,
        lambda task: _download_worker(ctx, path["storage"], params, filename, task),
    )


# --- cluster, nodes, version ----------------------------------------------------------


@route("GET", "/version")
def version(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    return dict(PVE_VERSION)


@route("GET", "/nodes/{node}/version")
def node_version(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    return dict(PVE_VERSION)


def _uptime() -> int:
    try:
        return int(float(Path("/proc/uptime").read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return 0


def _node_entry(node: str) -> dict[str, Any]:
    digest = hashlib.sha256(node.encode()).hexdigest().upper()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, 64, 2))
    return {
        "node": node,
        "id": f"node/{node}",
        "type": "node",
        "status": "online",
        "cpu": 0.0123,
        "maxcpu": 8,
        "mem": 2 * GIB,
        "maxmem": 32 * GIB,
        "disk": 4 * GIB,
        "maxdisk": 100 * GIB,
        "uptime": _uptime(),
        "level": "",
        "ssl_fingerprint": fingerprint,
    }


@route("GET", "/nodes")
def nodes(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    return [_node_entry(ctx.node)]


@route("GET", "/cluster/nextid")
def nextid(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
    """A free vmid as a JSON *string*, as real PVE returns it."""
    taken = {vm["vmid"] for vm in read_state(ctx.root)["vms"].values() if vm["node"] == ctx.node}
    if "vmid" in params:
        if params["vmid"] in taken:
            raise param_error({"vmid": f"VM {params['vmid']} already exists"})
        return str(params["vmid"])
    low, high = NEXTID_RANGE
    for vmid in range(low, high):
        if vmid not in taken:
            return str(vmid)
    raise fail(f"unable to get any free VMID in range [{low}, {high - 1}]")


def _storage_resource(ctx: Ctx, storage: str) -> dict[str, Any]:
    sdef = STORAGES[storage]
    return {
        "id": f"storage/{ctx.node}/{storage}",
        "type": "storage",
        "storage": storage,
        "node": ctx.node,
        "status": "available",
        "plugintype": sdef["type"],
        "content": ",".join(sdef["content"]),
        "shared": 0,
        "disk": 4 * GIB,
        "maxdisk": 100 * GIB,
    }


@route("GET", "/cluster/resources")
def cluster_resources(
    ctx: Ctx, path: dict[str, Any], params: dict[str, Any]
) -> list[dict[str, Any]]:
    """This node's cluster: each simulated host is a one-node cluster of its own."""
    state = read_state(ctx.root)
    wanted = params.get("type")
    resources: list[dict[str, Any]] = []
    if wanted in (None, "vm"):
        resources += [_resource_entry(vm) for vm in _node_vms(ctx, state)]
    if wanted in (None, "node"):
        resources.append({**_node_entry(ctx.node), "cgroup-mode": 2})
    if wanted in (None, "storage"):
        resources += [_storage_resource(ctx, s) for s in sorted(state["storage"].get(ctx.node, {}))]
    return resources


# --- host networking ------------------------------------------------------------------


@route("GET", "/nodes/{node}/network")
def list_network(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    """The interfaces as PVE reads them: pending changes included, `active` when up."""
    network = _network.node_network(read_state(ctx.root), ctx.node)
    return _network.list_interfaces(network, params.get("type"))


@route("GET", "/nodes/{node}/network/{iface}")
def get_interface(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    network = _network.node_network(read_state(ctx.root), ctx.node)
    entry = _network.interfaces(network).get(path["iface"])
    if entry is None:
        raise param_error({"iface": "interface does not exist"})
    return entry


@route("POST", "/nodes/{node}/network", returns_null=True)
def create_interface(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> None:
    """A new interface, pending until the network is reloaded (PVE's interfaces.new)."""
    with locked_state(ctx.root) as state:
        network = _network.node_network(state, ctx.node)
        errors = _network.create_interface(network, params["iface"], params)
        if errors:
            raise param_error(errors)


@route("PUT", "/nodes/{node}/network")
def reload_network(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
    """Apply the pending changes: a `srvreload` task, after which `auto` interfaces are up."""

    def worker(task: Task) -> None:
        with locked_state(ctx.root) as state:
            _network.apply_pending(_network.node_network(state, ctx.node))

    return run_task(ctx, "srvreload", "networking", worker)


@route("DELETE", "/nodes/{node}/network", returns_null=True)
def revert_network(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> None:
    with locked_state(ctx.root) as state:
        _network.revert(_network.node_network(state, ctx.node))


# --- VM views ---------------------------------------------------------------------------

DRIVE_KEY_RE = re.compile(r"^(?:(?:ide|sata|scsi|virtio)\d+|efidisk0|tpmstate0)$")
DRIVE_ORDER = [
    f"{bus}{i}"
    for bus, n in (("ide", 4), ("sata", 6), ("scsi", 31), ("virtio", 16))
    for i in range(n)
]


def _node_vms(ctx: Ctx, state: dict[str, Any]) -> list[dict[str, Any]]:
    vms = [vm for vm in state["vms"].values() if vm["node"] == ctx.node]
    return sorted(vms, key=lambda vm: vm["vmid"])


def get_vm(state: dict[str, Any], node: str, vmid: int) -> dict[str, Any]:
    """The VM `vmid` of `node`, or PVE's 'Configuration file ... does not exist'."""
    vm = state["vms"].get(vm_key(node, vmid))
    if vm is None:
        raise fail(_conf_missing(node, vmid))
    return vm


def memory_mib(config: dict[str, Any]) -> int:
    value = str(config.get("memory", "512"))
    return int(value.removeprefix("current=").split(",")[0])


def cpu_count(config: dict[str, Any]) -> int:
    return int(config.get("vcpus") or int(config.get("cores", 1)) * int(config.get("sockets", 1)))


def is_cdrom(value: str) -> bool:
    volume, options = split_drive(value)
    return options.get("media") == "cdrom" or volume in ("cdrom", "none")


def drive_bytes(value: str) -> int:
    size = split_drive(value)[1].get("size")
    return parse_size(size, "G") if size else 0


def boot_disk_bytes(config: dict[str, Any]) -> int:
    """The size of the disk the VM boots from (PVE's `maxdisk`)."""
    order = str(config.get("boot", "")).removeprefix("order=").split(";")
    for key in [*order, *DRIVE_ORDER]:
        value = config.get(key)
        if key in DRIVE_ORDER and value and not is_cdrom(str(value)):
            return drive_bytes(str(value))
    return 0


def agent_enabled(config: dict[str, Any]) -> bool:
    values, _ = parse_propstring(FORMATS["AGENT"], str(config.get("agent", "0")))
    return BOOLEAN_WORDS.get(values.get("enabled", "0").lower(), 0) == 1


def _vm_numbers(vm: dict[str, Any]) -> dict[str, Any]:
    """Usage figures: a stopped VM uses nothing; a running one grows with its uptime."""
    config = vm["config"]
    running = vm["status"] == "running"
    uptime = int(time.time() - vm["started_at"]) if running and vm.get("started_at") else 0
    maxmem = memory_mib(config) * MIB
    return {
        "cpus": cpu_count(config),
        "maxmem": maxmem,
        "mem": maxmem * 3 // 10 if running else 0,
        "maxdisk": boot_disk_bytes(config),
        "disk": 0,
        "cpu": 0.0123 if running else 0,
        "netin": 1500 * uptime,
        "netout": 900 * uptime,
        "diskread": 4096 * uptime,
        "diskwrite": 2048 * uptime,
        "uptime": uptime,
    }


def _vm_flags(vm: dict[str, Any]) -> dict[str, Any]:
    """Keys present only when set: lock, tags, template, serial."""
    config = vm["config"]
    flags: dict[str, Any] = {}
    if vm.get("lock"):
        flags["lock"] = vm["lock"]
    if config.get("tags"):
        flags["tags"] = config["tags"]
    if config.get("template"):
        flags["template"] = 1
    if any(re.fullmatch(r"serial\d", key) for key in config):
        flags["serial"] = 1
    return flags


def _vm_pid(vm: dict[str, Any]) -> int:
    return 10000 + vm["vmid"] % 50000


def _vm_name(vm: dict[str, Any]) -> str:
    return vm["config"].get("name") or f"VM {vm['vmid']}"


def _list_entry(vm: dict[str, Any]) -> dict[str, Any]:
    numbers = _vm_numbers(vm)
    entry = {
        "vmid": vm["vmid"],
        "name": _vm_name(vm),
        "status": vm["status"],
        **numbers,
        **_vm_flags(vm),
    }
    for key in ("diskread", "diskwrite"):
        entry.pop(key)
    if vm["status"] == "running":
        entry["pid"] = _vm_pid(vm)
    return entry


def _resource_entry(vm: dict[str, Any]) -> dict[str, Any]:
    numbers = _vm_numbers(vm)
    entry = {
        "id": f"qemu/{vm['vmid']}",
        "type": "qemu",
        "vmid": vm["vmid"],
        "node": vm["node"],
        "name": _vm_name(vm),
        "status": vm["status"],
        "template": 1 if vm["config"].get("template") else 0,
        "maxcpu": numbers.pop("cpus"),
        "memhost": numbers["mem"],
        **numbers,
    }
    entry.update({k: v for k, v in _vm_flags(vm).items() if k in ("lock", "tags")})
    return entry


@route("GET", "/nodes/{node}/qemu")
def list_vms(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    return [_list_entry(vm) for vm in _node_vms(ctx, read_state(ctx.root))]


@route("GET", "/nodes/{node}/qemu/{vmid}")
def vm_index(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    get_vm(read_state(ctx.root), ctx.node, path["vmid"])
    subdirs = ["agent", "config", "pending", "resize", "status", "cloudinit"]
    return [{"subdir": name} for name in subdirs]


@route("GET", "/nodes/{node}/qemu/{vmid}/status/current")
def status_current(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    vm = get_vm(read_state(ctx.root), ctx.node, path["vmid"])
    numbers = _vm_numbers(vm)
    status: dict[str, Any] = {
        "vmid": vm["vmid"],
        "name": _vm_name(vm),
        "status": vm["status"],
        "qmpstatus": vm["status"],
        "memhost": numbers["mem"],
        "ha": {"managed": 0},
        **numbers,
        **_vm_flags(vm),
    }
    if agent_enabled(vm["config"]):
        status["agent"] = 1
    if vm["status"] == "running":
        status.update(_running_extras(vm, numbers))
    else:
        for key in ("diskread", "diskwrite"):
            status.pop(key)
    return status


def _running_extras(vm: dict[str, Any], numbers: dict[str, Any]) -> dict[str, Any]:
    nics = {
        f"tap{vm['vmid']}i{key[3:]}": {"netin": numbers["netin"], "netout": numbers["netout"]}
        for key in sorted(vm["config"])
        if re.fullmatch(r"net\d+", key)
    }
    return {
        "pid": _vm_pid(vm),
        "running-machine": RUNNING_MACHINE,
        "running-qemu": QEMU_VERSION,
        "balloon": numbers["maxmem"],
        "freemem": numbers["maxmem"] - numbers["mem"],
        "nics": nics,
        "proxmox-support": {"backup-fleecing": True, "pbs-dirty-bitmap": True},
    }


def config_text(config: dict[str, Any], lock: str | None) -> str:
    """The config as the lines of its file (sorted): what `digest` is taken over."""
    items = {**config, **({"lock": lock} if lock else {})}
    return "".join(f"{key}: {items[key]}\n" for key in sorted(items))


def config_digest(vm: dict[str, Any]) -> str:
    return hashlib.sha1(config_text(vm["config"], vm.get("lock")).encode()).hexdigest()


@route("GET", "/nodes/{node}/qemu/{vmid}/config")
def get_config(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    vm = get_vm(read_state(ctx.root), ctx.node, path["vmid"])
    if params.get("snapshot"):
        raise fail(f"snapshot '{params['snapshot']}' does not exist")
    result = dict(vm["config"])
    if vm.get("lock"):
        result["lock"] = vm["lock"]
    if "cipassword" in result:
        result["cipassword"] = "**********"
    result["digest"] = config_digest(vm)
    return result


# --- creating and changing VM configs -------------------------------------------------

NEW_DISK_RE = re.compile(r"^(([^/:\s]+):)?(\d+(\.\d+)?)$")
CLOUDINIT_RE = re.compile(r"^([^/:\s]+):cloudinit$")
IMPORT_SYNTAX = "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>"
NOT_CONFIG_KEYS = {
    "vmid",
    "start",
    "storage",
    "pool",
    "archive",
    "force",
    "unique",
    "bwlimit",
    "live-restore",
    "ha-managed",
    "import-working-storage",
    "delete",
    "digest",
    "revert",
    "skiplock",
    "background_delay",
}
SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


@dataclass
class DrivePlan:
    """What to do for one drive parameter, decided (and checked) before the worker runs."""

    key: str
    kind: str  # "new", "import", "cloudinit" or "keep"
    value: str
    options: dict[str, str] = field(default_factory=dict)
    storage: str = ""
    size: int = 0
    source: str = ""


def _valid_ssh_key(line: str) -> bool:
    """What `ssh-keygen -l` accepts, near enough: a known type and a matching blob."""
    import base64
    import struct

    fields = line.split()
    for index, word in enumerate(fields[:-1]):
        if word in SSH_KEY_TYPES:
            try:
                blob = base64.b64decode(fields[index + 1], validate=True)
                (length,) = struct.unpack(">I", blob[:4])
            except (ValueError, struct.error):
                return False
            return blob[4 : 4 + length] == word.encode()
    return False


def check_sshkeys(params: dict[str, Any]) -> None:
    """The decoded `sshkeys` must be valid public keys (PVE runs ssh-keygen on each)."""
    if "sshkeys" not in params:
        return
    lines = [line.strip() for line in unquote(params["sshkeys"]).splitlines()]
    if not all(_valid_ssh_key(line) for line in lines if line and not line.startswith("#")):
        raise fail("SSH public key validation error")


def _drive_format(key: str) -> dict[str, dict[str, Any]]:
    return FORMATS[re.sub(r"\d+$", "", key).upper()]


def plan_drives(
    ctx: Ctx, state: dict[str, Any], params: dict[str, Any], default: str | None
) -> list[DrivePlan]:
    """Check every drive parameter as PVE does before forking (storages, import sources)."""
    plans = []
    for key in sorted(k for k in params if DRIVE_KEY_RE.match(k)):
        values, _ = parse_propstring(_drive_format(key), str(params[key]))
        plans.append(_plan_drive(ctx, state, key, values, default))
    return plans


def _plan_drive(
    ctx: Ctx, state: dict[str, Any], key: str, values: dict[str, str], default: str | None
) -> DrivePlan:
    volume = values.pop("file")
    source = values.pop("import-from", None)
    if match := CLOUDINIT_RE.match(volume):
        _images_storage(state, ctx.node, match[1])
        return DrivePlan(key, "cloudinit", volume, values, storage=match[1])
    match = NEW_DISK_RE.match(volume)
    if not match:
        if source is not None:
            raise param_error({key: IMPORT_SYNTAX})
        return DrivePlan(key, "keep", volume, values)
    storage = match[2] or default
    if not storage:
        raise fail("no storage ID specified (and no default storage)")
    _images_storage(state, ctx.node, storage)
    size = int(float(match[3]) * GIB)
    if source is None:
        return DrivePlan(key, "new", volume, values, storage=storage, size=size)
    if size:
        raise param_error({key: IMPORT_SYNTAX})
    _check_import_source(ctx, state, key, source)
    return DrivePlan(key, "import", volume, values, storage=storage, source=source)


def _images_storage(state: dict[str, Any], node: str, storage: str) -> None:
    if "images" not in storage_def(state, node, storage)["content"]:
        raise param_error({"storage": f"storage '{storage}' does not support vm images"})


def _check_import_source(ctx: Ctx, state: dict[str, Any], key: str, source: str) -> None:
    if source.startswith("/"):
        return  # root@pam on the CLI may import from any path
    volume = parse_volume(ctx, state, source)
    if volume.content not in ("images", "import"):
        raise param_error(
            {key: f"{source} has wrong type '{volume.content}' - needs to be 'images' or 'import'"}
        )


def _source_size(ctx: Ctx, state: dict[str, Any], source: str) -> int:
    """Bytes of an import source; the worker fails like PVE when it is missing."""
    if source.startswith("/"):
        path = ctx.host_path(source)
        if not path.is_file():
            raise TaskError(f"unable to create image: '{source}' does not exist")
        return path.stat().st_size
    size = volume_size(state, ctx.node, parse_volume(ctx, state, source))
    if size is None:
        raise TaskError(f"unable to create image: volume '{source}' does not exist")
    return size


def _volid_for(storage: str, vmid: int, name: str) -> str:
    """The volid a new volume gets: LVM names it, a dir storage files it per VM."""
    if STORAGES[storage]["type"] == "dir":
        return f"{storage}:{vmid}/{name}.qcow2"
    return f"{storage}:{name}"


def _volume_taken(ctx: Ctx, state: dict[str, Any], vmid: int, storage: str, name: str) -> bool:
    volid = _volid_for(storage, vmid, name)
    vm = state["vms"].get(vm_key(ctx.node, vmid))
    if vm is not None and any(split_drive(str(v))[0] == volid for v in vm["config"].values()):
        return True
    if STORAGES[storage]["type"] == "dir":
        return (storage_dir(ctx, storage) / "images" / str(vmid) / f"{name}.qcow2").exists()
    return volid in state["storage"][ctx.node][storage]


def _allocate(
    ctx: Ctx, state: dict[str, Any], vmid: int, storage: str, name: str, size: int
) -> str:
    """Create a volume (an LVM entry, or a sparse file for a dir storage); its volid."""
    volid = _volid_for(storage, vmid, name)
    if STORAGES[storage]["type"] == "dir":
        path = storage_dir(ctx, storage) / "images" / str(vmid) / f"{name}.qcow2"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            handle.truncate(size)
        return volid
    entry = {"content": "images", "format": "raw", "size": size, "ctime": int(time.time())}
    state["storage"][ctx.node][storage][volid] = {**entry, "vmid": vmid}
    return volid


def _free_disk_name(ctx: Ctx, state: dict[str, Any], vmid: int, storage: str) -> str:
    for index in range(1000):
        name = f"vm-{vmid}-disk-{index}"
        if not _volume_taken(ctx, state, vmid, storage, name):
            return name
    raise TaskError(f"unable to allocate an image name for VM {vmid} in storage '{storage}'")


def apply_drives(
    ctx: Ctx, state: dict[str, Any], vmid: int, plans: list[DrivePlan], log: Callable[[str], None]
) -> dict[str, str]:
    """Allocate and import what the plans ask for; the resulting config values by key."""
    result = {}
    for plan in plans:
        if plan.kind == "keep":
            result[plan.key] = join_drive(plan.value, plan.options)
            continue
        if plan.kind == "cloudinit":
            volid = _allocate(ctx, state, vmid, plan.storage, f"vm-{vmid}-cloudinit", 4 * MIB)
            result[plan.key] = f"{volid},media=cdrom"
        else:
            result[plan.key] = _create_disk(ctx, state, vmid, plan, log)
        log(f"{plan.key}: successfully created disk '{result[plan.key]}'")
    return result


def _create_disk(
    ctx: Ctx, state: dict[str, Any], vmid: int, plan: DrivePlan, log: Callable[[str], None]
) -> str:
    size = plan.size
    if plan.kind == "import":
        source_bytes = _source_size(ctx, state, plan.source)
        size = max(source_bytes // GIB, 0) * GIB or 2 * GIB
        log(f"importing disk '{plan.source}' to VM {vmid} ...")
    name = _free_disk_name(ctx, state, vmid, plan.storage)
    if STORAGES[plan.storage]["type"] == "lvmthin":
        log(f'  Logical volume "{name}" created.')
    volid = _allocate(ctx, state, vmid, plan.storage, name, size)
    if plan.kind == "import":
        log(f"transferred 0.0 B of {human_size(size)} (0.00%)")
        log(f"transferred {human_size(size)} of {human_size(size)} (100.00%)")
    options = {k: v for k, v in plan.options.items() if k != "format"}
    return join_drive(volid, {**options, "size": format_size(size)})


def _random_mac() -> str:
    return "BC:24:11:" + ":".join(f"{b:02X}" for b in secrets.token_bytes(3))


def _net_value(text: str) -> str:
    """A NIC as PVE stores it: `model=MAC` first (generated if absent), then options."""
    values, _ = parse_propstring(FORMATS["NET"], text)
    model = values.pop("model")
    mac = values.pop("macaddr", None) or _random_mac()
    return ",".join([f"{model}={mac.upper()}", *(f"{k}={values[k]}" for k in sorted(values))])


def config_values(table: dict[str, dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """The non-drive parameters as config values (normalized the way PVE stores them)."""
    values: dict[str, Any] = {}
    for key, value in params.items():
        if key in NOT_CONFIG_KEYS or DRIVE_KEY_RE.match(key):
            continue
        if key == "tags":
            value = normalize_tags(value)
        elif key == "cipassword":
            value = "$5$" + hashlib.sha256(str(value).encode()).hexdigest()[:43]
        elif key == "vmgenid" and value in ("1", 1):
            value = str(uuid.uuid4())
        elif re.fullmatch(r"net\d+", key):
            value = _net_value(value)
        elif key == "memory":
            value = value.removeprefix("current=")  # PVE prints the default key bare
        values[key] = value
    return values


def _creation_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """What PVE adds to a new VM: meta, smbios1 uuid, vmgenid, and a default boot order."""
    defaults = {
        "meta": f"creation-qemu={QEMU_VERSION},ctime={int(time.time())}",
        "smbios1": f"uuid={uuid.uuid4()}",
        "vmgenid": str(uuid.uuid4()),
    }
    if "boot" not in config:
        defaults["boot"] = "order=" + ";".join(_default_boot(config))
    return {key: value for key, value in defaults.items() if key not in config}


def _default_boot(config: dict[str, Any]) -> list[str]:
    drives = [key for key in DRIVE_ORDER if key in config]
    disk = next((key for key in drives if not is_cdrom(str(config[key]))), None)
    cdrom = next((key for key in drives if is_cdrom(str(config[key]))), None)
    net = next((key for key in sorted(config) if re.fullmatch(r"net\d+", key)), None)
    return [key for key in (disk, cdrom, net) if key]


@route("POST", "/nodes/{node}/qemu")
def create_vm(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
    """Create a VM: synchronous checks, then a `qmcreate` task that allocates the disks."""
    vmid = params["vmid"]
    check_sshkeys(params)
    state = read_state(ctx.root)
    if vm_key(ctx.node, vmid) in state["vms"]:
        raise fail(f"unable to create VM {vmid} - VM {vmid} already exists on node '{ctx.node}'")
    plans = plan_drives(ctx, state, params, params.get("storage"))
    config = config_values(VM_OPTIONS, params)
    start = bool(params.get("start"))
    return run_task(
        ctx,
        "qmcreate",
        str(vmid),
        lambda task: _create_worker(ctx, vmid, config, plans, start, task),
    )


def _create_worker(
    ctx: Ctx, vmid: int, config: dict[str, Any], plans: list[DrivePlan], start: bool, task: Task
) -> None:
    fault = take_fault(ctx.root, "create", vmid=vmid, name=config.get("name"))
    if fault:
        raise TaskError(fault)
    key = vm_key(ctx.node, vmid)
    with locked_state(ctx.root) as state:
        if key in state["vms"]:
            raise TaskError(f"unable to create VM {vmid}: config file already exists")
        state["vms"][key] = {
            "vmid": vmid,
            "node": ctx.node,
            "name": config.get("name"),
            "status": "stopped",
            "config": {},
            "lock": "create",
            "started_at": None,
            "address": allocate_address(state),
        }
    try:
        with locked_state(ctx.root) as state:
            config.update(apply_drives(ctx, state, vmid, plans, task.log))
            config.update(_creation_defaults(config))
            state["vms"][key].update(config=config, lock=None)
    except (TaskError, ApiError):
        with locked_state(ctx.root) as state:
            state["vms"].pop(key, None)
        raise
    if start:
        try:
            boot(ctx, vmid, task)
        except (TaskError, ApiError) as err:
            task.warn(err.message)


def _delete_keys(ctx: Ctx, state: dict[str, Any], vm: dict[str, Any], keys: list[str]) -> None:
    """`delete=`: a removed disk becomes `unusedN`; a cloud-init drive is freed."""
    config = vm["config"]
    for key in keys:
        value = config.pop(key, None)
        if value is None or not DRIVE_KEY_RE.match(key) or str(value).startswith(("none", "cdrom")):
            continue
        volid = split_drive(str(value))[0]
        if volid.endswith("cloudinit") or volid.endswith("cloudinit.qcow2"):
            _free_volume(ctx, state, volid)
        elif not is_cdrom(str(value)):
            slot = next(i for i in range(256) if f"unused{i}" not in config)
            config[f"unused{slot}"] = volid


def _free_volume(ctx: Ctx, state: dict[str, Any], volid: str) -> None:
    try:
        volume = parse_volume(ctx, state, volid)
    except ApiError:
        return
    if volume.path is not None:
        volume.path.unlink(missing_ok=True)
    else:
        state["storage"][ctx.node][volume.storage].pop(volid, None)


def update_config(ctx: Ctx, vmid: int, params: dict[str, Any], log: Callable[[str], None]) -> None:
    """PUT/POST .../config: checks in PVE's order, then deletions and new values."""
    changes = {k: v for k, v in params.items() if k not in NOT_CONFIG_KEYS and k != "force"}
    deletes = split_list(params.get("delete", ""))
    if not changes and not deletes and not params.get("revert"):
        raise fail("no options specified")
    for key in deletes:
        if key in changes:
            raise param_error(
                {"delete": f"you can't use '-{key}' and -delete {key}' at the same time"}
            )
    check_sshkeys(changes)
    with locked_state(ctx.root) as state:
        vm = get_vm(state, ctx.node, vmid)
        if params.get("digest") and params["digest"] != config_digest(vm):
            raise fail("checksum mismatch (file change by other user?)")
        if vm.get("lock") and not params.get("skiplock"):
            raise fail(f"VM is locked ({vm['lock']})")
        plans = plan_drives(ctx, state, changes, None)
        _delete_keys(ctx, state, vm, deletes)
        vm["config"].update(config_values(VM_OPTIONS, changes))
        vm["config"].update(apply_drives(ctx, state, vmid, plans, log))
        if "tags" in changes and not vm["config"]["tags"]:
            del vm["config"]["tags"]
        vm["name"] = vm["config"].get("name")


@route("PUT", "/nodes/{node}/qemu/{vmid}/config", returns_null=True)
def put_config(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> None:
    update_config(ctx, path["vmid"], params, lambda line: _out(line + "\n"))


@route("POST", "/nodes/{node}/qemu/{vmid}/config")
def post_config(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
    vmid = path["vmid"]
    return run_task(
        ctx, "qmconfig", str(vmid), lambda task: update_config(ctx, vmid, params, task.log)
    )


# --- resize ----------------------------------------------------------------------------


def _resize_worker(ctx: Ctx, vmid: int, params: dict[str, Any], task: Task) -> None:
    disk, size_text = params["disk"], params["size"]
    with locked_state(ctx.root) as state:
        vm = get_vm(state, ctx.node, vmid)
        if params.get("digest") and params["digest"] != config_digest(vm):
            raise TaskError("checksum mismatch (file change by other user?)")
        if vm.get("lock") and not params.get("skiplock"):
            raise TaskError(f"VM is locked ({vm['lock']})")
        value = vm["config"].get(disk)
        if value is None:
            raise TaskError(f"disk '{disk}' does not exist")
        if is_cdrom(str(value)):
            raise TaskError("you can't resize a cdrom")
        current = drive_bytes(str(value))
        grow = size_text.startswith("+")
        wanted = parse_size(size_text.lstrip("+"))
        new_size = current + wanted if grow else wanted
        if new_size < current:
            raise TaskError("shrinking disks is not supported")
        if new_size == current:
            return
        volid, options = split_drive(str(value))
        _resize_volume(ctx, state, volid, new_size)
        vm["config"][disk] = join_drive(volid, {**options, "size": format_size(new_size)})
        task.log(
            f"  Size of logical volume {volid} changed from {human_size(current)} to {human_size(new_size)}."
        )


def _resize_volume(ctx: Ctx, state: dict[str, Any], volid: str, size: int) -> None:
    volume = parse_volume(ctx, state, volid)
    if volume.path is not None:
        if volume.path.exists():
            os.truncate(volume.path, size)
        return
    entry = state["storage"][ctx.node][volume.storage].get(volid)
    if entry is not None:
        entry["size"] = size


@route("PUT", "/nodes/{node}/qemu/{vmid}/resize")
def resize(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
    vmid = path["vmid"]
    return run_task(ctx, "resize", str(vmid), lambda task: _resize_worker(ctx, vmid, params, task))


# --- power -----------------------------------------------------------------------------


def _cloud_init_drive(config: dict[str, Any]) -> bool:
    return any(
        DRIVE_KEY_RE.match(key) and "cloudinit" in split_drive(str(value))[0]
        for key, value in config.items()
    )


def _snippet_text(ctx: Ctx, state: dict[str, Any], volid: str) -> str:
    volume = parse_volume(ctx, state, volid)
    if volume.content != "snippets" or volume.path is None:
        raise TaskError(f"{volid} is not in the snippets directory")
    try:
        return volume.path.read_text()
    except OSError as err:
        shown = "/" + str(volume.path.relative_to(ctx.root.host_dir(ctx.node)))
        raise TaskError(f"unable to open file '{shown}' - {err.strerror}") from err


def _generated_user_data(vm: dict[str, Any]) -> str:
    """The user-data PVE writes on the cloud-init drive from `ciuser`/`sshkeys`."""
    config = vm["config"]
    hostname = config.get("name") or f"VM{vm['vmid']}"
    lines = [
        "#cloud-config",
        f"hostname: {hostname}",
        "manage_etc_hosts: true",
        f"fqdn: {hostname}",
    ]
    if config.get("ciuser"):
        lines.append(f"user: {config['ciuser']}")
    keys = [k.strip() for k in unquote(str(config.get("sshkeys", ""))).splitlines() if k.strip()]
    if keys:
        lines.append("ssh_authorized_keys:")
        lines += [f"  - {json.dumps(key)}" for key in keys]
    lines += ["chpasswd:", "  expire: False", "users:", "  - default", "package_upgrade: true"]
    return "\n".join(lines) + "\n"


def cloud_init_user_data(ctx: Ctx, state: dict[str, Any], vm: dict[str, Any]) -> str | None:
    """What the VM's cloud-init will read: a `cicustom` user snippet, or PVE's own."""
    config = vm["config"]
    if not _cloud_init_drive(config):
        return None
    custom = dict(
        part.split("=", 1) for part in str(config.get("cicustom", "")).split(",") if "=" in part
    )
    if "user" in custom:
        return _snippet_text(ctx, state, custom["user"])
    return _generated_user_data(vm)


def boot(ctx: Ctx, vmid: int, task: Task) -> None:
    """Start a VM: checks in PVE's order, a fault if configured, cloud-init, running."""
    state = read_state(ctx.root)
    vm = state["vms"].get(vm_key(ctx.node, vmid))
    if vm is None:
        raise TaskError(_conf_missing(ctx.node, vmid))
    if vm.get("lock"):
        raise TaskError(f"VM is locked ({vm['lock']})")
    if vm["config"].get("template"):
        raise TaskError("you can't start a vm if it's a template")
    if vm["status"] == "running":
        raise TaskError(f"VM {vmid} already running")
    fault = take_fault(ctx.root, "start", vmid=vmid, name=vm["config"].get("name"))
    if fault:
        raise TaskError(fault)
    user_data = cloud_init_user_data(ctx, state, vm)
    if user_data is not None:
        task.log("generating cloud-init ISO")
    bridge = _network.missing_bridge(_network.node_network(state, ctx.node), vm["config"])
    if bridge is not None:
        raise TaskError(f"bridge '{bridge}' does not exist")
    from pveplan.sim._guest import apply_cloud_init

    apply_cloud_init(
        ctx.root, ctx.node, vmid, user_data, hostname=vm["config"].get("name") or f"VM{vmid}"
    )
    with locked_state(ctx.root) as state:
        get_vm(state, ctx.node, vmid).update(status="running", started_at=time.time())
    launch(ctx.root, ctx.node, vmid)  # cloud-init's final stage: runcmd, after the boot


def _stop_worker(ctx: Ctx, vmid: int, op: str, params: dict[str, Any], task: Task) -> None:
    state = read_state(ctx.root)
    vm = state["vms"].get(vm_key(ctx.node, vmid))
    if vm is None:
        raise TaskError(f"unable to find configuration file for VM {vmid} on node '{ctx.node}'")
    if vm.get("lock") and not params.get("skiplock"):
        raise TaskError(f"VM is locked ({vm['lock']})")
    fault = take_fault(ctx.root, "stop", vmid=vmid, name=vm["config"].get("name"))
    if fault:
        raise TaskError(fault)
    with locked_state(ctx.root) as state:
        get_vm(state, ctx.node, vmid).update(status="stopped", started_at=None)
    kill_runcmd(ctx.root, ctx.node, vmid, op)  # after the status: a runner starting now exits


def _power_route(op: str) -> Handler:
    wtype = {"start": "qmstart", "stop": "qmstop", "shutdown": "qmshutdown"}[op]

    def handler(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
        vmid = path["vmid"]
        if op == "start":
            return run_task(ctx, wtype, str(vmid), lambda task: boot(ctx, vmid, task))
        return run_task(
            ctx, wtype, str(vmid), lambda task: _stop_worker(ctx, vmid, op, params, task)
        )

    handler.__doc__ = f"POST .../status/{op}: a UPID even for a missing VM; the task fails."
    return route("POST", f"/nodes/{{node}}/qemu/{{vmid}}/status/{op}")(handler)


for _op in ("start", "stop", "shutdown"):
    _power_route(_op)


def _restart_route(op: str) -> Handler:
    def handler(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
        vmid = path["vmid"]
        vm = read_state(ctx.root)["vms"].get(vm_key(ctx.node, vmid))
        if vm is None:
            raise fail(f"unable to find configuration file for VM {vmid} on node '{ctx.node}'")
        if vm["status"] != "running":
            raise fail(f"VM {vmid} not running")

        def worker(task: Task) -> None:
            with locked_state(ctx.root) as state:
                get_vm(state, ctx.node, vmid)["started_at"] = time.time()

        return run_task(ctx, f"qm{op}", str(vmid), worker)

    handler.__doc__ = f"POST .../status/{op}: refused synchronously unless the VM runs."
    return route("POST", f"/nodes/{{node}}/qemu/{{vmid}}/status/{op}")(handler)


for _op in ("reboot", "reset"):
    _restart_route(_op)


# --- destroy ---------------------------------------------------------------------------


def _doomed_volumes(
    ctx: Ctx, state: dict[str, Any], vm: dict[str, Any], unreferenced: bool
) -> list[str]:
    """What destroy removes: the VM's own disks in its config, and with
    `destroy-unreferenced-disks` every other volume it owns (never an ISO or another
    VM's disk that the config merely points at)."""
    vmid = vm["vmid"]
    owned = re.compile(rf"^[^:]+:(?:{vmid}/)?vm-{vmid}-")
    volids = {
        split_drive(str(value))[0]
        for key, value in vm["config"].items()
        if DRIVE_KEY_RE.match(key) or key.startswith("unused")
    }
    if unreferenced:
        for volumes in state["storage"][ctx.node].values():
            volids.update(v for v, entry in volumes.items() if entry.get("vmid") == vmid)
        volids.update(
            v["volid"] for v in _scan_dir_storage(ctx, state, "local") if v.get("vmid") == vmid
        )
    return sorted(volid for volid in volids if owned.match(volid))


def _destroy_worker(ctx: Ctx, vmid: int, params: dict[str, Any], task: Task) -> None:
    vm = get_vm(read_state(ctx.root), ctx.node, vmid)
    fault = take_fault(ctx.root, "destroy", vmid=vmid, name=vm["config"].get("name"))
    if fault:
        raise TaskError(fault)
    with locked_state(ctx.root) as state:
        vm = get_vm(state, ctx.node, vmid)
        for volid in _doomed_volumes(
            ctx, state, vm, bool(params.get("destroy-unreferenced-disks"))
        ):
            _free_volume(ctx, state, volid)
            if STORAGES[volid.split(":")[0]]["type"] == "lvmthin":
                task.log(f'  Logical volume "{volid.split(":", 1)[1]}" successfully removed.')
        inner = nested_host(state, ctx.node, vmid)  # a PVE host: its guests die with it
        doomed = remove_host_node(ctx.root, state, inner) if inner is not None else []
        del state["vms"][vm_key(ctx.node, vmid)]
        kill_runcmd(ctx.root, ctx.node, vmid, "destroyed")
    with contextlib.suppress(OSError):
        (storage_dir(ctx, "local") / "images" / str(vmid)).rmdir()  # only once empty
    if params.get("purge"):
        task.log(f"purging VM {vmid} from related configurations..")
    delete_trees([*doomed, ctx.root.vm_dir(ctx.node, vmid)])


@route("DELETE", "/nodes/{node}/qemu/{vmid}")
def destroy_vm(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> str:
    vmid = path["vmid"]
    vm = get_vm(read_state(ctx.root), ctx.node, vmid)
    if vm.get("lock") and not params.get("skiplock"):
        raise fail(f"VM is locked ({vm['lock']})")
    if vm["config"].get("protection"):
        raise fail(f"can't remove VM {vmid} - protection mode enabled")
    if vm["status"] == "running":
        raise fail(f"VM {vmid} is running - destroy failed")
    return run_task(
        ctx, "qmdestroy", str(vmid), lambda task: _destroy_worker(ctx, vmid, params, task)
    )


# --- guest agent -------------------------------------------------------------------------

AGENT_DOWN = "QEMU guest agent is not running"


def _agent_vm(ctx: Ctx, vmid: int) -> dict[str, Any]:
    """The VM, once the agent checks pass in PVE's order (configured, running, answering)."""
    vm = get_vm(read_state(ctx.root), ctx.node, vmid)
    if not agent_enabled(vm["config"]):
        raise fail("No QEMU guest agent configured")
    if vm["status"] != "running":
        raise fail(f"VM {vmid} is not running")
    if take_fault(ctx.root, "agent", vmid=vmid, name=vm["config"].get("name")):
        raise fail(AGENT_DOWN)
    delay = float(read_config(ctx.root)["agent_delay"])
    if time.time() < float(vm["started_at"] or 0) + delay:
        raise fail(AGENT_DOWN)
    return vm


def _link_local(mac: str) -> str:
    """The EUI-64 IPv6 link-local address of a MAC."""
    octets = [int(part, 16) for part in mac.split(":")]
    octets[0] ^= 0x02
    eui = [*octets[:3], 0xFF, 0xFE, *octets[3:]]
    groups = [f"{eui[i] << 8 | eui[i + 1]:x}" for i in range(0, 8, 2)]
    return "fe80::" + ":".join(groups)


def _statistics(scale: int) -> dict[str, int]:
    return {
        "rx-bytes": 1500 * scale,
        "rx-dropped": 0,
        "rx-errs": 0,
        "rx-packets": 12 * scale,
        "tx-bytes": 900 * scale,
        "tx-dropped": 0,
        "tx-errs": 0,
        "tx-packets": 9 * scale,
    }


def network_interfaces(vm: dict[str, Any]) -> list[dict[str, Any]]:
    """`lo` plus `ens18` carrying the VM's simulated (loopback) address."""
    uptime = max(1, int(time.time() - float(vm["started_at"] or time.time())))
    net0 = str(vm["config"].get("net0", "virtio=BC:24:11:00:00:01"))
    mac = net0.split(",")[0].split("=")[-1].lower()
    lo_addresses = [
        {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
        {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128},
    ]
    ens_addresses = [
        {"ip-address": vm["address"], "ip-address-type": "ipv4", "prefix": 8},
        {"ip-address": _link_local(mac), "ip-address-type": "ipv6", "prefix": 64},
    ]
    return [
        {
            "hardware-address": "00:00:00:00:00:00",
            "ip-addresses": lo_addresses,
            "name": "lo",
            "statistics": _statistics(uptime),
        },
        {
            "hardware-address": mac,
            "ip-addresses": ens_addresses,
            "name": "ens18",
            "statistics": _statistics(uptime * 7),
        },
    ]


@route("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces")
def agent_interfaces(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    return {"result": network_interfaces(_agent_vm(ctx, path["vmid"]))}


@route("POST", "/nodes/{node}/qemu/{vmid}/agent/ping")
def agent_ping(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    _agent_vm(ctx, path["vmid"])
    return {"result": {}}


# --- API tokens --------------------------------------------------------------------------


@route("POST", "/access/users/{userid}/token/{tokenid}")
def add_token(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Create an API token; its secret is shown this once."""
    userid, tokenid = path["userid"], path["tokenid"]
    errors = {}
    if not USERID_RE.match(userid) or len(userid) > 64:
        errors["userid"] = "invalid format - value does not look like a valid user ID\n"
    if not TOKENID_RE.match(tokenid):
        errors["tokenid"] = "value does not match the regex pattern"
    if errors:
        raise param_error(errors)
    if userid != CLI_USER:
        raise fail(f"no such user ('{userid}')")
    full = f"{userid}!{tokenid}"
    value = str(uuid.uuid4())
    with locked_state(ctx.root) as state:
        tokens = state["tokens"].setdefault(ctx.node, {})
        if full in tokens:
            raise param_error({"tokenid": "Token already exists."})
        tokens[full] = {"privsep": params.get("privsep", 1), "value": value}
    # The CLI hands the handler strings, and PVE echoes them: `"privsep":"0"` (default 1).
    info: dict[str, Any] = {"privsep": str(params["privsep"]) if "privsep" in params else 1}
    info.update({key: params[key] for key in ("comment", "expire") if key in params})
    return {"full-tokenid": full, "info": info, "value": value}


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
                _err(f"Option {name} requires an argument")
                raise ApiError(400, "unable to parse option")
            value, index = following, index + 1
        target = opts.output if name == "output-format" or name in FORMAT_FLAGS else opts.params
        target[name] = value
    return opts


def _print_result(found: Route, data: Any, opts: Options, fmt: str) -> None:
    if found.returns_null or opts.output.get("quiet") not in (None, "0"):
        return
    if fmt == "yaml":
        import yaml

        _out(yaml.safe_dump(data, sort_keys=True, default_flow_style=False))
        return
    _out(render(data, fmt))


def pvesh_main(ctx: Ctx, argv: list[str]) -> int:
    """`pvesh get|create|set|delete PATH [OPTIONS]`."""
    if not argv or argv[0] not in CLI_METHODS:
        _err(f"ERROR: unknown command 'pvesh {argv[0]}'" if argv else "ERROR: no command specified")
        _err("USAGE: pvesh <COMMAND> [ARGS] [OPTIONS]")
        return 255
    if len(argv) < 2:
        raise ApiError(400, "not enough arguments")
    found, path = find_route(argv[0], argv[1])
    opts = parse_options(argv[2:], found.table)
    if opts.positional:
        raise ApiError(400, "too many arguments")
    fmt = opts.output_format  # checked before any work is done
    data = call_route(ctx, found, path, opts.params)
    _print_result(found, data, opts, fmt)
    return 0


# --- qm --------------------------------------------------------------------------------


class QmUsage(Exception):
    """A qm command line PVE's CLIHandler rejects before calling any API method."""


def _qm_call(ctx: Ctx, cmd: str, template: str, opts: Options, **fixed: str) -> Any:
    """Call the API method behind a qm command (path fields and fixed parameters filled)."""
    path = template.format(
        node=ctx.node, **{k: v for k, v in fixed.items() if "{" + k + "}" in template}
    )
    params = {**opts.params, **{k: v for k, v in fixed.items() if "{" + k + "}" not in template}}
    return call_api(ctx, cmd, path, params)


def _qm_options(
    ctx: Ctx,
    cmd: str,
    template: str,
    argv: list[str],
    count: int,
    extra: dict[str, dict[str, Any]] | None = None,
) -> tuple[list[str], Options]:
    """qm's positional arguments (exactly `count`) and options, parsed per the API method."""
    found, _ = find_route(cmd, template.format(node=ctx.node, vmid=100))
    opts = parse_options(argv, {**found.table, **(extra or {})})
    if len(opts.positional) < count:
        raise QmUsage("not enough arguments")
    if len(opts.positional) > count:
        raise QmUsage("too many arguments")
    return opts.positional, opts


def _sshkeys_from_file(ctx: Ctx, opts: Options) -> None:
    """qm reads `--sshkeys FILE` and URL-encodes it (the API wants the encoded text)."""
    if "sshkeys" not in opts.params:
        return
    name = opts.params["sshkeys"]
    try:
        text = ctx.host_path(name).read_text()
    except OSError as err:
        raise fail(f"unable to open file '{name}' - {err.strerror}") from err
    opts.params["sshkeys"] = quote(text, safe="")


def _wait_task(ctx: Ctx, upid: str) -> int:
    """qm blocks until the task ends: exit 255 when the worker failed (already on stderr)."""
    return 255 if task_failed(ctx, upid) is not None else 0


VM_PATH = "/nodes/{node}/qemu/{vmid}"


def qm_list(ctx: Ctx, argv: list[str]) -> int:
    """`qm list`: PVE's printf columns, nothing at all when there are no VMs."""
    _qm_options(ctx, "get", "/nodes/{node}/qemu", argv, 0)
    vms = sorted(list_vms(ctx, {}, {}), key=lambda vm: vm["vmid"])
    if vms:
        _out(
            f"{'VMID':>10} {'NAME':<20} {'STATUS':<10} {'MEM(MB)':<10} {'BOOTDISK(GB)':>12} {'PID':<10}\n"
        )
    for vm in vms:
        memory, disk, pid = vm["maxmem"] // MIB, vm["maxdisk"] / GIB, vm.get("pid", 0)
        _out(
            f"{vm['vmid']:>10} {vm['name']:<20} {vm['status']:<10} {memory:<10} {disk:>12.2f} {pid:<10}\n"
        )
    return 0


def qm_status(ctx: Ctx, argv: list[str]) -> int:
    verbose_flag = {"verbose": {"type": "boolean"}}
    (vmid,), opts = _qm_options(ctx, "get", VM_PATH + "/status/current", argv, 1, verbose_flag)
    verbose = opts.params.pop("verbose", "0") not in ("0", "")
    status = _qm_call(ctx, "get", VM_PATH + "/status/current", opts, vmid=vmid)
    if not verbose:
        _out(f"status: {status['status']}\n")
        return 0
    _out("".join(f"{key}: {_cell(status[key])}\n" for key in sorted(status)))
    return 0


def _qm_power(op: str) -> Callable[[Ctx, list[str]], int]:
    def command(ctx: Ctx, argv: list[str]) -> int:
        template = VM_PATH + f"/status/{op}"
        (vmid,), opts = _qm_options(ctx, "create", template, argv, 1)
        return _wait_task(ctx, _qm_call(ctx, "create", template, opts, vmid=vmid))

    command.__doc__ = f"`qm {op} VMID`: blocks until the task ends."
    return command


def qm_destroy(ctx: Ctx, argv: list[str]) -> int:
    (vmid,), opts = _qm_options(ctx, "delete", VM_PATH, argv, 1)
    return _wait_task(ctx, _qm_call(ctx, "delete", VM_PATH, opts, vmid=vmid))


def qm_config(ctx: Ctx, argv: list[str]) -> int:
    """`qm config VMID`: sorted `key: value` lines, without the digest."""
    (vmid,), opts = _qm_options(ctx, "get", VM_PATH + "/config", argv, 1)
    config = _qm_call(ctx, "get", VM_PATH + "/config", opts, vmid=vmid)
    _out("".join(f"{key}: {config[key]}\n" for key in sorted(config) if key != "digest"))
    return 0


def qm_create(ctx: Ctx, argv: list[str]) -> int:
    (vmid,), opts = _qm_options(ctx, "create", "/nodes/{node}/qemu", argv, 1)
    _sshkeys_from_file(ctx, opts)
    return _wait_task(ctx, _qm_call(ctx, "create", "/nodes/{node}/qemu", opts, vmid=vmid))


def qm_set(ctx: Ctx, argv: list[str]) -> int:
    (vmid,), opts = _qm_options(ctx, "set", VM_PATH + "/config", argv, 1)
    _sshkeys_from_file(ctx, opts)
    _qm_call(ctx, "set", VM_PATH + "/config", opts, vmid=vmid)
    return 0


def qm_resize(ctx: Ctx, argv: list[str]) -> int:
    (vmid, disk, size), opts = _qm_options(ctx, "set", VM_PATH + "/resize", argv, 3)
    return _wait_task(
        ctx, _qm_call(ctx, "set", VM_PATH + "/resize", opts, vmid=vmid, disk=disk, size=size)
    )


AGENT_COMMANDS = ("network-get-interfaces", "ping")


def qm_guest(ctx: Ctx, argv: list[str]) -> int:
    """`qm guest cmd VMID COMMAND`: the bare `result`, pretty-printed."""
    if not argv or argv[0] != "cmd":
        raise QmUsage(f"unknown command 'qm guest {argv[0] if argv else ''}'".rstrip())
    return qm_agent(ctx, argv[1:])


def qm_agent(ctx: Ctx, argv: list[str]) -> int:
    """`qm agent VMID COMMAND` (the older spelling of `qm guest cmd`)."""
    if len(argv) != 2:
        raise QmUsage("not enough arguments" if len(argv) < 2 else "too many arguments")
    vmid, command = argv
    if command not in AGENT_COMMANDS:
        choices = ", ".join(AGENT_COMMANDS)
        raise param_error(
            {"command": f"value '{command}' does not have a value in the enumeration '{choices}'"}
        )
    cmd = "create" if command == "ping" else "get"
    result = call_api(ctx, cmd, f"/nodes/{ctx.node}/qemu/{vmid}/agent/{command}", {})
    if command != "ping":
        _out(json_pretty(result["result"]) + "\n")
    return 0


QM_COMMANDS: dict[str, Callable[[Ctx, list[str]], int]] = {
    "list": qm_list,
    "status": qm_status,
    "start": _qm_power("start"),
    "stop": _qm_power("stop"),
    "shutdown": _qm_power("shutdown"),
    "reboot": _qm_power("reboot"),
    "reset": _qm_power("reset"),
    "destroy": qm_destroy,
    "config": qm_config,
    "create": qm_create,
    "set": qm_set,
    "resize": qm_resize,
    "guest": qm_guest,
    "agent": qm_agent,
}
QM_USAGE = {
    "list": "qm list  [OPTIONS]",
    "resize": "qm resize <vmid> <disk> <size> [OPTIONS]",
    "guest": "qm guest cmd <vmid> <command>",
    "agent": "qm agent <vmid> <command>",
}


def _qm_usage(command: str) -> str:
    return QM_USAGE.get(command, f"qm {command} <vmid> [OPTIONS]")


def qm_main(ctx: Ctx, argv: list[str]) -> int:
    """`qm COMMAND ARGS...`: parameter errors add the command's usage, like CLIHandler."""
    command = argv[0] if argv else ""
    if command not in QM_COMMANDS:
        _err(f"ERROR: unknown command 'qm {command}'" if argv else "ERROR: no command specified")
        _err("USAGE: qm <COMMAND> [ARGS] [OPTIONS]")
        return 255
    try:
        return QM_COMMANDS[command](ctx, argv[1:])
    except QmUsage as err:
        _err(f"400 {err}\n{_qm_usage(command)}")
        return 255
    except ApiError as err:
        usage = _qm_usage(command) + "\n" if err.status == 400 else ""
        _err(render_error(err) + usage)
        return 255


# --- pveum -----------------------------------------------------------------------------


def pveum_main(ctx: Ctx, argv: list[str]) -> int:
    """`pveum user token add USERID TOKENID [--privsep 0|1] [--output-format ...]`."""
    if argv[:3] != ["user", "token", "add"]:
        _err(f"ERROR: unknown command 'pveum {' '.join(argv[:3])}'")
        _err("USAGE: pveum <COMMAND> [ARGS] [OPTIONS]")
        return 255
    template = "/access/users/{userid}/token/{tokenid}"
    found, _ = find_route("create", template)
    opts = parse_options(argv[3:], found.table)
    if len(opts.positional) != 2:
        many = len(opts.positional) > 2
        _err(f"400 {'too many' if many else 'not enough'} arguments")
        _err("pveum user token add <userid> <tokenid> [OPTIONS] [FORMAT_OPTIONS]")
        return 255
    userid, tokenid = opts.positional
    fmt = opts.output_format
    data = call_api(
        ctx, "create", f"/access/users/{quote(userid)}/token/{quote(tokenid)}", opts.params
    )
    _out(render(data, fmt))
    return 0


# --- pveversion ---------------------------------------------------------------------------


def pveversion_main(ctx: Ctx, argv: list[str]) -> int:
    """`pveversion [-v|--verbose]`: the manager's version line, or the package list."""
    unknown = [arg for arg in argv if arg not in ("-v", "--verbose")]
    if unknown:
        _err(f"Unknown option: {unknown[0].lstrip('-')}\n400 unable to parse option")
        _err("pveversion [OPTIONS]")
        return 255
    release, version, repoid = PVE_VERSION["release"], PVE_VERSION["version"], PVE_VERSION["repoid"]
    if not argv:
        _out(f"pve-manager/{version}/{repoid} (running kernel: {KERNEL_RELEASE})\n")
        return 0
    _out(
        f"proxmox-ve: {release}.0 (running kernel: {KERNEL_RELEASE})\n"
        f"pve-manager: {version} (running version: {version}/{repoid})\n"
        f"qemu-server: {release}.2\n"
        f"pve-qemu-kvm: {QEMU_VERSION}-1\n"
    )
    return 0


# --- entry points ------------------------------------------------------------------------

TOOLS: dict[str, Callable[[Ctx, list[str]], int]] = {
    "pvesh": pvesh_main,
    "qm": qm_main,
    "pveum": pveum_main,
}
LOCAL_TOOLS: dict[str, Callable[[Ctx, list[str]], int]] = {"pveversion": pveversion_main}
"""Host commands that read local files only: no API call, so no latency and no record."""


def _run_tool(tool: str, ctx: Ctx, argv: list[str]) -> int:
    try:
        return TOOLS[tool](ctx, argv)
    except NoHandler as err:
        _err(err.message)
        return 1
    except ApiError as err:
        _err(render_error(err))
        return 255


def main(tool: str, argv: list[str], root: str, node: str) -> int:
    """Run simulated `tool` (pvesh, qm or pveum) on host `node` of simulator `root`.

    Sleeps the configured latency first (a real API call is never instant) and records
    the call in `calls.jsonl`, whatever its outcome.
    """
    sim = SimRoot(root)
    if tool in LOCAL_TOOLS:
        return LOCAL_TOOLS[tool](Ctx(sim, node), list(argv))
    code = 1
    try:
        time.sleep(float(read_config(sim).get("latency") or 0))
        code = _run_tool(tool, Ctx(sim, node), list(argv))
        return code
    finally:
        append_record(sim.calls, {"tool": tool, "argv": list(argv), "node": node, "exit": code})


# --- the schema of the simulated methods ---------------------------------------------------
# Generated from pve-api-subset.json (PVE 9.1 apidata): for each parameter its type and the
# constraints pve-common's JSONSchema checks; property-string formats by name. Path
# parameters ({node}, {vmid}, ...) are checked by the router and the handlers.

# fmt: off
FORMATS: dict[str, dict[str, dict[str, Any]]] = {
    "AGENT": {
        "enabled": {"type": "boolean", "default_key": 1, "required": True},
        "freeze-fs": {"type": "boolean"},
        "freeze-fs-on-backup": {"alias": "freeze-fs"},
        "fstrim_cloned_disks": {"type": "boolean"},
        "guest-fsfreeze": {"alias": "freeze-fs"},
        "type": {"type": "string", "enum": ["virtio", "isa"]},
    },
    "AUDIO": {
        "device": {"type": "string", "enum": ["ich9-intel-hda", "intel-hda", "AC97"], "required": True},
        "driver": {"type": "string", "enum": ["spice", "none"]},
    },
    "EFIDISK": {
        "efitype": {"type": "string", "enum": ["2m", "4m"]},
        "file": {"type": "string", "format": "pve-volume-id-or-qm-path", "default_key": 1, "required": True},
        "format": {"type": "string", "enum": ["raw", "qcow", "qed", "qcow2", "vmdk", "cloop"]},
        "import-from": {"type": "string", "format": "pve-volume-id-or-absolute-path"},
        "ms-cert": {"type": "string", "enum": ["2011", "2023", "2023w", "2023k"]},
        "pre-enrolled-keys": {"type": "boolean"},
        "size": {"type": "string", "format": "disk-size"},
        "volume": {"alias": "file"},
    },
    "IVSHMEM": {
        "name": {"type": "string", "pattern": "[a-zA-Z0-9\\-]+"},
        "size": {"type": "integer", "minimum": 1, "required": True},
    },
    "MACHINE": {
        "aw-bits": {"type": "number", "minimum": 32, "maximum": 64},
        "enable-s3": {"type": "boolean"},
        "enable-s4": {"type": "boolean"},
        "type": {"type": "string", "pattern": "(pc|pc(-i440fx)?-\\d+(\\.\\d+)+(\\+pve\\d+)?(\\.pxe)?|q35|pc-q35-\\d+(\\.\\d+)+(\\+pve\\d+)?(\\.pxe)?|virt(?:-\\d+(\\.\\d+)+)?(\\+pve\\d+)?)", "maxLength": 40, "default_key": 1},
        "viommu": {"type": "string", "enum": ["intel", "virtio"]},
    },
    "MEMORY": {
        "current": {"type": "integer", "minimum": 16, "default_key": 1, "required": True},
    },
    "NET": {
        "bridge": {"type": "string", "format": "pve-bridge-id"},
        "e1000": {"alias": "macaddr", "keyAlias": "model"},
        "e1000-82540em": {"alias": "macaddr", "keyAlias": "model"},
        "e1000-82544gc": {"alias": "macaddr", "keyAlias": "model"},
        "e1000-82545em": {"alias": "macaddr", "keyAlias": "model"},
        "e1000e": {"alias": "macaddr", "keyAlias": "model"},
        "firewall": {"type": "boolean"},
        "i82551": {"alias": "macaddr", "keyAlias": "model"},
        "i82557b": {"alias": "macaddr", "keyAlias": "model"},
        "i82559er": {"alias": "macaddr", "keyAlias": "model"},
        "link_down": {"type": "boolean"},
        "macaddr": {"type": "string", "format": "mac-addr"},
        "model": {"type": "string", "enum": ["e1000", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e", "i82551", "i82557b", "i82559er", "ne2k_isa", "ne2k_pci", "pcnet", "rtl8139", "virtio", "vmxnet3"], "default_key": 1, "required": True},
        "mtu": {"type": "integer", "minimum": 1, "maximum": 65520},
        "ne2k_isa": {"alias": "macaddr", "keyAlias": "model"},
        "ne2k_pci": {"alias": "macaddr", "keyAlias": "model"},
        "pcnet": {"alias": "macaddr", "keyAlias": "model"},
        "queues": {"type": "integer", "minimum": 0, "maximum": 64},
        "rate": {"type": "number", "minimum": 0},
        "rtl8139": {"alias": "macaddr", "keyAlias": "model"},
        "tag": {"type": "integer", "minimum": 1, "maximum": 4094},
        "trunks": {"type": "string", "pattern": "(?^:\\d+(?:-\\d+)?(?:;\\d+(?:-\\d+)?)*)"},
        "virtio": {"alias": "macaddr", "keyAlias": "model"},
        "vmxnet3": {"alias": "macaddr", "keyAlias": "model"},
    },
    "NUMA": {
        "cpus": {"type": "string", "pattern": "(?^:\\d+(?:-\\d+)?(?:;\\d+(?:-\\d+)?)*)", "required": True},
        "hostnodes": {"type": "string", "pattern": "(?^:\\d+(?:-\\d+)?(?:;\\d+(?:-\\d+)?)*)"},
        "memory": {"type": "number"},
        "policy": {"type": "string", "enum": ["preferred", "bind", "interleave"]},
    },
    "SCSI": {
        "aio": {"type": "string", "enum": ["native", "threads", "io_uring"]},
        "backup": {"type": "boolean"},
        "bps": {"type": "integer"},
        "bps_max_length": {"type": "integer", "minimum": 1},
        "bps_rd": {"type": "integer"},
        "bps_rd_length": {"alias": "bps_rd_max_length"},
        "bps_rd_max_length": {"type": "integer", "minimum": 1},
        "bps_wr": {"type": "integer"},
        "bps_wr_length": {"alias": "bps_wr_max_length"},
        "bps_wr_max_length": {"type": "integer", "minimum": 1},
        "cache": {"type": "string", "enum": ["none", "writethrough", "writeback", "unsafe", "directsync"]},
        "detect_zeroes": {"type": "boolean"},
        "discard": {"type": "string", "enum": ["ignore", "on"]},
        "file": {"type": "string", "format": "pve-volume-id-or-qm-path", "default_key": 1, "required": True},
        "format": {"type": "string", "enum": ["raw", "qcow", "qed", "qcow2", "vmdk", "cloop"]},
        "import-from": {"type": "string", "format": "pve-volume-id-or-absolute-path"},
        "iops": {"type": "integer"},
        "iops_max": {"type": "integer"},
        "iops_max_length": {"type": "integer", "minimum": 1},
        "iops_rd": {"type": "integer"},
        "iops_rd_length": {"alias": "iops_rd_max_length"},
        "iops_rd_max": {"type": "integer"},
        "iops_rd_max_length": {"type": "integer", "minimum": 1},
        "iops_wr": {"type": "integer"},
        "iops_wr_length": {"alias": "iops_wr_max_length"},
        "iops_wr_max": {"type": "integer"},
        "iops_wr_max_length": {"type": "integer", "minimum": 1},
        "iothread": {"type": "boolean"},
        "mbps": {"type": "number"},
        "mbps_max": {"type": "number"},
        "mbps_rd": {"type": "number"},
        "mbps_rd_max": {"type": "number"},
        "mbps_wr": {"type": "number"},
        "mbps_wr_max": {"type": "number"},
        "media": {"type": "string", "enum": ["cdrom", "disk"]},
        "product": {"type": "string", "pattern": "[A-Za-z0-9\\-_\\s]{,16}"},
        "queues": {"type": "integer", "minimum": 2},
        "replicate": {"type": "boolean"},
        "rerror": {"type": "string", "enum": ["ignore", "report", "stop"]},
        "ro": {"type": "boolean"},
        "scsiblock": {"type": "boolean"},
        "serial": {"type": "string", "maxLength": 60, "format": "urlencoded"},
        "shared": {"type": "boolean"},
        "size": {"type": "string", "format": "disk-size"},
        "snapshot": {"type": "boolean"},
        "ssd": {"type": "boolean"},
        "vendor": {"type": "string", "pattern": "[A-Za-z0-9\\-_\\s]{,8}"},
        "volume": {"alias": "file"},
        "werror": {"type": "string", "enum": ["enospc", "ignore", "report", "stop"]},
        "wwn": {"type": "string", "pattern": "(?^:^(0x)[0-9a-fA-F]{16})"},
    },
    "SPICE_ENHANCEMENTS": {
        "foldersharing": {"type": "boolean"},
        "videostreaming": {"type": "string", "enum": ["off", "all", "filter"]},
    },
    "TPMSTATE": {
        "file": {"type": "string", "format": "pve-volume-id-or-qm-path", "default_key": 1, "required": True},
        "format": {"type": "string", "enum": ["raw", "qcow2", "vmdk"]},
        "import-from": {"type": "string", "format": "pve-volume-id-or-absolute-path"},
        "size": {"type": "string", "format": "disk-size"},
        "version": {"type": "string", "enum": ["v1.2", "v2.0"]},
        "volume": {"alias": "file"},
    },
    "UNUSED": {
        "file": {"type": "string", "format": "pve-volume-id", "default_key": 1, "required": True},
        "volume": {"alias": "file"},
    },
    "USB": {
        "host": {"type": "string", "pattern": "(?^:(?:(?:(?^:(0x)?([0-9A-Fa-f]{4}):(0x)?([0-9A-Fa-f]{4})))|(?:(?^:(\\d+)\\-(\\d+(\\.\\d+)*)))|[Ss][Pp][Ii][Cc][Ee]))", "default_key": 1},
        "mapping": {"type": "string", "format": "pve-configid"},
        "usb3": {"type": "boolean"},
    },
    "VGA": {
        "clipboard": {"type": "string", "enum": ["vnc"]},
        "memory": {"type": "integer", "minimum": 4, "maximum": 512},
        "type": {"type": "string", "enum": ["cirrus", "qxl", "qxl2", "qxl3", "qxl4", "none", "serial0", "serial1", "serial2", "serial3", "std", "virtio", "virtio-gl", "vmware"], "default_key": 1},
    },
    "VIRTIOFS": {
        "cache": {"type": "string", "enum": ["auto", "always", "metadata", "never"]},
        "direct-io": {"type": "boolean"},
        "dirid": {"type": "string", "format": "pve-configid", "default_key": 1, "required": True},
        "expose-acl": {"type": "boolean"},
        "expose-xattr": {"type": "boolean"},
    },
}
VM_OPTIONS: dict[str, dict[str, Any]] = {
    "acpi": {"type": "boolean"},
    "affinity": {"type": "string", "format": "pve-cpuset"},
    "agent": {"type": "string", "format": "AGENT"},
    "allow-ksm": {"type": "boolean"},
    "amd-sev": {"type": "string", "format": "pve-qemu-sev-fmt"},
    "arch": {"type": "string", "enum": ["x86_64", "aarch64"]},
    "args": {"type": "string"},
    "audio0": {"type": "string", "format": "AUDIO"},
    "autostart": {"type": "boolean"},
    "balloon": {"type": "integer", "minimum": 0},
    "bios": {"type": "string", "enum": ["seabios", "ovmf"]},
    "boot": {"type": "string", "format": "pve-qm-boot"},
    "bootdisk": {"type": "string", "pattern": "(ide|sata|scsi|virtio)\\d+", "format": "pve-qm-bootdisk"},
    "cdrom": {"type": "string", "format": "pve-qm-ide"},
    "cicustom": {"type": "string", "format": "pve-qm-cicustom"},
    "cipassword": {"type": "string"},
    "citype": {"type": "string", "enum": ["configdrive2", "nocloud", "opennebula"]},
    "ciupgrade": {"type": "boolean"},
    "ciuser": {"type": "string"},
    "cores": {"type": "integer", "minimum": 1},
    "cpu": {"type": "string", "format": "pve-vm-cpu-conf"},
    "cpulimit": {"type": "number", "minimum": 0, "maximum": 128},
    "cpuunits": {"type": "integer", "minimum": 1, "maximum": 262144},
    "description": {"type": "string", "maxLength": 8192},
    "efidisk0": {"type": "string", "format": "EFIDISK"},
    "freeze": {"type": "boolean"},
    "hookscript": {"type": "string", "format": "pve-volume-id"},
    "hostpci[n]": {"type": "string", "format": "pve-qm-hostpci"},
    "hotplug": {"type": "string", "format": "pve-hotplug-features"},
    "hugepages": {"type": "string", "enum": ["any", "2", "1024"]},
    "ide[n]": {"type": "string", "format": "IDE"},
    "intel-tdx": {"type": "string", "format": "pve-qemu-tdx-fmt"},
    "ipconfig[n]": {"type": "string", "format": "pve-qm-ipconfig"},
    "ivshmem": {"type": "string", "format": "IVSHMEM"},
    "keephugepages": {"type": "boolean"},
    "keyboard": {"type": "string", "enum": ["de", "de-ch", "da", "en-gb", "en-us", "es", "fi", "fr", "fr-be", "fr-ca", "fr-ch", "hu", "is", "it", "ja", "lt", "mk", "nl", "no", "pl", "pt", "pt-br", "sv", "sl", "tr"]},
    "kvm": {"type": "boolean"},
    "localtime": {"type": "boolean"},
    "lock": {"type": "string", "enum": ["backup", "clone", "create", "migrate", "rollback", "snapshot", "snapshot-delete", "suspending", "suspended"]},
    "machine": {"type": "string", "format": "MACHINE"},
    "memory": {"type": "string", "format": "MEMORY"},
    "migrate_downtime": {"type": "number", "minimum": 0},
    "migrate_speed": {"type": "integer", "minimum": 0},
    "name": {"type": "string", "format": "dns-name"},
    "nameserver": {"type": "string", "format": "address-list"},
    "net[n]": {"type": "string", "format": "NET"},
    "numa": {"type": "boolean"},
    "numa[n]": {"type": "string", "format": "NUMA"},
    "onboot": {"type": "boolean"},
    "ostype": {"type": "string", "enum": ["other", "wxp", "w2k", "w2k3", "w2k8", "wvista", "win7", "win8", "win10", "win11", "l24", "l26", "solaris"]},
    "parallel[n]": {"type": "string", "pattern": "/dev/parport\\d+|/dev/usb/lp\\d+"},
    "protection": {"type": "boolean"},
    "reboot": {"type": "boolean"},
    "rng0": {"type": "string", "format": "pve-qm-rng"},
    "sata[n]": {"type": "string", "format": "SATA"},
    "scsi[n]": {"type": "string", "format": "SCSI"},
    "scsihw": {"type": "string", "enum": ["lsi", "lsi53c810", "virtio-scsi-pci", "virtio-scsi-single", "megasas", "pvscsi"]},
    "searchdomain": {"type": "string"},
    "serial[n]": {"type": "string", "pattern": "(/dev/.+|socket)"},
    "shares": {"type": "integer", "minimum": 0, "maximum": 50000},
    "smbios1": {"type": "string", "maxLength": 512, "format": "pve-qm-smbios1"},
    "smp": {"type": "integer", "minimum": 1},
    "sockets": {"type": "integer", "minimum": 1},
    "spice_enhancements": {"type": "string", "format": "SPICE_ENHANCEMENTS"},
    "sshkeys": {"type": "string", "format": "urlencoded"},
    "startdate": {"type": "string", "pattern": "(now|\\d{4}-\\d{1,2}-\\d{1,2}(T\\d{1,2}:\\d{1,2}:\\d{1,2})?)"},
    "startup": {"type": "string", "format": "pve-startup-order"},
    "tablet": {"type": "boolean"},
    "tags": {"type": "string", "format": "pve-tag-list"},
    "tdf": {"type": "boolean"},
    "template": {"type": "boolean"},
    "tpmstate0": {"type": "string", "format": "TPMSTATE"},
    "unused[n]": {"type": "string", "format": "UNUSED"},
    "usb[n]": {"type": "string", "format": "USB"},
    "vcpus": {"type": "integer", "minimum": 1},
    "vga": {"type": "string", "format": "VGA"},
    "virtio[n]": {"type": "string", "format": "VIRTIO"},
    "virtiofs[n]": {"type": "string", "format": "VIRTIOFS"},
    "vmgenid": {"type": "string", "pattern": "(?:[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}|[01])"},
    "vmstatestorage": {"type": "string", "format": "pve-storage-id"},
    "watchdog": {"type": "string", "format": "pve-qm-watchdog"},
}
PARAMS: dict[str, dict[str, dict[str, Any]]] = {
    "GET /version": {},
    "GET /nodes": {},
    "GET /nodes/{node}/version": {},
    "GET /cluster/resources": {
        "type": {"type": "string", "enum": ["vm", "storage", "node", "sdn"]},
    },
    "GET /cluster/nextid": {
        "vmid": {"type": "integer", "minimum": 100, "maximum": 999999999, "format": "pve-vmid"},
    },
    "GET /nodes/{node}/qemu": {
        "full": {"type": "boolean"},
    },
    "POST /nodes/{node}/qemu": {
        "archive": {"type": "string", "maxLength": 255},
        "bwlimit": {"type": "integer", "minimum": 0},
        "force": {"type": "boolean", "requires": "archive"},
        "ha-managed": {"type": "boolean"},
        "import-working-storage": {"type": "string", "format": "pve-storage-id"},
        "live-restore": {"type": "boolean"},
        "pool": {"type": "string", "format": "pve-poolid"},
        "start": {"type": "boolean"},
        "storage": {"type": "string", "format": "pve-storage-id"},
        "unique": {"type": "boolean", "requires": "archive"},
        "vmid": {"type": "integer", "minimum": 100, "maximum": 999999999, "format": "pve-vmid", "required": True},
    },
    "GET /nodes/{node}/qemu/{vmid}": {},
    "DELETE /nodes/{node}/qemu/{vmid}": {
        "destroy-unreferenced-disks": {"type": "boolean"},
        "purge": {"type": "boolean"},
        "skiplock": {"type": "boolean"},
    },
    "GET /nodes/{node}/qemu/{vmid}/config": {
        "current": {"type": "boolean"},
        "snapshot": {"type": "string", "maxLength": 40, "format": "pve-configid"},
    },
    "PUT /nodes/{node}/qemu/{vmid}/config": {
        "delete": {"type": "string", "format": "pve-configid-list"},
        "digest": {"type": "string", "maxLength": 40},
        "force": {"type": "boolean", "requires": "delete"},
        "revert": {"type": "string", "format": "pve-configid-list"},
        "skiplock": {"type": "boolean"},
    },
    "POST /nodes/{node}/qemu/{vmid}/config": {
        "background_delay": {"type": "integer", "minimum": 1, "maximum": 30},
        "delete": {"type": "string", "format": "pve-configid-list"},
        "digest": {"type": "string", "maxLength": 40},
        "force": {"type": "boolean", "requires": "delete"},
        "import-working-storage": {"type": "string", "format": "pve-storage-id"},
        "revert": {"type": "string", "format": "pve-configid-list"},
        "skiplock": {"type": "boolean"},
    },
    "PUT /nodes/{node}/qemu/{vmid}/resize": {
        "digest": {"type": "string", "maxLength": 40},
        "disk": {"type": "string", "enum": ["ide0", "ide1", "ide2", "ide3", "scsi0", "scsi1", "scsi2", "scsi3", "scsi4", "scsi5", "scsi6", "scsi7", "scsi8", "scsi9", "scsi10", "scsi11", "scsi12", "scsi13", "scsi14", "scsi15", "scsi16", "scsi17", "scsi18", "scsi19", "scsi20", "scsi21", "scsi22", "scsi23", "scsi24", "scsi25", "scsi26", "scsi27", "scsi28", "scsi29", "scsi30", "virtio0", "virtio1", "virtio2", "virtio3", "virtio4", "virtio5", "virtio6", "virtio7", "virtio8", "virtio9", "virtio10", "virtio11", "virtio12", "virtio13", "virtio14", "virtio15", "sata0", "sata1", "sata2", "sata3", "sata4", "sata5", "efidisk0", "tpmstate0"], "required": True},
        "size": {"type": "string", "pattern": "\\+?\\d+(\\.\\d+)?[KMGT]?", "required": True},
        "skiplock": {"type": "boolean"},
    },
    "GET /nodes/{node}/qemu/{vmid}/status/current": {},
    "POST /nodes/{node}/qemu/{vmid}/status/start": {
        "force-cpu": {"type": "string"},
        "machine": {"type": "string", "format": "MACHINE"},
        "migratedfrom": {"type": "string", "format": "pve-node"},
        "migration_network": {"type": "string", "format": "CIDR"},
        "migration_type": {"type": "string", "enum": ["secure", "insecure"]},
        "nets-host-mtu": {"type": "string", "pattern": "net\\d+=\\d+(,net\\d+=\\d+)*"},
        "skiplock": {"type": "boolean"},
        "stateuri": {"type": "string", "maxLength": 128},
        "targetstorage": {"type": "string", "format": "storage-pair-list"},
        "timeout": {"type": "integer", "minimum": 0},
        "with-conntrack-state": {"type": "boolean"},
    },
    "POST /nodes/{node}/qemu/{vmid}/status/stop": {
        "keepActive": {"type": "boolean"},
        "migratedfrom": {"type": "string", "format": "pve-node"},
        "overrule-shutdown": {"type": "boolean"},
        "skiplock": {"type": "boolean"},
        "timeout": {"type": "integer", "minimum": 0},
    },
    "POST /nodes/{node}/qemu/{vmid}/status/shutdown": {
        "forceStop": {"type": "boolean"},
        "keepActive": {"type": "boolean"},
        "skiplock": {"type": "boolean"},
        "timeout": {"type": "integer", "minimum": 0},
    },
    "POST /nodes/{node}/qemu/{vmid}/status/reboot": {
        "timeout": {"type": "integer", "minimum": 0},
    },
    "POST /nodes/{node}/qemu/{vmid}/status/reset": {
        "skiplock": {"type": "boolean"},
    },
    "GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces": {},
    "POST /nodes/{node}/qemu/{vmid}/agent/ping": {},
    "GET /nodes/{node}/tasks/{upid}/status": {},
    "GET /nodes/{node}/tasks/{upid}/log": {
        "download": {"type": "boolean"},
        "limit": {"type": "integer", "minimum": 0},
        "start": {"type": "integer", "minimum": 0},
    },
    "GET /nodes/{node}/storage/{storage}/content": {
        "content": {"type": "string", "format": "pve-storage-content"},
        "vmid": {"type": "integer", "minimum": 100, "maximum": 999999999, "format": "pve-vmid"},
    },
    "POST /nodes/{node}/storage/{storage}/download-url": {
        "checksum": {"type": "string", "requires": "checksum-algorithm"},
        "checksum-algorithm": {"type": "string", "enum": ["md5", "sha1", "sha224", "sha256", "sha384", "sha512"], "requires": "checksum"},
        "compression": {"type": "string"},
        "content": {"type": "string", "enum": ["iso", "vztmpl", "import"], "format": "pve-storage-content", "required": True},
        "filename": {"type": "string", "maxLength": 255, "required": True},
        "url": {"type": "string", "required": True},  # `https?://.*` or sim://, see _check_download
        "verify-certificates": {"type": "boolean"},
    },
    "POST /access/users/{userid}/token/{tokenid}": {
        "comment": {"type": "string"},
        "expire": {"type": "integer", "minimum": 0},
        "privsep": {"type": "boolean"},
    },
    "GET /nodes/{node}/network": {
        "type": {"type": "string", "enum": ["bridge", "bond", "eth", "alias", "vlan", "fabric", "OVSBridge", "OVSBond", "OVSPort", "OVSIntPort", "vnet", "any_bridge", "any_local_bridge", "include_sdn"]},
    },
    "POST /nodes/{node}/network": {
        "address": {"type": "string", "format": "ipv4", "requires": "netmask"},
        "address6": {"type": "string", "format": "ipv6", "requires": "netmask6"},
        "autostart": {"type": "boolean"},
        "bond-primary": {"type": "string", "format": "pve-iface"},
        "bond_mode": {"type": "string", "enum": ["balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb", "balance-slb", "lacp-balance-slb", "lacp-balance-tcp"]},
        "bond_xmit_hash_policy": {"type": "string", "enum": ["layer2", "layer2+3", "layer3+4"]},
        "bridge_ports": {"type": "string", "format": "pve-iface-list"},
        "bridge_vids": {"type": "string", "format": "pve-vlan-id-or-range-list"},
        "bridge_vlan_aware": {"type": "boolean"},
        "cidr": {"type": "string", "format": "CIDRv4"},
        "cidr6": {"type": "string", "format": "CIDRv6"},
        "comments": {"type": "string"},
        "comments6": {"type": "string"},
        "gateway": {"type": "string", "format": "ipv4"},
        "gateway6": {"type": "string", "format": "ipv6"},
        "iface": {"type": "string", "format": "pve-iface", "maxLength": 20, "required": True},
        "mtu": {"type": "integer", "minimum": 1280, "maximum": 65520},
        "netmask": {"type": "string", "format": "ipv4mask", "requires": "address"},
        "netmask6": {"type": "integer", "minimum": 0, "maximum": 128, "requires": "address6"},
        "ovs_bonds": {"type": "string", "format": "pve-iface-list"},
        "ovs_bridge": {"type": "string", "format": "pve-iface"},
        "ovs_options": {"type": "string", "maxLength": 1024},
        "ovs_ports": {"type": "string", "format": "pve-iface-list"},
        "ovs_tag": {"type": "integer", "minimum": 1, "maximum": 4094},
        "slaves": {"type": "string", "format": "pve-iface-list"},
        "type": {"type": "string", "enum": ["bridge", "bond", "eth", "alias", "vlan", "fabric", "OVSBridge", "OVSBond", "OVSPort", "OVSIntPort", "vnet", "unknown"], "required": True},
        "vlan-id": {"type": "integer", "minimum": 1, "maximum": 4094},
        "vlan-raw-device": {"type": "string", "format": "pve-iface"},
    },
    "PUT /nodes/{node}/network": {
        "regenerate-frr": {"type": "boolean"},
    },
    "DELETE /nodes/{node}/network": {},
    "GET /nodes/{node}/network/{iface}": {},
}
# fmt: on


def _drive_variant(
    drop: tuple[str, ...], add: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """IDE, SATA and VirtIO drives take SCSI's options, minus a few, plus a few."""
    return {**{k: v for k, v in FORMATS["SCSI"].items() if k not in drop}, **add}


FORMATS["IDE"] = _drive_variant(
    ("iothread", "product", "queues", "ro", "scsiblock", "vendor"),
    {"model": {"type": "string", "format": "urlencoded", "maxLength": 120}},
)
FORMATS["SATA"] = _drive_variant(("iothread", "product", "queues", "ro", "scsiblock", "vendor"), {})
FORMATS["VIRTIO"] = _drive_variant(("product", "queues", "scsiblock", "ssd", "vendor", "wwn"), {})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[4:], sys.argv[2], sys.argv[3]))
