"""A simulated host's storage.cfg: which storages it has, of which type, for which content.

A simulated host is the host its node file describes (`SimHost`): a top-level host is a
fresh PVE 9 ISO install, `local` (dir, content `iso,vztmpl,backup,import`, as the 9.x
installer writes it) plus the install's VM storage (`local-lvm`, or `local-zfs` when the
node file's `datastore` says so), plus the datastore it names if that is yet another
storage. A nested host (PVE installed on Debian, as pveplan does) has no storage.cfg, so
it has pve-storage's built-in `local` only: backup, images, iso, rootdir, snippets,
vztmpl (no `import`). `state["storage_cfg"][NODE]` holds it; `PUT /storage/{storage}
--content` changes it, the way a user enables a content type (`pvesm set`).

Content types are enforced where PVE enforces them: a content listing shows enabled types
only; `download-url` refuses a type the storage is not configured for; a disk needs
`images`; and a dir storage's content directories (`snippets/`, `import/`, ...) exist only
for enabled types (PVE's `activate_storage` makes them), so a snippet written over SFTP
to a storage without `snippets` finds no directory. See docs/simulator.md, "Storage".
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import msgspec

from pveplan.sim._api import Ctx, route
from pveplan.sim._errors import fail, param_error
from pveplan.sim._state import SimRoot, locked_state, read_state


class SimHost(msgspec.Struct, frozen=True, kw_only=True):
    """What a node file says about a simulated PVE host: the facts the simulator models.

    `datastore` is where VM disks go (`local-zfs` gives the host a zfspool of that name);
    `bridges` are the bridges its VMs plug into (vmbr0 is always there).
    """

    node: str
    datastore: str | None = None
    bridges: tuple[str, ...] = ()


CONTENT_TYPES = ("backup", "images", "import", "iso", "rootdir", "snippets", "vztmpl")
FILE_CONTENT = frozenset({*CONTENT_TYPES, "none"})
BLOCK_CONTENT = frozenset({"images", "rootdir"})
VALID_CONTENT = {
    "dir": FILE_CONTENT,
    "btrfs": FILE_CONTENT,
    "nfs": FILE_CONTENT,
    "cifs": FILE_CONTENT,
    "cephfs": frozenset({"backup", "import", "iso", "snippets", "vztmpl"}),
    "zfspool": BLOCK_CONTENT,
    "lvmthin": BLOCK_CONTENT,
    "lvm": BLOCK_CONTENT,
    "rbd": BLOCK_CONTENT,
}
"""What each plugin type accepts (pve-storage's `plugindata`)."""

SUBDIRS = {
    "images": "images",
    "rootdir": "private",
    "vztmpl": "template/cache",
    "iso": "template/iso",
    "backup": "dump",
    "snippets": "snippets",
    "import": "import",
}
"""A file-based storage's directory per content type (pve-storage's `get_subdir`)."""

LOCAL_PATH = "/var/lib/vz"
INSTALL_STORAGES: dict[str, dict[str, Any]] = {
    # Proxmox/Install/StorageConfig.pm (pve-installer 9.x): the VM storage of each layout.
    "local-lvm": {"type": "lvmthin", "thinpool": "data", "vgname": "pve", "content": ["images", "rootdir"]},
    "local-zfs": {"type": "zfspool", "pool": "rpool/data", "sparse": 1, "content": ["images", "rootdir"]},
    "local-btrfs": {
        "type": "btrfs",
        "path": "/var/lib/pve/local-btrfs",
        "content": ["backup", "images", "import", "iso", "rootdir", "vztmpl"],
    },
}  # fmt: skip
ISO_LOCAL = {"type": "dir", "path": LOCAL_PATH, "content": ["backup", "import", "iso", "vztmpl"]}
"""`local` as PVE 9's installer writes it (`content iso,vztmpl,backup,import`)."""
DEBIAN_LOCAL = {
    "type": "dir",
    "path": LOCAL_PATH,
    "content": ["backup", "images", "iso", "rootdir", "snippets", "vztmpl"],
}
"""`local` when storage.cfg does not define it (pve-storage's `Plugin::parse_config`)."""

NAME_TYPES = (
    ("zfs", "zfspool"),
    ("lvmthin", "lvmthin"),
    ("lvm-thin", "lvmthin"),
    ("thin", "lvmthin"),
    ("lvm", "lvm"),
    ("btrfs", "btrfs"),
    ("cephfs", "cephfs"),
    ("ceph", "rbd"),
    ("rbd", "rbd"),
    ("nfs", "nfs"),
    ("cifs", "cifs"),
    ("smb", "cifs"),
)
"""The type a storage name suggests (first match); anything else is a directory."""


def storage_for(name: str) -> dict[str, Any]:
    """The storage a node file's `datastore` names, as a user would have set it up: the
    installer's when it is one, else of the type its name suggests, for VM disks."""
    if name in INSTALL_STORAGES:
        return json.loads(json.dumps(INSTALL_STORAGES[name]))
    kind = next((t for word, t in NAME_TYPES if word in name.lower()), "dir")
    cfg: dict[str, Any] = {"type": kind, "content": ["images", "rootdir"]}
    if kind in ("dir", "btrfs", "nfs", "cifs", "cephfs"):
        cfg["path"] = f"/mnt/pve/{name}"
    if kind == "cephfs":
        cfg["content"] = ["backup", "iso", "vztmpl"]
    return cfg


def default_storages(datastore: str | None, *, nested: bool) -> dict[str, dict[str, Any]]:
    """The storage.cfg of a new host: see the module docstring."""
    if nested:
        return {"local": json.loads(json.dumps(DEBIAN_LOCAL))}
    install = datastore if datastore in INSTALL_STORAGES else "local-lvm"
    storages = {"local": json.loads(json.dumps(ISO_LOCAL)), install: storage_for(install)}
    if datastore and datastore not in storages:
        storages[datastore] = storage_for(datastore)
    return storages


def node_storages(state: dict[str, Any], node: str) -> dict[str, dict[str, Any]]:
    """The storage.cfg of `node` (in place); an older state without one gets the
    storages of its volume tables, as the simulator used to make them."""
    table = state.setdefault("storage_cfg", {})
    if node not in table:
        nested = (state["nodes"].get(node) or {}).get("vmid") is not None
        legacy = {
            "local": {**DEBIAN_LOCAL, "content": [*DEBIAN_LOCAL["content"], "import"]},
            "local-lvm": storage_for("local-lvm"),
        }
        known = state["storage"].get(node, {})
        table[node] = {s: legacy.get(s) or storage_for(s) for s in known} or default_storages(
            None, nested=nested
        )
    return table[node]


def add_storage(state: dict[str, Any], node: str, name: str, cfg: dict[str, Any]) -> None:
    """Give `node` storage `name` unless it has one of that name (in place)."""
    node_storages(state, node).setdefault(name, cfg)
    state["storage"].setdefault(node, {}).setdefault(name, {})


def storage_cfg(state: dict[str, Any], node: str, storage: str) -> dict[str, Any]:
    """One storage of `node`, or PVE's error if it has none of that name."""
    cfg = node_storages(state, node).get(storage)
    if cfg is None:
        raise fail(f"storage '{storage}' does not exist")
    return cfg


def is_file_based(cfg: dict[str, Any]) -> bool:
    return cfg.get("path") is not None


def storage_path(root: SimRoot, node: str, cfg: dict[str, Any]) -> Path:
    """Where a file-based storage keeps its files inside the host's tree."""
    return root.host_dir(node) / str(cfg["path"]).lstrip("/")


def activate(root: SimRoot, node: str, cfg: dict[str, Any]) -> None:
    """Make a file-based storage's content directories, for enabled types only (and
    `dump/` with `rootdir`), as PVE's `activate_storage` does."""
    if not is_file_based(cfg):
        return
    base = storage_path(root, node, cfg)
    content = set(cfg["content"])
    for kind, sub in SUBDIRS.items():
        if kind in content or (kind == "backup" and "rootdir" in content):
            (base / sub).mkdir(parents=True, exist_ok=True)


def activate_all(root: SimRoot, state: dict[str, Any], node: str) -> None:
    for cfg in node_storages(state, node).values():
        activate(root, node, cfg)


def _digest(storages: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(storages, sort_keys=True).encode()).hexdigest()


def _api_config(storages: dict[str, Any], storage: str) -> dict[str, Any]:
    cfg = storages[storage]
    return {
        **cfg,
        "storage": storage,
        "content": ",".join(sorted(cfg["content"])) or "none",
        "digest": _digest(storages),
    }


@route("GET", "/storage")
def list_storage_config(
    ctx: Ctx, path: dict[str, Any], params: dict[str, Any]
) -> list[dict[str, Any]]:
    storages = node_storages(read_state(ctx.root), ctx.node)
    found = [_api_config(storages, s) for s in sorted(storages)]
    return [c for c in found if params.get("type") in (None, c["type"])]


@route("GET", "/storage/{storage}")
def read_storage_config(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    state = read_state(ctx.root)
    storage_cfg(state, ctx.node, path["storage"])
    return _api_config(node_storages(state, ctx.node), path["storage"])


def parse_content(text: str) -> list[str]:
    """A `pve-storage-content-list`; a parameter error for an unknown type."""
    items = [c for c in text.replace(";", ",").split(",") if c.strip()]
    for item in items:
        if item.strip() not in FILE_CONTENT:
            raise param_error({"content": f"invalid format - invalid content type '{item}'\n"})
    return sorted({item.strip() for item in items})


@route("PUT", "/storage/{storage}")
def update_storage_config(ctx: Ctx, path: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """`pvesm set STORAGE --content ...`: the list replaces the old one. A type the
    plugin does not support is dropped (PVE warns and goes on); none left is an error."""
    storage = path["storage"]
    with locked_state(ctx.root) as state:
        storages = node_storages(state, ctx.node)
        if params.get("digest") and params["digest"] != _digest(storages):
            raise fail(
                "update storage failed: detected modified configuration - "
                "file changed by other user? Try again."
            )
        cfg = storages.get(storage)
        if cfg is None:
            raise fail(f"update storage failed: storage '{storage}' does not exist")
        if "content" in params:
            wanted = parse_content(str(params["content"]))
            valid = VALID_CONTENT.get(cfg["type"], FILE_CONTENT)
            kept = [c for c in wanted if c in valid and c != "none"]
            if not kept and "none" not in valid:
                raise fail("update storage failed: storage does not support content type 'none'")
            cfg["content"] = kept
        if params.get("disable") is not None:
            cfg["disable"] = 1 if params["disable"] else 0
        activate(ctx.root, ctx.node, cfg)
        return {"storage": storage, "type": cfg["type"]}


@route("GET", "/nodes/{node}/storage")
def node_storage_status(
    ctx: Ctx, path: dict[str, Any], params: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each storage with its content types and (made-up) usage; `content` keeps the
    storages that allow every listed type, `storage` one storage."""
    storages = node_storages(read_state(ctx.root), ctx.node)
    wanted = set(parse_content(str(params["content"]))) if "content" in params else set()
    found = []
    for name in sorted(storages):
        cfg = storages[name]
        if params.get("storage") not in (None, name) or not wanted <= set(cfg["content"]):
            continue
        found.append(storage_status(name, cfg))
    return found


def storage_status(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    total, used = 100 * 1024**3, 4 * 1024**3
    enabled = not cfg.get("disable")
    return {
        "storage": name,
        "type": cfg["type"],
        "content": ",".join(sorted(cfg["content"])) or "none",
        "active": 1 if enabled else 0,
        "enabled": 1 if enabled else 0,
        "shared": 0,
        "total": total,
        "used": used,
        "avail": total - used,
        "used_fraction": used / total,
    }
