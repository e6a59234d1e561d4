"""Check PVE command lines (argv lists) against the real PVE 9.1 API schema.

Why: the driver talks to Proxmox VE through ``pvesh``, ``qm`` and ``pveum``. A misspelt
parameter, a wrong verb or a badly encoded value only fails on a real host, late and with
a terse ``400 Parameter verification failed``. This module replays what PVE's CLI layer
(Getopt-style option parsing, qm/pveum's mapping of sub-commands onto API methods) and its
JSON-schema validator (type, format, pattern, length, range, enum, property strings) do,
against the schema published in pve-docs' ``apidata.js``, so unit tests can assert that every
argv the driver emits would pass PVE's parameter verification.

Not modelled: permissions, whether referenced objects exist, cross-field rules enforced in
handler code (e.g. ``import-from`` needing size 0), interactive/password prompts, and named
formats without a verifier here (those values are accepted).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import re
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

DEFAULT_SCHEMA_PATH = (
    Path(__file__).resolve().parents[1] / "fixtures" / "pve" / "apidata-pve9.1.json"
)

Prop = Mapping[str, Any]
"""One parameter schema from apidata (``type``, ``format``, ``enum``, ...)."""

# --------------------------------------------------------------------------- schema


# Highest index for ``name[n]`` parameters whose description does not state it
# (constants from qemu-server / pve-container / pve-manager).
_INDEX_MAX_FALLBACK = {
    "net": 31,
    "ipconfig": 31,
    "hostpci": 15,
    "numa": 7,
    "unused": 255,
    "virtiofs": 9,
    "mp": 255,
    "dev": 255,
    "acmedomain": 4,
}
_INDEXED_NAME = re.compile(r"([a-z][a-z-]*?)(0|[1-9][0-9]*)")
_INDEX_MAX_IN_DESC = re.compile(r"(?:n is 0 to |n can be up to |\.\.[a-z]+)(\d+)")


def _max_index(base: str, prop: Prop) -> int | None:
    """Largest valid n for ``base[n]``: PVE states it in the description, else a known constant."""
    found = [int(n) for n in _INDEX_MAX_IN_DESC.findall(str(prop.get("description", "")))]
    return max(found) if found else _INDEX_MAX_FALLBACK.get(base)


@dataclass(frozen=True)
class MethodSpec:
    """The parameters one API method accepts; ``additional`` mirrors additionalProperties."""

    properties: Mapping[str, Prop]
    additional: bool
    returns: Prop = field(default_factory=dict)

    def lookup(self, name: str) -> tuple[Prop | None, str | None]:
        """Schema for ``name`` (``scsi0`` resolves to ``scsi[n]``), or None plus why not.

        Indexed parameters are collapsed to ``base[n]`` in apidata, so the index range has
        to be checked here, otherwise ``scsi31`` would look valid.
        """
        if name in self.properties:
            return self.properties[name], None
        match = _INDEXED_NAME.fullmatch(name)
        prop = self.properties.get(f"{match.group(1)}[n]") if match else None
        if match is None or prop is None:
            return None, None
        limit = _max_index(match.group(1), prop)
        if limit is not None and int(match.group(2)) > limit:
            return None, f"index out of range (0..{limit})"
        return prop, None


@dataclass(frozen=True)
class Endpoint:
    """One path template (``/nodes/{node}/qemu/{vmid}``) and the methods it implements."""

    template: str
    segments: tuple[str, ...]
    methods: Mapping[str, MethodSpec]

    @property
    def rank(self) -> tuple[bool, ...]:
        """Literal segments beat ``{param}`` ones, earlier first, as PVE's router prefers."""
        return tuple(not _is_param(s) for s in self.segments)

    def bind(self, parts: Sequence[str]) -> dict[str, str] | None:
        """Path-parameter values if ``parts`` fits this template (a param takes a whole segment)."""
        if len(parts) != len(self.segments):
            return None
        values: dict[str, str] = {}
        for segment, part in zip(self.segments, parts, strict=True):
            if _is_param(segment):
                values[segment[1:-1]] = urllib.parse.unquote(part)
            elif segment != part:
                return None
        return values


@dataclass(frozen=True, repr=False)
class Schema:
    """Every API path template of a PVE release, indexed by depth for matching."""

    endpoints: Mapping[str, Endpoint]
    by_depth: Mapping[int, tuple[Endpoint, ...]]

    def __repr__(self) -> str:
        return f"Schema({len(self.endpoints)} paths)"

    def resolve(self, path: str) -> tuple[Endpoint, dict[str, str]] | None:
        """The template a concrete path hits, with its path parameters, or None (PVE: 501)."""
        parts = _split_path(path)
        best: tuple[Endpoint, dict[str, str]] | None = None
        for endpoint in self.by_depth.get(len(parts), ()):
            values = endpoint.bind(parts)
            if values is not None and (best is None or endpoint.rank > best[0].rank):
                best = (endpoint, values)
        return best


