"""Parameter verification as pve-common's JSONSchema does it, for the methods simulated.

Checks raw string parameters against a method's table in `_schema` (types, ranges,
string formats, property strings) and builds PVE's `400 Parameter verification failed.`
errors; also the property-string and size helpers the handlers share. Pure: no state,
no files, so a handler can validate before it takes the state lock.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from pveplan.sim._errors import param_error
from pveplan.sim._schema import FORMATS

KIB, MIB, GIB, TIB = 1024, 1024**2, 1024**3, 1024**4


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


def check_storage_id(text: str) -> str | None:
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


def check_iface(text: str) -> str | None:
    """pve-common's `pve-iface`."""
    return None if IFACE_RE.match(text) else f"invalid network interface name '{text}'"


def _check_iface_list(text: str) -> str | None:
    return next((p for p in map(check_iface, split_list(text)) if p), None)


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


def _ip_config(version: int, words: tuple[str, ...]) -> Callable[[str], str | None]:
    """`pve-ipv4-config`, `pve-ipv6-config`: a keyword (dhcp, ...) or a CIDR."""
    cidr = _ip_check(version, True, "")
    message = f"value does not look like a valid ipv{version} network configuration"
    return lambda text: None if text in words or cidr(text) is None else message


def _check_address_list(text: str) -> str | None:
    """`address-list` (a nameserver): IP addresses or DNS names, split as PVE does."""
    for word in split_list(text):
        try:
            ipaddress.ip_address(word)
        except ValueError:
            if not DNS_NAME_RE.match(word):
                return "value does not look like a valid address list"
    return None


STRING_FORMATS: dict[str, Callable[[str], str | None]] = {
    "pve-vmid": _regex_check(VMID_RE, "value does not look like a valid VM ID"),
    "dns-name": _regex_check(DNS_NAME_RE, "value does not look like a valid DNS name"),
    "pve-tag-list": _check_tags,
    "urlencoded": lambda text: (
        None if URLENCODED_RE.match(text) else f"invalid urlencoded string: {text}"
    ),
    "pve-storage-id": check_storage_id,
    "pve-configid": lambda text: _check_configids(text) if text else None,
    "pve-configid-list": _check_configids,
    "pve-node": _regex_check(NODE_RE, "value does not look like a valid node name"),
    "mac-addr": _check_mac,
    "disk-size": _regex_check(DISK_SIZE_RE, "unable to parse disk size"),
    "pve-iface": check_iface,
    "pve-iface-list": _check_iface_list,
    "ipv4": _ip_check(4, False, "value does not look like a valid IPv4 address"),
    "ipv6": _ip_check(6, False, "value does not look like a valid IPv6 address"),
    "CIDRv4": _ip_check(4, True, "value does not look like a valid IPv4 CIDR network"),
    "CIDRv6": _ip_check(6, True, "value does not look like a valid IPv6 CIDR network"),
    "ipv4mask": _check_ipv4_mask,
    "pve-ipv4-config": _ip_config(4, ("dhcp", "manual")),
    "pve-ipv6-config": _ip_config(6, ("auto", "dhcp", "manual")),
    "address-list": _check_address_list,
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
