"""The PVE driver: PVE operations as `pvesh` argument vectors over a command channel.

Every call is an argv list (never a shell string) with `--output-format json`, run on
the host's channel (SSH to the host, or local). pve-api.md's pitfalls are handled here
once: a task-returning call echoes the task log before the UPID (so only the last line
is JSON), `pvesh` exits 0 even when the task failed (so every UPID is followed to its
task status), `nextid` is a JSON string, synchronous errors are the first lines of
stderr with a non-zero exit (255 for `qm`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import trio

from .._errors import ExecutorError
from ..channels import Channel, ChannelError, CommandResult
from ._params import PvesValue, flags

TASK_POLL_FIRST = 0.05
TASK_POLL_MAX = 2.0


CLAIM_SCAN = 1000
"""How far past PVE's next free id a claim looks for one no parallel create holds."""


class PveError(ExecutorError):
    """A PVE operation failed; the message is PVE's, prefixed with what was attempted."""

    def __init__(self, message: str, *, status: str = "") -> None:
        super().__init__(message)
        self.status = status


class PveDriver:
    """PVE operations on one node, reached through `channel`."""

    def __init__(self, channel: Channel, node: str) -> None:
        self.channel = channel
        self.node = node
        self._claimed: set[int] = set()
        self._claiming = trio.Lock()

    # --- the one way in ----------------------------------------------------------------

    async def pvesh(
        self,
        verb: str,
        path: str,
        params: Mapping[str, PvesValue | None] | None = None,
        *,
        timeout: float = 120.0,
    ) -> Any:
        """Run `pvesh VERB PATH --k v ... --output-format json`; its data, decoded."""
        argv = ["pvesh", verb, path, *flags(params or {}), "--output-format", "json"]
        result = await self._run(argv, timeout)
        if result.exit_status != 0:
            raise PveError(f"{verb} {path}: {_error_text(result)}")
        return _data(result.stdout.decode(errors="replace"), verb, path)

    async def _run(self, argv: Sequence[str], timeout: float) -> CommandResult:
        try:
            return await self.channel.run(argv, timeout=timeout)
        except ChannelError as exc:
            raise PveError(str(exc)) from None

    async def task(
        self,
        verb: str,
        path: str,
        params: Mapping[str, PvesValue | None] | None = None,
        *,
        timeout: float = 600.0,
    ) -> str:
        """A task-returning call, followed until the task ends; its UPID. A failed task
        (which `pvesh` reports with exit 0) raises PveError with the task's exit status."""
        upid = await self.pvesh(verb, path, params, timeout=timeout)
        if not isinstance(upid, str) or not upid.startswith("UPID:"):
            return upid  # some calls finish synchronously (null)
        await self.wait_task(upid, timeout=timeout)
        return upid

    async def wait_task(self, upid: str, *, timeout: float = 600.0) -> None:
        delay = TASK_POLL_FIRST
        with trio.fail_after(timeout):
            while True:
                status = await self.pvesh("get", f"/nodes/{self.node}/tasks/{upid}/status")
                if status.get("status") == "stopped":
                    exit_status = str(status.get("exitstatus", ""))
                    if exit_status == "OK" or exit_status.startswith("WARNINGS"):
                        return
                    raise PveError(
                        f"task {status.get('type', '')} failed: {exit_status}", status=exit_status
                    )
                await trio.sleep(delay)
                delay = min(delay * 2, TASK_POLL_MAX)

    # --- VMs ---------------------------------------------------------------------------

    async def vms(self) -> list[dict[str, Any]]:
        """Every VM of the cluster (`/cluster/resources`, qemu entries only)."""
        data = await self.pvesh("get", "/cluster/resources", {"type": "vm"})
        return [vm for vm in data or [] if vm.get("type") == "qemu"]

    async def next_id(self) -> int:
        return int(await self.pvesh("get", "/cluster/nextid"))  # a JSON *string*

    async def claim_id(self) -> int:
        """A free vmid that no other create of this run was handed: PVE's next free id is
        the same for parallel creates until one of them exists, so a claim skips the ids
        already claimed, asking PVE whether each next one is free. Another tool may still
        take the id first; the create then fails with "already exists"."""
        async with self._claiming:
            vmid = await self.next_id()
            if vmid in self._claimed:
                vmid = await self._free_after(vmid)
            self._claimed.add(vmid)
            return vmid

    async def _free_after(self, vmid: int) -> int:
        for candidate in range(vmid + 1, vmid + 1 + CLAIM_SCAN):
            if candidate in self._claimed:
                continue
            try:
                return int(await self.pvesh("get", "/cluster/nextid", {"vmid": candidate}))
            except PveError:
                continue  # taken on the host
        raise PveError(f"no free vmid among the {CLAIM_SCAN} after {vmid}")

    async def config(self, vmid: int) -> dict[str, Any]:
        return await self.pvesh("get", f"/nodes/{self.node}/qemu/{vmid}/config")

    async def status(self, vmid: int) -> dict[str, Any]:
        return await self.pvesh("get", f"/nodes/{self.node}/qemu/{vmid}/status/current")

    async def create_vm(self, vmid: int, params: Mapping[str, PvesValue | None]) -> None:
        await self.task("create", f"/nodes/{self.node}/qemu", {"vmid": vmid, **params})

    async def set_config(self, vmid: int, params: Mapping[str, PvesValue | None]) -> None:
        await self.pvesh("set", f"/nodes/{self.node}/qemu/{vmid}/config", params)

    async def resize(self, vmid: int, disk: str, size: str) -> None:
        await self.task(
            "set", f"/nodes/{self.node}/qemu/{vmid}/resize", {"disk": disk, "size": size}
        )

    async def power(self, vmid: int, action: str) -> None:
        """start | stop | shutdown | reboot | reset, followed to the end of its task."""
        await self.task("create", f"/nodes/{self.node}/qemu/{vmid}/status/{action}")

    async def destroy_vm(self, vmid: int, *, skiplock: bool = False) -> None:
        params: dict[str, PvesValue | None] = {"purge": True, "destroy-unreferenced-disks": True}
        if skiplock:  # root only: a VM whose create was cut off keeps its `create` lock
            params["skiplock"] = True
        await self.task("delete", f"/nodes/{self.node}/qemu/{vmid}", params)

    async def interfaces(self, vmid: int) -> list[dict[str, Any]]:
        data = await self.pvesh(
            "get", f"/nodes/{self.node}/qemu/{vmid}/agent/network-get-interfaces"
        )
        return list((data or {}).get("result", []))

    # --- storage -----------------------------------------------------------------------

    async def storage_content(self, storage: str, content: str) -> list[dict[str, Any]]:
        data = await self.pvesh(
            "get", f"/nodes/{self.node}/storage/{storage}/content", {"content": content}
        )
        return list(data or [])

    async def download(
        self, storage: str, *, filename: str, url: str, content: str, sha256: str | None
    ) -> None:
        params: dict[str, PvesValue | None] = {"content": content, "filename": filename, "url": url}
        if sha256:
            params.update({"checksum": sha256, "checksum-algorithm": "sha256"})
        await self.task("create", f"/nodes/{self.node}/storage/{storage}/download-url", params)

    # --- host network --------------------------------------------------------------------

    async def networks(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The node's interfaces (`/nodes/{node}/network`), of one `type` if given."""
        data = await self.pvesh(
            "get", f"/nodes/{self.node}/network", {"type": kind} if kind else None
        )
        return list(data or [])

    async def create_bridge(self, bridge: str, ports: str) -> None:
        """Stage a Linux bridge over `ports` (pending until `apply_network`)."""
        await self.pvesh(
            "create",
            f"/nodes/{self.node}/network",
            {"iface": bridge, "type": "bridge", "bridge_ports": ports, "autostart": True},
        )

    async def apply_network(self) -> None:
        """Apply the pending network changes (PVE's reload, a task)."""
        await self.task("set", f"/nodes/{self.node}/network", timeout=120.0)


def _data(stdout: str, verb: str, path: str) -> Any:
    """The JSON data at the end of pvesh's output.

    Task-returning calls print the task log first, and a `set` that allocates a disk prints
    the allocation; the data is the last line. A `set`/`delete` may print no data at all.
    """
    lines = stdout.strip().splitlines()
    if not lines:
        return None
    try:
        return json.loads(lines[-1])
    except ValueError:
        if verb in ("set", "delete"):
            return None
        raise PveError(f"{verb} {path}: unexpected output {lines[-1][:200]!r}") from None


def _error_text(result: CommandResult) -> str:
    """PVE's message: stderr without the usage text pvesh appends to 400 errors."""
    text = result.stderr.decode(errors="replace").strip()
    lines = [line for line in text.splitlines() if line.strip()]
    kept: list[str] = []
    for line in lines:
        if line.startswith(("USAGE:", "Usage:")):
            break
        kept.append(line.strip())
    message = " ".join(kept[:4]) or f"exit status {result.exit_status}"
    return message


def first_ipv4(interfaces: Sequence[Mapping[str, Any]]) -> str | None:
    """The first IPv4 address, not link-local, of an interface other than `lo`.

    Judged by interface, not by address: the simulator's guests live on 127.x addresses.
    """
    for iface in interfaces:
        if iface.get("name") == "lo":
            continue
        for address in iface.get("ip-addresses") or []:
            ip = address.get("ip-address", "")
            if address.get("ip-address-type") == "ipv4" and not ip.startswith("169.254."):
                return ip
    return None
