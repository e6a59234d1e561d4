"""A simulated host's storages: volumes, content listings and `download-url`.

What each storage is comes from the host's storage.cfg (`_storagecfg`); `state.json`
holds the volumes of block storages, and a file-based storage keeps its files under the
host's tree as PVE lays them out. Content types are enforced as PVE does: a listing shows
enabled types only, and a download needs its type enabled. Downloads need no network: a
simulated host has internet, and every URL yields simulated content with the checksum it
was asked for.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pveplan.sim._api import Ctx, route
from pveplan.sim._errors import TaskError, fail, param_error
from pveplan.sim._state import locked_state, read_state, take_fault
from pveplan.sim._storagecfg import SUBDIRS, is_file_based, storage_cfg, storage_path
from pveplan.sim._tasks import Task, run_task

SIM_IMAGE_PREFIX = "sim://images/"
# The same images over HTTPS, as PVE's `download-url` accepts only http(s) URLs: the
# `.invalid` TLD (RFC 2606) can never be a real host, so the name cannot mean anything else.
SIM_IMAGE_HTTPS = "https://images.sim.pveplan.invalid/"


# --- storage -------------------------------------------------------------------------

DIR_LAYOUT = {kind: SUBDIRS[kind] for kind in ("iso", "vztmpl", "import", "snippets", "backup")}
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
    cfg = storage_cfg(state, node, storage)
    state["storage"].setdefault(node, {}).setdefault(storage, {})
    return cfg


def storage_dir(ctx: Ctx, storage: str, state: dict[str, Any] | None = None) -> Path:
    """Where file-based `storage` keeps its files in the host's tree."""
    cfg = storage_def(state if state is not None else read_state(ctx.root), ctx.node, storage)
    return storage_path(ctx.root, ctx.node, cfg)


def parse_volume(ctx: Ctx, state: dict[str, Any], volid: str) -> Volume:
    """`STORAGE:NAME` as PVE's storage plugins parse it (dir layout or LVM names)."""
    storage, sep, name = volid.partition(":")
    if not sep:
        raise fail(f"unable to parse volume ID '{volid}'")
    sdef = storage_def(state, ctx.node, storage)
    if is_file_based(sdef):
        return _parse_dir_volume(ctx, state, volid, storage, name)
    # A linked clone's disk is a child of a base volume: `base-T-disk-0/vm-N-disk-0`.
    match = re.fullmatch(r"(?:base-\d+-disk-\d+/)?(?:vm|base)-(\d+)-(disk-\d+|cloudinit)", name)
    if not match:
        kind = {"lvmthin": "lvm", "zfspool": "zfs"}.get(sdef["type"], sdef["type"])
        raise fail(f"unable to parse {kind} volume name '{name}'")
    return Volume(volid, storage, "images", int(match[1]), None)


def _parse_dir_volume(
    ctx: Ctx, state: dict[str, Any], volid: str, storage: str, name: str
) -> Volume:
    base = storage_dir(ctx, storage, state)
    kind, _, rest = name.partition("/")
    if kind in VOLNAME_KINDS and rest and "/" not in rest:
        return Volume(volid, storage, VOLNAME_KINDS[kind], None, base / DIR_LAYOUT[kind] / rest)
    match = re.fullmatch(r"(\d+)/((?:vm|base)-\1-[\w.-]+)", name)
    if match:
        return Volume(volid, storage, "images", int(match[1]), base / "images" / name)
    # A linked clone's: `T/base-T-disk-0.qcow2/N/vm-N-disk-0.qcow2`, its file under N/.
    match = re.fullmatch(r"\d+/base-\d+-[\w.-]+/((\d+)/(?:vm|base)-\2-[\w.-]+)", name)
    if match:
        return Volume(volid, storage, "images", int(match[2]), base / "images" / match[1])
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


def scan_dir_storage(ctx: Ctx, state: dict[str, Any], storage: str) -> list[dict[str, Any]]:
    """A dir storage's volumes are its files, as on PVE (SFTP uploads included)."""
    base = storage_dir(ctx, storage, state)
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
    if is_file_based(storage_def(state, ctx.node, storage)):
        return scan_dir_storage(ctx, state, storage)
    entries = state["storage"][ctx.node][storage]
    return [{"volid": volid, **entries[volid]} for volid in sorted(entries)]


@route("GET", "/nodes/{node}/storage/{storage}/content")
def storage_content(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    state = read_state(ctx.root)
    enabled = set(storage_def(state, ctx.node, path["storage"])["content"])
    # PVE lists the enabled content types only (`PVE::Storage::volume_list`).
    volumes = [v for v in list_volumes(ctx, state, path["storage"]) if v["content"] in enabled]
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
    if not is_file_based(sdef):
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


def _fetch(url: str, checksum: tuple[str, str] | None) -> bytes:
    """The bytes behind a URL. The simulator's images (`https://images.sim.pveplan.invalid/
    NAME.EXT`, or `sim://images/NAME.EXT`) are fixed bytes; any other URL is on the
    internet, which a simulated host has: its content is simulated, and it is what the
    download was asked to verify (`checksum`: algorithm, hex digest), so a real site
    config's pins pass. Without a checksum it is `pveplan-sim-download URL\n`.
    """
    prefix = next((p for p in (SIM_IMAGE_PREFIX, SIM_IMAGE_HTTPS) if url.startswith(p)), None)
    if prefix is not None:
        name = url[len(prefix) :]
        if not name or "/" in name:
            raise TaskError(f"download failed: 404 Not Found: {url}")
        return sim_image_bytes(name.rsplit(".", 1)[0] if "." in name else name)
    return internet_bytes(url, checksum)


class _Verified(bytes):
    """Simulated internet content that stands for a file whose `algorithm` digest is
    `digest` (no bytes hash to a digest picked in advance; the checksum check asks this)."""

    algorithm: str
    digest: str


def internet_bytes(url: str, checksum: tuple[str, str] | None) -> bytes:
    """What a simulated download of `url` fetches (see `_fetch`)."""
    data = f"pveplan-sim-download {url}\n".encode()
    if checksum is None:
        return data
    verified = _Verified(data)
    verified.algorithm, verified.digest = checksum[0], checksum[1].lower()
    return verified


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
    checksum = (params["checksum-algorithm"], params["checksum"]) if "checksum" in params else None
    data = _fetch(url, checksum)
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
    if isinstance(data, _Verified) and data.algorithm == algorithm:
        got = data.digest  # the file the simulated internet served has that checksum
    else:
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
