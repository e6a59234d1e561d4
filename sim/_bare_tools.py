"""What apt on a bare Debian machine knows: PVE's packages only from PVE's repository.

PVE's guide to installing on Debian: add the `pve-no-subscription` (or enterprise)
repository (`/etc/apt/sources.list.d/pve-install-repo.sources`, deb822, or a `.list`
line), `apt update`, then `apt install proxmox-ve` (the guide installs the Proxmox kernel
first and reboots into it; the simulator runs no kernel, so it does not model that). A
plain Debian machine cannot locate `proxmox-ve` before that, and here neither can a bare
machine (`sim._bare`): `apt-get install` says `E: Unable to locate package proxmox-ve`
and exits 100 until a source names download.proxmox.com and `apt-get update` has read it.

Simulated VMs keep installing `proxmox-ve` without a repository (their images are taken
to carry one, as homestak's PVE images do).
"""

from __future__ import annotations

from pathlib import Path

from pveplan.sim._state import BARE_MACHINES
from pveplan.sim._vm import Guest

PVE_REPOSITORY = "download.proxmox.com/debian/pve"
PVE_ONLY = frozenset(
    {
        "proxmox-ve",
        "proxmox-default-kernel",
        "pve-manager",
        "qemu-server",
        "pve-cluster",
        "pve-firewall",
        "pve-ha-manager",
    }
)
"""Packages Debian's own archive does not have."""
SOURCES = Path("etc/apt/sources.list.d")


def is_bare(guest: Guest) -> bool:
    return guest.node == BARE_MACHINES


def pve_source(tree: Path) -> str | None:
    """The first apt source file in `tree` naming PVE's repository."""
    candidates = [tree / "etc/apt/sources.list"]
    folder = tree / SOURCES
    if folder.is_dir():
        candidates += sorted(folder.glob("*.sources")) + sorted(folder.glob("*.list"))
    for path in candidates:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if PVE_REPOSITORY in line and not line.lstrip().startswith("#"):
                return str(path.relative_to(tree))
    return None


def signed_by(tree: Path, source: str) -> str | None:
    """The keyring a deb822 source's `Signed-By:` names, if any."""
    for line in (tree / source).read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "signed-by" and value.strip().startswith("/"):
            return value.strip()
    return None


def note_update(guest: Guest) -> str | None:
    """After `apt-get update`: whether the machine now knows PVE's packages (recorded);
    the source that provides them. A source whose `Signed-By` keyring is missing is not
    read (apt: the repository is not signed), as on Debian; `unsigned` says so."""
    if not is_bare(guest):
        return None
    source = pve_source(guest.dir)
    keyring = signed_by(guest.dir, source) if source is not None else None
    usable = source is not None and (keyring is None or (guest.dir / keyring.lstrip("/")).is_file())
    with guest.edit("system") as data:
        data["pve_indexed"] = usable
    if source is not None and not usable:
        return "unsigned"
    return source


def unlocatable(guest: Guest, names: list[str]) -> str | None:
    """The first of `names` apt cannot locate on this machine, or None."""
    if not is_bare(guest) or guest.read("system").get("pve_indexed"):
        return None
    return next((name for name in names if name.split("=")[0] in PVE_ONLY), None)


def chown(guest: Guest, argv: list[str]) -> int:
    """`chown [-R] USER[:GROUP] PATH...` (root only): recorded in files.json as write_files'
    owners are (a simulated machine's files all belong to whoever runs the simulator).

    Absolute paths are the machine's; a path that leaves its tree, or that does not exist,
    fails as chown does. `-R` records the directory and everything under it.
    """
    from pveplan.sim._stdio import write_stderr

    recursive = "-R" in argv
    words = [a for a in argv if a not in ("-R", "-h", "--")]
    if len(words) < 2:
        write_stderr("chown: missing operand")
        return 1
    if guest.caller != "root":
        write_stderr(f"chown: changing ownership of '{words[1]}': Operation not permitted")
        return 1
    owner, paths = words[0], words[1:]
    user, _, group = owner.partition(":")
    users = guest.users()
    if user not in users:
        write_stderr(f"chown: invalid user: '{owner}'")
        return 1
    group = group or (user if ":" in owner else "")  # `USER:` is USER's own group
    base = guest.dir.resolve()
    status = 0
    for path in paths:
        target = (base / path.lstrip("/")).resolve()
        if not target.is_relative_to(base) or not target.exists():
            write_stderr(f"chown: cannot access '{path}': No such file or directory")
            status = 1
            continue
        found = [target, *(sorted(target.rglob("*")) if recursive and target.is_dir() else [])]
        with guest.edit("files") as files:
            for item in found:
                entry = files.setdefault("/" + str(item.relative_to(base)), {})
                entry["owner"] = f"{user}:{group}" if group else user
    return status


def download_bytes(url: str) -> bytes:
    """What `wget` fetches from `url` on a simulated machine: the simulated internet's
    content of an unpinned download (`_storage.internet_bytes`, kept equal by a test)."""
    return f"pveplan-sim-download {url}\n".encode()


def wget(guest: Guest, argv: list[str]) -> int:
    """`wget [-q] -O PATH URL`: the simulated internet's content of URL into PATH (an
    absolute path in the machine, or one relative to the caller's home)."""
    from pveplan.sim._stdio import write_stderr

    words = [a for a in argv if a not in ("-q", "--quiet")]
    if len(words) != 3 or words[0] != "-O" or "://" not in words[2]:
        write_stderr("wget: usage: wget [-q] -O FILE URL")
        return 2
    path, url = words[1], words[2]
    base = guest.dir.resolve()
    start = base if path.startswith("/") else guest.home(guest.caller).resolve()
    target = (start / path.lstrip("/")).resolve()
    if not target.is_relative_to(base) or not target.parent.is_dir():
        write_stderr(f"{path}: No such file or directory")
        return 1
    target.write_bytes(download_bytes(url))
    return 0
