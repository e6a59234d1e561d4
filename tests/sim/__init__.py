"""Tests of the PVE simulator, plus `Sim`: a simulator root driven through its launchers.

The simulator's commands are run the way pveplan runs them on a host, as separate
processes with argv lists, so these tests cover the launchers and the exit codes too.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pveplan.sim import SimRoot, init_root, locked_state, read_state, write_config
from pveplan.sim._storagecfg import activate, node_storages

IMAGE_SHA256 = "afd852e95699ef51b3cb7f20695cd112bc894bbdedf12304d008324a35885b61"
"""sha256 of the simulator's `debian-12` image (`pveplan-sim-image debian-12\\n`)."""

PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1XVVH9BDg2+4+2E2ijo0FDjdiSlkfpQ9ZCEZsiZfWx pveplan@test"
)


class Sim:
    """A fresh simulator root with one host node; commands run through its launchers.

    The node is a fresh PVE install whose `local` storage also has `snippets` and
    `images` enabled (what pveplan's `pve.storage.content` step leaves), unless
    `fresh` asks for the install as it is.
    """

    def __init__(self, path: Path, node: str = "sim", *, fresh: bool = False) -> None:
        self.root = SimRoot(path)
        self.node = node
        self.vm_storage = "local-lvm"
        """Where VM disks go: the install's `local-lvm`; a nested host has only `local`."""
        init_root(self.root, [node])
        if not fresh:
            self.enable_content("local", "snippets", "images")

    def enable_content(self, storage: str, *types: str) -> None:
        """Add content `types` to `storage` of this node (as `pvesm set` would)."""
        with locked_state(self.root) as state:
            cfg = node_storages(state, self.node)[storage]
            cfg["content"] = sorted({*cfg["content"], *types})
            activate(self.root, self.node, cfg)

    def at(self, node: str) -> Sim:
        """The same simulator seen from host `node` (a nested one: no `init_root` for it)."""
        view = object.__new__(Sim)
        view.root, view.node = self.root, node
        nested = self.state()["nodes"].get(node, {}).get("vmid") is not None
        view.vm_storage = "local" if nested else self.vm_storage
        return view

    def run(self, tool: str, *args: Any) -> subprocess.CompletedProcess[str]:
        """Run host tool `tool` (pvesh, qm, pveum) on the node."""
        launcher = self.root.host_dir(self.node) / "bin" / tool
        return _run([str(launcher), *map(str, args)], {})

    def guest(
        self, vmid: int, tool: str, *args: Any, user: str = "root"
    ) -> subprocess.CompletedProcess[str]:
        """Run guest tool `tool` in VM `vmid` as `user` (what the daemon's login sets)."""
        launcher = self.root.vm_dir(self.node, vmid) / "bin" / tool
        return _run([str(launcher), *map(str, args)], {"USER": user, "LOGNAME": user})

    def pvesh(self, verb: str, path: str, *args: Any) -> Any:
        """`pvesh VERB PATH ARGS --output-format json`, decoded (the last stdout line)."""
        result = self.run("pvesh", verb, path, *args, "--output-format", "json")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        return json.loads(lines[-1]) if lines else None

    def task(self, upid: str) -> dict[str, Any]:
        return self.pvesh("get", f"/nodes/{self.node}/tasks/{upid}/status")

    def state(self) -> dict[str, Any]:
        return read_state(self.root)

    def vm(self, vmid: int) -> dict[str, Any]:
        return self.state()["vms"][f"{self.node}/{vmid}"]

    def configure(self, **settings: Any) -> None:
        write_config(self.root, settings)

    def download_debian(self) -> None:
        self.pvesh(
            "create",
            f"/nodes/{self.node}/storage/local/download-url",
            *("--content", "import", "--filename", "debian-12.qcow2"),
            *("--url", "sim://images/debian-12.qcow2"),
            *("--checksum", IMAGE_SHA256, "--checksum-algorithm", "sha256"),
        )

    def create_vm(self, vmid: int, *extra: Any) -> subprocess.CompletedProcess[str]:
        """A small VM: a new 4G disk, a NIC, the guest agent (plus `extra` options)."""
        return self.run(
            "pvesh",
            "create",
            f"/nodes/{self.node}/qemu",
            *("--vmid", vmid, "--scsi0", f"{self.vm_storage}:4", "--net0", "virtio,bridge=vmbr0"),
            *("--agent", "1", *extra, "--output-format", "json"),
        )


def encoded_key(key: str = PUBLIC_KEY) -> str:
    """`sshkeys` as the API wants it: percent-encoded like encodeURIComponent."""
    return quote(key, safe="-_.!~*'()")


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, **env}, timeout=60, check=False
    )
