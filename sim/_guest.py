"""Inside a simulated VM: the entry point of the Debian tools pveplan runs there.

A simulated VM is a directory tree (`vms/NODE/VMID/`). After cloud-init's first boot
(`_cloudinit`), pveplan (or the VM itself) configures the guest with `sudo`, `apt-get`,
`dpkg-query`, `systemctl`, `timedatectl`, `useradd`, `usermod`, `id`, `getent`,
`hostnamectl` and `cloud-init status`; the launchers in the VM's `bin/` run `main` here,
which answers with the stdout, stderr and exit codes of the Debian commands and records
the effect in `var/lib/sim/*.json`. Each tool lives in the module of its concern.
"""

from __future__ import annotations

from collections.abc import Callable

from pveplan.sim._apt import apt_get, dpkg_query
from pveplan.sim._bare_tools import chown, wget
from pveplan.sim._hostctl import cloud_init, hostnamectl, timedatectl
from pveplan.sim._state import SimRoot
from pveplan.sim._stdio import write_stderr
from pveplan.sim._sudo import sudo
from pveplan.sim._systemctl import systemctl
from pveplan.sim._users import getent, id_command, useradd, usermod
from pveplan.sim._vm import Guest

TOOLS: dict[str, Callable[[Guest, list[str]], int]] = {
    "sudo": sudo,
    "apt-get": apt_get,
    "dpkg-query": dpkg_query,
    "systemctl": systemctl,
    "timedatectl": timedatectl,
    "useradd": useradd,
    "id": id_command,
    "hostnamectl": hostnamectl,
    "getent": getent,
    "usermod": usermod,
    "cloud-init": cloud_init,
    "chown": chown,
    "wget": wget,
}


def main(tool: str, argv: list[str], root: str, node: str, vmid: int) -> int:
    """Run guest tool `tool` inside VM `vmid` of host `node` in simulator `root`."""
    command = TOOLS.get(tool)
    if command is None:
        write_stderr(f"{tool}: command not found")
        return 127
    return command(Guest(SimRoot(root), node, int(vmid)), list(argv))
