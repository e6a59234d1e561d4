"""Nix as the reference: installed from Debian when absent, run single-user on a throw-away store.

Debian's `nix-bin` (Nix 2.8 on bookworm) needs no daemon: with `NIX_REMOTE=local` and the
store, state and log directories pointed into a temporary directory, every command works
on a store of its own that nothing else shares and that is deleted afterwards. The store
path prefix is then that directory instead of /nix/store, which changes the hashes but
not the work. No substituters (nothing is downloaded), no sandbox (Debian's build has
none that works), no build users (one user), builders `/bin/sh`: the derivations below
are the cheapest Nix can build, so the figures are Nix's own overhead per node, the
thing pveplan is compared with.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from _measure import note

PACKAGE = "nix-bin"


def ensure_nix() -> str:
    """The installed Nix's version line; installs Debian's nix-bin first when it is absent."""
    if shutil.which("nix-instantiate") is None:
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            raise SystemExit(
                "vs_nix: Nix is not installed and this is not a Debian machine run as root;"
                f" install {PACKAGE} (or any Nix 2.x) and run again"
            )
        note(f"installing Debian's {PACKAGE} with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        done = subprocess.run(
            ["apt-get", "install", "-y", "-q", PACKAGE], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"vs_nix: apt-get install {PACKAGE} failed:\n{done.stderr}")
    return subprocess.run(
        ["nix-instantiate", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()


class NixStore:
    """A single-user local Nix store under `base`, and the environment that selects it."""

    def __init__(self, base: Path, max_jobs: int) -> None:
        self.base = base
        self.store = base / "store"
        conf = base / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "nix.conf").write_text(
            "build-users-group =\n"
            "sandbox = false\n"
            "substituters =\n"
            f"max-jobs = {max_jobs}\n"
            "cores = 1\n"
            "keep-derivations = true\n"
        )
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(base / "home"),
            "XDG_CACHE_HOME": str(base / "cache"),
            "NIX_REMOTE": "local",
            "NIX_CONF_DIR": str(conf),
            "NIX_STORE_DIR": str(self.store),
            "NIX_STATE_DIR": str(base / "var"),
            "NIX_LOG_DIR": str(base / "log"),
            "NIX_PATH": "",
        }

    def drv_bytes(self) -> int:
        """The bytes of every .drv file in the store (what nix-instantiate wrote)."""
        if not self.store.is_dir():
            return 0
        return sum(p.stat().st_size for p in self.store.glob("*.drv"))

    def remove(self) -> None:
        """Delete the store (Nix makes its paths read-only: make them writable first)."""
        for path in self.base.rglob("*"):
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(self.base, ignore_errors=True)


# Parent index of node i (i ≥ 1) in each shape, as a Nix expression and as Python; node 0
# has none. Spaces around `-` matter in Nix (`i-1` is an identifier).
PARENT = {
    "flat": (None, lambda i: None),
    "chain": ("i - 1", lambda i: i - 1),
    "tree": ("(i - 1) / 10", lambda i: (i - 1) // 10),
}


def expression(shape: str, nodes: int) -> str:
    """N derivations in `shape`: each builds a one-line file naming its parent's output,
    so a child depends on its parent as a nested node depends on its host."""
    parent_nix, _ = PARENT[shape]
    parent = "" if parent_nix is None else f"(builtins.elemAt nodes ({parent_nix})).outPath"
    body = '""' if parent_nix is None else f'(if i == 0 then "" else {parent})'
    return (
        "let\n"
        "  mk = i: parent: derivation {\n"
        '    name = "n-${toString i}";\n'
        "    system = builtins.currentSystem;\n"
        '    builder = "/bin/sh";\n'
        '    args = [ "-c" "echo ${toString i} ${parent} > $out" ];\n'
        "  };\n"
        f"  nodes = builtins.genList (i: mk i {body}) {nodes};\n"
        "in nodes\n"
    )


def sleepers(count: int, seconds: float) -> str:
    """`count` independent derivations that each sleep `seconds` (the overlap figure)."""
    return (
        "builtins.genList (i: derivation {\n"
        '  name = "sleep-${toString i}";\n'
        "  system = builtins.currentSystem;\n"
        '  builder = "/bin/sh";\n'
        f'  args = [ "-c" "/bin/sleep {seconds}; echo ${{toString i}} > $out" ];\n'
        f"}}) {count}\n"
    )


def parents(shape: str, nodes: int) -> list[int | None]:
    """The same shape as pveplan sees it: node i's parent index, None for a root."""
    _, parent = PARENT[shape]
    return [None] + [parent(i) for i in range(1, nodes)]