def _is_param(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")


def _split_path(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def _walk(nodes: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for node in nodes:
        yield node
        yield from _walk(node.get("children", ()))


def _endpoint(node: Mapping[str, Any]) -> Endpoint:
    methods = {
        verb: MethodSpec(
            properties=info.get("parameters", {}).get("properties", {}),
            additional=bool(info.get("parameters", {}).get("additionalProperties", 0)),
            returns=info.get("returns", {}),
        )
        for verb, info in node.get("info", {}).items()
    }
    return Endpoint(node["path"], tuple(_split_path(node["path"])), methods)


def load_schema(path: str | os.PathLike[str] = DEFAULT_SCHEMA_PATH) -> Schema:
    """Parse an apidata.js JSON dump once; tests call this per argv, so it is cached."""
    return _load_schema(Path(path).resolve())


@functools.lru_cache(maxsize=4)
def _load_schema(path: Path) -> Schema:
    with open(path, encoding="utf-8") as handle:
        tree = json.load(handle)
    endpoints = {node["path"]: _endpoint(node) for node in _walk(tree)}
    by_depth: dict[int, list[Endpoint]] = {}
    for endpoint in endpoints.values():
        by_depth.setdefault(len(endpoint.segments), []).append(endpoint)
    return Schema(endpoints, {depth: tuple(eps) for depth, eps in by_depth.items()})


# --------------------------------------------------------------------------- formats

FormatCheck = Callable[[str], "str | None"]
"""A named-format verifier: the error text PVE would give, or None when the value is valid."""

_FORMATS: dict[str, FormatCheck] = {}


def _regex_format(name: str, regex: str, message: str, flags: int = 0) -> None:
    compiled = re.compile(regex, flags)
    _FORMATS[name] = lambda value: None if compiled.fullmatch(value) else message


_DNS_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?"
_STORAGE_ID = r"[a-z][a-z0-9\-_.]*[a-z0-9]"
_regex_format("pve-vmid", r"[1-9][0-9]{2,8}", "value does not look like a valid VM ID")
_regex_format("pve-node", _DNS_LABEL, "value does not look like a valid node name")
_regex_format(
    "pve-storage-id", _STORAGE_ID, "storage ID contains illegal characters", re.IGNORECASE
)
_regex_format(
    "dns-name", rf"(?:{_DNS_LABEL}\.)*{_DNS_LABEL}", "value does not look like a valid DNS name"
)
_regex_format("urlencoded", r"[-%a-zA-Z0-9_.!~*'()]*", "invalid urlencoded string")
_regex_format("pve-configid", r"[a-z][a-z0-9_-]+", "invalid configuration ID", re.IGNORECASE)
_regex_format("pve-tag", r"[a-z0-9_][a-z0-9_\-+.]*", "invalid characters in tag", re.IGNORECASE)
_regex_format("pve-volume-id", rf"{_STORAGE_ID}:.+", "unable to parse volume ID", re.IGNORECASE)
_regex_format("disk-size", r"\d+(?:\.\d+)?[KMGT]?", "value does not look like a valid disk size")
_regex_format(
    "mac-addr",
    r"[a-f0-9][02468ace](?::[a-f0-9]{2}){5}",
    "value does not look like a valid unicast MAC address",
    re.IGNORECASE,
)
_regex_format(
    "pve-startup-order",
    r"(?:(?:order=)?\d+|up=\d+|down=\d+)(?:,(?:(?:order=)?\d+|up=\d+|down=\d+))*",
    "unable to parse startup options",
)


def _userid(value: str) -> str | None:
    if not 3 <= len(value) <= 64:
        return "user name has an invalid length (3..64)"
    if re.fullmatch(r"[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+", value) is None:
        return "value does not look like a valid user name"
    return None


def _volume_or_path(*specials: str) -> FormatCheck:
    """qemu-server accepts absolute paths (and a few keywords) where a volume id would go."""

    def check(value: str) -> str | None:
        if value in specials or value.startswith("/"):
            return None
        return _FORMATS["pve-volume-id"](value)

    return check


def _ip_check(version: int | None, cidr: bool, message: str) -> FormatCheck:
    """IP/CIDR formats; PVE's CIDR verifiers require a prefix length above 7."""

    def check(value: str) -> str | None:
        address, slash, prefix = value.partition("/")
        if cidr != bool(slash) or (cidr and not prefix.isdigit()):
            return message
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return message
        if version is not None and parsed.version != version:
            return message
        if cidr and not 7 < int(prefix) <= parsed.max_prefixlen:
            return message
        return None

    return check


def _either(*checks: FormatCheck, keywords: tuple[str, ...] = (), message: str) -> FormatCheck:
    def check(value: str) -> str | None:
        ok = value in keywords or any(c(value) is None for c in checks)
        return None if ok else message

    return check


_FORMATS.update(
    {
        "pve-userid": _userid,
        "pve-volume-id-or-qm-path": _volume_or_path("none", "cdrom"),
        "pve-volume-id-or-absolute-path": _volume_or_path(),
        "ip": _ip_check(None, False, "value does not look like a valid IP address"),
        "ipv4": _ip_check(4, False, "value does not look like a valid IPv4 address"),
        "ipv6": _ip_check(6, False, "value does not look like a valid IPv6 address"),
        "CIDR": _ip_check(None, True, "value does not look like a valid CIDR network"),
        "CIDRv4": _ip_check(4, True, "value does not look like a valid IPv4 CIDR network"),
        "CIDRv6": _ip_check(6, True, "value does not look like a valid IPv6 CIDR network"),
    }
)
_FORMATS["pve-ipv4-config"] = _either(
    _FORMATS["CIDRv4"],
    keywords=("dhcp", "manual"),
    message="value does not look like a valid ipv4 network configuration",
)
_FORMATS["pve-ipv6-config"] = _either(
    _FORMATS["CIDRv6"],
    keywords=("auto", "dhcp", "manual"),
    message="value does not look like a valid ipv6 network configuration",
)
_FORMATS["address"] = _either(
    _FORMATS["ip"], _FORMATS["dns-name"], message="value does not look like a valid address"
)

# Named property-string formats whose keys apidata does not spell out as a dict.
_NAMED_PROPERTY_STRINGS: dict[str, dict[str, Prop]] = {
    "pve-qm-ipconfig": {
        "ip": {"type": "string", "format": "pve-ipv4-config", "optional": 1},
        "gw": {"type": "string", "format": "ipv4", "optional": 1},
        "ip6": {"type": "string", "format": "pve-ipv6-config", "optional": 1},
        "gw6": {"type": "string", "format": "ipv6", "optional": 1},
    },
    "pve-qm-cicustom": {
        key: {"type": "string", "format": "pve-volume-id", "optional": 1}
        for key in ("meta", "network", "user", "vendor")
    },
}


@functools.cache
def _typetext_format(typetext: str) -> dict[str, Prop] | None:
    """Key-only format dict derived from a typetext like ``[[legacy=]<..>] [,order=<..>]``.

    apidata names some property-string formats without listing their keys; the typetext
    still shows them, which is enough to reject unknown keys.
    """
    keys = re.findall(r"(?:^|[\[,\s])([A-Za-z][\w-]*)=", typetext)
    if not keys:
        return None
    default = re.match(r"\[?\[([\w-]+)=\]", typetext)
    return {
        key: {"optional": 1, "default_key": int(default is not None and key == default[1])}
        for key in keys
    }


def _split_list(value: str) -> list[str]:
    """PVE::Tools::split_list: NUL-separated, else on commas, semicolons and whitespace."""
    if "\0" in value:
        return value.split("\0")
    return re.sub(r"[,;]", " ", value).split()


def _check_named_format(name: str, value: str, prop: Prop) -> list[str]:
    if name in _FORMATS:
        message = _FORMATS[name](value)
        return [message] if message else []
    list_form = re.fullmatch(r"(.*)-a?list", name)
    if list_form and list_form[1] in _FORMATS:
        base = _FORMATS[list_form[1]]
        return [f"{m} ({item!r})" for item in _split_list(value) if (m := base(item))]
    opt_form = re.fullmatch(r"(.*)-opt", name)
    if opt_form and opt_form[1] in _FORMATS:
        return _check_named_format(opt_form[1], value, prop) if value else []
    fmt = _NAMED_PROPERTY_STRINGS.get(name) or _typetext_format(str(prop.get("typetext", "")))
    return _check_property_string(fmt, value) if fmt else []


def _check_format(prop: Prop, value: str) -> list[str]:
    fmt = prop.get("format")
    if isinstance(fmt, Mapping):
        return _check_property_string(fmt, value)
    if isinstance(fmt, str):
        return _check_named_format(fmt, value, prop)
    return []


# --------------------------------------------------------------------------- property strings


def _parse_property_string(fmt: Mapping[str, Prop], data: str) -> tuple[dict[str, str], list[str]]:
    """PVE::JSONSchema::parse_property_string: ``[default-value,]key=value,...`` with aliases."""
    parsed: dict[str, str] = {}
    problems: list[str] = []
    for part in data.split(","):
        if not part.strip():
            continue
        keyed = re.fullmatch(r"([^=]+)=(.+)", part, re.DOTALL)
        if keyed:
            problems += _store_keyed(fmt, parsed, keyed[1], keyed[2])
        elif "=" not in part:
            problems += _store_default(fmt, parsed, part)
        else:
            problems.append(f"missing key in comma-separated list property: {part!r}")
    return parsed, problems


def _store_keyed(
    fmt: Mapping[str, Prop], parsed: dict[str, str], key: str, value: str
) -> list[str]:
    if key in parsed:
        return [f"duplicate key in comma-separated list property: {key}"]
    schema = fmt.get(key)
    if schema is not None and schema.get("alias"):
        if key_alias := schema.get("keyAlias"):
            if key_alias in parsed:
                return [f"key alias '{key_alias}' is already defined"]
            parsed[key_alias] = key
        key = schema["alias"]
        schema = fmt.get(key)
    if schema is None:
        return [f"invalid key in comma-separated list property: {key}"]
    parsed[key] = value
    return []


def _store_default(fmt: Mapping[str, Prop], parsed: dict[str, str], value: str) -> list[str]:
    default = next((key for key, sub in fmt.items() if sub.get("default_key")), None)
    if default is None:
        return [f"value without key, but schema does not define a default key: {value!r}"]
    if default in parsed:
        return [f"duplicate key in comma-separated list property: {default}"]
    parsed[default] = value
    return []


def _check_property_string(fmt: Mapping[str, Prop], data: str) -> list[str]:
    """Keys must be known, required keys present and every value valid for its sub-schema."""
    parsed, problems = _parse_property_string(fmt, data)
    if problems:
        return problems
    for key, sub in fmt.items():
        if sub.get("alias"):
            continue
        if key not in parsed:
            if not sub.get("optional"):
                problems.append(f"{key}: property is missing and it is not optional")
            continue
        problems += [f"{key}: {msg}" for msg in check_value(sub, parsed[key])]
        requires = sub.get("requires")
        if isinstance(requires, str) and requires not in parsed:
            problems.append(f"{requires}: missing property - '{key}' requires this property")
    return problems


# --------------------------------------------------------------------------- scalar values

_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.\d+|\d+\.|\.\d+|\d+)(?:[eE][+-]?\d+)?")


def parse_boolean(value: str) -> bool | None:
    """PVE's parse_boolean, used by the CLI and inside property strings."""
    lowered = value.lower()
    if lowered in ("1", "on", "yes", "true"):
        return True
    if lowered in ("0", "off", "no", "false"):
        return False
    return None


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str] | None:
    """Perl ``m/^$pattern$/`` in Python; apidata prints qr// objects as ``(?^:...)``."""
    translated = pattern.replace("(?^i:", "(?i:").replace("(?^:", "(?:")
    try:
        return re.compile(f"^{translated}$")
    except re.error:
        return None


def _type_problem(kind: str, value: str) -> str | None:
    ok = {
        "boolean": lambda: parse_boolean(value) is not None,
        "integer": lambda: _INTEGER.fullmatch(value) is not None,
        "number": lambda: _NUMBER.fullmatch(value) is not None,
    }.get(kind, lambda: True)()
    return None if ok else f"type check ('{kind}') failed - got '{value}'"


def _string_problem(prop: Prop, value: str) -> str | None:
    pattern = prop.get("pattern")
    compiled = _pattern(pattern) if isinstance(pattern, str) else None
    if compiled is not None and compiled.search(value) is None:
        return "value does not match the regex pattern"
    if (limit := prop.get("maxLength")) is not None and len(value) > int(limit):
        return f"value may only be {limit} characters long"
    if (limit := prop.get("minLength")) is not None and len(value) < int(limit):
        return f"value must be at least {limit} characters long"
    return None


def _range_problem(prop: Prop, value: str) -> str | None:
    if _NUMBER.fullmatch(value) is None:
        return None
    number = float(value)
    if (top := prop.get("maximum")) is not None and number > float(top):
        return f"value must have a maximum value of {top}"
    if (bottom := prop.get("minimum")) is not None and number < float(bottom):
        return f"value must have a minimum value of {bottom}"
    return None


def _enum_problem(prop: Prop, value: str) -> str | None:
    allowed = prop.get("enum")
    if allowed and value not in allowed:
        return f"value '{value}' does not have a value in the enumeration '{', '.join(allowed)}'"
    return None


def _format_problem(prop: Prop, value: str) -> str | None:
    problems = _check_format(prop, value)
    return f"invalid format - {'; '.join(problems)}" if problems else None


def check_value(prop: Prop, value: str, *, check_format: bool = True) -> list[str]:
    """Validate one CLI string value like PVE's check_prop: the first failure only.

    Order: type, format, pattern, maxLength, minLength, minimum/maximum, enum, except
    that numbers get their range checked before their format, because PVE 9 reports
    ``vmid 99`` as "value must have a minimum value of 100" (pve-api.md §12).
    """
    kind = str(prop.get("type", "string"))
    if problem := _type_problem(kind, value):
        return [problem]
    if kind in ("integer", "number"):
        steps = [_range_problem, _format_problem, _string_problem, _enum_problem]
    else:
        steps = [_format_problem, _string_problem, _range_problem, _enum_problem]
    for step in steps:
        if step is _format_problem and not check_format:
            continue
        if problem := step(prop, value):
            return [problem]
    return []


# --------------------------------------------------------------------------- CLI parsing

_BOOL: Prop = {"type": "boolean", "optional": 1}
_OUTPUT_OPTIONS: Mapping[str, Prop] = {
    "output-format": {"type": "string", "enum": ["text", "json", "json-pretty", "yaml"]},
    "noheader": _BOOL,
    "noborder": _BOOL,
    "quiet": _BOOL,
    "human-readable": _BOOL,
}
"""PVE::RESTHandler::standard_output_options, accepted by pvesh and formatting commands."""
_PVESH_OPTIONS: Mapping[str, Prop] = {**_OUTPUT_OPTIONS, "noproxy": _BOOL}
_PVESH_VERBS = {"get": "GET", "create": "POST", "set": "PUT", "delete": "DELETE"}
_OPTION = re.compile(r"--?([^=-][^=]*)(?:=(.*))?", re.DOTALL)


@dataclass
class _Parsed:
    options: dict[str, list[str]] = field(default_factory=dict)
    positionals: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _getopt(tokens: Sequence[str], takes_value: Callable[[str], bool | None]) -> _Parsed:
    """Getopt::Long as PVE configures it: ``-x``/``--x``, ``--x=v``, options and args mixed.

    ``takes_value(name)`` is True for ``=s`` options (they take the next word, whatever it
    looks like), False for booleans, declared ``:s``: they take the next word unless it
    looks like an option, and mean 1 when bare. Unknown options (None) are treated like
    booleans so that a stray value is not misread as a positional argument.
    """
    parsed = _Parsed()
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token == "--":
            parsed.positionals.extend(tokens[index:])
            break
        option = _OPTION.fullmatch(token)
        if option is None:
            parsed.positionals.append(token)
            continue
        name, value = option[1], option[2]
        if value is None and not takes_value(name):
            takes_next = index < len(tokens) and not tokens[index].startswith("-")
            value = tokens[index] if takes_next else ""
            index += int(takes_next)
        elif value is None and index < len(tokens):
            value = tokens[index]
            index += 1
        elif value is None:
            parsed.problems.append(f"option '--{name}' requires a value")
            continue
        parsed.options.setdefault(name, []).append(value)
    return parsed


@dataclass(frozen=True)
class ApiCall:
    """What an argv asks PVE to do: an API method on a path, before option parsing.

    ``path`` may still hold ``{name}`` placeholders that ``arg_names`` fill from positional
    arguments (qm/pveum take the VMID or user id as plain words).
    """

    label: str
    method: str
    path: str
    tokens: tuple[str, ...]
    arg_names: tuple[str, ...] = ()
    extra_options: Mapping[str, Prop] = field(default_factory=dict)
    file_params: frozenset[str] = frozenset()


def _pvesh(args: Sequence[str]) -> ApiCall | list[str]:
    if not args or args[0] not in _PVESH_VERBS:
        verb = args[0] if args else ""
        return [f"pvesh: unsupported verb {verb!r} (expected one of {sorted(_PVESH_VERBS)})"]
    if len(args) < 2 or args[1].startswith("-"):
        return [f"pvesh {args[0]}: the API path must follow the verb"]
    return ApiCall(
        label=f"pvesh {args[0]} {args[1]}",
        method=_PVESH_VERBS[args[0]],
        path=args[1],
        tokens=tuple(args[2:]),
        extra_options=_PVESH_OPTIONS,
    )


class _Command(NamedTuple):
    """How a qm/pveum sub-command maps onto the API (from qm.pm / pveum.pm's cmddef)."""

    method: str
    path: str
    arg_names: tuple[str, ...]
    extra_options: Mapping[str, Prop] = MappingProxyType({})
    file_params: frozenset[str] = frozenset()  # values the CLI reads from a file


_QM_NODE = "/nodes/localhost/qemu"  # qm always talks to its own node
_QM_VM = f"{_QM_NODE}/{{vmid}}"
_QM_COMMANDS: Mapping[tuple[str, ...], _Command] = {
    # qm reads --sshkeys from a file and URL-encodes it itself.
    ("create",): _Command("POST", _QM_NODE, ("vmid",), file_params=frozenset({"sshkeys"})),
    ("set",): _Command("PUT", f"{_QM_VM}/config", ("vmid",), file_params=frozenset({"sshkeys"})),
    ("config",): _Command("GET", f"{_QM_VM}/config", ("vmid",)),
    ("destroy",): _Command("DELETE", _QM_VM, ("vmid",)),
    ("status",): _Command("GET", f"{_QM_VM}/status/current", ("vmid",), {"verbose": _BOOL}),
    ("list",): _Command("GET", _QM_NODE, ()),
    ("resize",): _Command("PUT", f"{_QM_VM}/resize", ("vmid", "disk", "size")),
    ("template",): _Command("POST", f"{_QM_VM}/template", ("vmid",)),
    ("clone",): _Command("POST", f"{_QM_VM}/clone", ("vmid", "newid")),
    # qm.pm: guest cmd => PVE::API2::Qemu::Agent 'agent' (POST .../agent {command});
    # `qm agent` is an alias of `qm guest cmd`.
    ("guest", "cmd"): _Command("POST", f"{_QM_VM}/agent", ("vmid", "command")),
    ("agent",): _Command("POST", f"{_QM_VM}/agent", ("vmid", "command")),
    **{
        (power,): _Command("POST", f"{_QM_VM}/status/{power}", ("vmid",))
        for power in ("start", "stop", "shutdown", "reboot", "reset", "suspend", "resume")
    },
}

_PCT_NODE = "/nodes/localhost/lxc"  # pct, like qm, talks to its own node
_PCT_CT = f"{_PCT_NODE}/{{vmid}}"
_PCT_COMMANDS: Mapping[tuple[str, ...], _Command] = {
    # pct.pm's cmddef: create takes the template as its second word.
    ("create",): _Command("POST", _PCT_NODE, ("vmid", "ostemplate")),
    ("set",): _Command("PUT", f"{_PCT_CT}/config", ("vmid",)),
    ("config",): _Command("GET", f"{_PCT_CT}/config", ("vmid",)),
    ("destroy",): _Command("DELETE", _PCT_CT, ("vmid",)),
    ("status",): _Command("GET", f"{_PCT_CT}/status/current", ("vmid",), {"verbose": _BOOL}),
    ("list",): _Command("GET", _PCT_NODE, ()),
    ("resize",): _Command("PUT", f"{_PCT_CT}/resize", ("vmid", "disk", "size")),
    **{
        (power,): _Command("POST", f"{_PCT_CT}/status/{power}", ("vmid",))
        for power in ("start", "stop", "shutdown", "reboot", "suspend", "resume")
    },
}
_PCT_LOCAL = {"exec": 1, "pull": 3, "push": 3, "enter": 1}
"""pct's commands that are no API call (`PVE::CLI::pct` runs them on the host itself):
how many words they take at least, the vmid first."""


def _pct(args: Sequence[str]) -> ApiCall | list[str]:
    """A pct command line: an API method as qm's are, or a host-local command, for which
    only its vmid and word count can be wrong."""
    if args and args[0] in _PCT_LOCAL:
        words = list(args[1:])
        if len(words) < _PCT_LOCAL[args[0]]:
            return [f"pct {args[0]}: not enough arguments"]
        if not words[0].isdigit() or not 100 <= int(words[0]) <= 999_999_999:
            return [f"pct {args[0]}: vmid {words[0]!r} is not a valid VM ID"]
        if args[0] == "exec" and words[1:2] != ["--"]:
            return ["pct exec: the command must follow `--` (else pct parses its options)"]
        return []
    return _subcommand("pct", _PCT_COMMANDS, args)


_TOKEN = "/access/users/{userid}/token"
_TOKEN_ARGS = ("userid", "tokenid")
_PVEUM_COMMANDS: Mapping[tuple[str, ...], _Command] = {
    ("user", "token", "add"): _Command(
        "POST", f"{_TOKEN}/{{tokenid}}", _TOKEN_ARGS, _OUTPUT_OPTIONS
    ),
    ("user", "token", "modify"): _Command(
        "PUT", f"{_TOKEN}/{{tokenid}}", _TOKEN_ARGS, _OUTPUT_OPTIONS
    ),
    ("user", "token", "remove"): _Command(
        "DELETE", f"{_TOKEN}/{{tokenid}}", _TOKEN_ARGS, _OUTPUT_OPTIONS
    ),
    ("user", "token", "list"): _Command("GET", _TOKEN, ("userid",), _OUTPUT_OPTIONS),
    ("user", "add"): _Command("POST", "/access/users", ("userid",)),
    ("user", "permissions"): _Command("GET", "/access/permissions", ("userid",), _OUTPUT_OPTIONS),
    ("role", "add"): _Command("POST", "/access/roles", ("roleid",)),
    # pveum.pm: acl modify/delete => update_acl with `delete` fixed to 0/1
    ("acl", "modify"): _Command("PUT", "/access/acl", ("path",)),
    ("acl", "delete"): _Command("PUT", "/access/acl", ("path",)),
}


def _subcommand(
    tool: str, table: Mapping[tuple[str, ...], _Command], args: Sequence[str]
) -> ApiCall | list[str]:
    """Map ``tool word [word ...] args`` onto the API method its CLI handler calls."""
    for width in (3, 2, 1):
        words = tuple(args[:width])
        if len(words) == width and words in table:
            command = table[words]
            return ApiCall(
                label=f"{tool} {' '.join(words)}",
                method=command.method,
                path=command.path,
                tokens=tuple(args[width:]),
                arg_names=command.arg_names,
                extra_options=command.extra_options,
                file_params=command.file_params,
            )
    return [f"{tool}: unknown or unsupported subcommand {' '.join(args[:3])!r}"]


_TOOLS: Mapping[str, Callable[[Sequence[str]], ApiCall | list[str]]] = {
    "pvesh": _pvesh,
    "qm": functools.partial(_subcommand, "qm", _QM_COMMANDS),
    "pct": _pct,
    "pveum": functools.partial(_subcommand, "pveum", _PVEUM_COMMANDS),
}


def to_api_call(argv: Sequence[str]) -> ApiCall | list[str]:
    """Translate an argv into the API call it makes, or the problems that prevent it."""
    if not argv:
        return ["empty argv"]
    tool = os.path.basename(argv[0])
    translate = _TOOLS.get(tool)
    if translate is None:
        return [f"unsupported tool {tool!r} (expected one of {sorted(_TOOLS)})"]
    return translate(list(argv[1:]))


# --------------------------------------------------------------------------- checking


@dataclass
class _Request:
    """A call after option parsing: path parameters and options, ready to validate."""

    call: ApiCall
    spec: MethodSpec
    path_values: dict[str, str]
    options: dict[str, list[str]]
    from_args: dict[str, str]
    problems: list[str]


def _prop_for(request: _Request, name: str) -> tuple[Prop | None, str | None]:
    prop, why = request.spec.lookup(name)
    if prop is None and name in request.call.extra_options:
        return request.call.extra_options[name], None
    return prop, why


def _bind_args(
    call: ApiCall, path_values: dict[str, str], args: list[str]
) -> tuple[dict[str, str], list[str]]:
    """Assign positional words to ``arg_names``; path placeholders take them too."""
    problems = [f"unexpected argument {extra!r}" for extra in args[len(call.arg_names) :]]
    problems += [f"missing argument <{name}>" for name in call.arg_names[len(args) :]]
    from_args: dict[str, str] = {}
    for name, value in zip(call.arg_names, args, strict=False):
        if path_values.get(name) == f"{{{name}}}":
            path_values[name] = value
        else:
            from_args[name] = value
    return from_args, problems


def _parse(call: ApiCall, schema: Schema) -> _Request | list[str]:
    resolved = schema.resolve(call.path)
    if resolved is None:
        return [f"{call.label}: no API path matches {call.path!r}"]
    endpoint, path_values = resolved
    spec = endpoint.methods.get(call.method)
    if spec is None:
        allowed = ", ".join(sorted(endpoint.methods)) or "none"
        return [f"{call.label}: {endpoint.template} has no {call.method} method (has: {allowed})"]
    request = _Request(call, spec, path_values, {}, {}, [])

    def takes_value(name: str) -> bool | None:
        prop, _ = _prop_for(request, name)
        return None if prop is None else prop.get("type") != "boolean"

    parsed = _getopt(call.tokens, takes_value)
    request.options = parsed.options
    request.from_args, request.problems = _bind_args(call, path_values, parsed.positionals)
    request.problems += parsed.problems
    return request


def _check_path_values(request: _Request) -> list[str]:
    problems = []
    for name, value in request.path_values.items():
        prop = request.spec.properties.get(name)
        if prop is not None and value != f"{{{name}}}":  # unfilled: reported as missing
            problems += [f"{name} (in path): {msg}" for msg in check_value(prop, value)]
    return problems


def _joined(name: str, prop: Prop, values: list[str]) -> tuple[list[str], list[str]]:
    """Repeated flags: arrays keep each value, ``*-list`` formats join them, else a problem."""
    if len(values) == 1 or prop.get("type") == "array":
        return values, []
    fmt = prop.get("format")
    if isinstance(fmt, str) and fmt.endswith("-alist"):
        return ["\0".join(values)], []
    if isinstance(fmt, str) and fmt.endswith("-list"):
        return [",".join(values)], []
    return values[-1:], [f"{name}: given {len(values)} times (only the last would be used)"]


def _check_option(request: _Request, name: str, values: list[str]) -> list[str]:
    if name in request.path_values:
        return [f"{name}: comes from the path, not from an option"]
    if name in request.call.arg_names:
        return [f"{name}: is a positional argument of {request.call.label}, not an option"]
    prop, why = _prop_for(request, name)
    if prop is None:
        if request.spec.additional:
            return []
        return [f"{name}: unknown parameter{f' ({why})' if why else ''}"]
    values, problems = _joined(name, prop, values)
    if prop.get("type") == "array":
        prop = prop.get("items") or {}
    if prop.get("type") == "boolean":
        values = ["1" if v == "" else v for v in values]
    check_format = name not in request.call.file_params
    for value in values:
        problems += [
            f"{name}: {msg}" for msg in check_value(prop, value, check_format=check_format)
        ]
    return problems


def _check_presence(request: _Request) -> list[str]:
    """Required parameters present, and each ``requires`` partner given alongside."""
    given = set(request.options) | set(request.from_args) | set(request.path_values)
    given |= set(request.call.arg_names)  # a missing positional is reported by _bind_args
    problems = [
        f"{name}: missing required parameter"
        for name, prop in request.spec.properties.items()
        if not prop.get("optional") and "[n]" not in name and name not in given
    ]
    for name in sorted(set(request.options) | set(request.from_args)):
        prop, _ = request.spec.lookup(name)
        requires = prop.get("requires") if prop else None
        if isinstance(requires, str) and requires not in given:
            problems.append(f"{requires}: missing property - '{name}' requires this property")
    return problems


def _check_request(request: _Request) -> list[str]:
    problems = request.problems + _check_path_values(request)
    for name, value in request.from_args.items():
        prop, why = request.spec.lookup(name)
        if prop is None:
            problems.append(f"{name}: unknown parameter{f' ({why})' if why else ''}")
        else:
            problems += [f"{name}: {msg}" for msg in check_value(prop, value)]
    for name, values in request.options.items():
        problems += _check_option(request, name, values)
    return problems + _check_presence(request)


def check_call(argv: Sequence[str], schema: Schema | None = None) -> list[str]:
    """Problems that would make PVE reject this command line; empty when it conforms.

    ``argv[0]`` is ``pvesh``, ``qm`` or ``pveum`` (a full path is fine). The call is mapped
    to its API method and path, options are parsed as PVE's Getopt setup does, and every
    value is validated against the method's schema.
    """
    call = to_api_call(argv)
    if isinstance(call, list):
        return call
    request = _parse(call, schema or load_schema())
    if isinstance(request, list):
        return request
    return _check_request(request)


def check_api_request(
    method: str,
    path: str,
    path_params: Mapping[str, str | int],
    params: Mapping[str, str | int | bool],
    schema: Schema | None = None,
) -> list[str]:
    """Problems PVE's API would have with a request given as its schema names it.

    ``path`` is a template of the schema exactly (``/nodes/{node}/qemu/{vmid}/config``),
    ``path_params`` fill exactly its placeholders, ``method`` is one of its methods, and
    ``params`` are checked like CLI options, without the CLI's own (``output-format``):
    declared, valid for their schema (type, format, enum, range), required ones present.
    A Python bool may only go to a boolean parameter (a transport writes it as 0/1).
    """
    schema = schema or load_schema()
    endpoint = schema.endpoints.get(path)
    if endpoint is None:
        return [f"{path}: not a path of the API schema"]
    spec = endpoint.methods.get(method)
    if spec is None:
        allowed = ", ".join(sorted(endpoint.methods)) or "none"
        return [f"{path} has no {method} method (has: {allowed})"]
    placeholders = {segment[1:-1] for segment in endpoint.segments if _is_param(segment)}
    problems = []
    if set(path_params) != placeholders:
        problems.append(f"path parameters {sorted(path_params)} != {sorted(placeholders)}")
    options: dict[str, list[str]] = {}
    for name, value in params.items():
        if isinstance(value, bool):
            prop, _ = spec.lookup(name)
            if prop is not None and prop.get("type") != "boolean":
                problems.append(f"{name}: a boolean for a {prop.get('type')} parameter")
            options[name] = ["1" if value else "0"]
        else:
            options[name] = [str(value)]
    call = ApiCall(label=f"{method} {path}", method=method, path=path, tokens=())
    values = {name: str(value) for name, value in path_params.items()}
    return _check_request(_Request(call, spec, values, options, {}, problems))


def check_recorded_request(record: Mapping[str, Any], schema: Schema | None = None) -> list[str]:
    """Problems of one HTTPS API request the simulator recorded in calls.jsonl (`"tool":
    "api"`: method, path template, path parameters, parameters as sent), each prefixed
    with the request. A request refused before it reached a method (401, 501) is not
    recorded."""
    label = f"{record['method']} {record['path']}"
    problems = check_api_request(
        record["method"], record["path"], record["path_params"], record["params"], schema
    )
    return [f"{label}: {problem}" for problem in problems]
