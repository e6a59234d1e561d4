"""The PVE driver: PVE operations on one node, each a request handed to a transport.

Every method builds its `PveRequest` with a pure builder (`_requests`) and runs it through
the node's `PveTransport` (`pvesh` on the host's channel unless another is given); a
request that returns a task is followed to the task's end (`_transport.follow_task`),
because PVE reports a failed task only there. What the driver keeps besides is the little
state one node's operations share: the vmids this run has claimed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import trio

from ..channels import Channel
from . import _requests as requests
from ._params import PvesValue
from ._pvesh import CT_KEYS, PveshTransport, run_pct_create
from ._requests import PowerAction, PveRequest
from ._transport import PveError, PveTransport, follow_task, is_upid

CALL_TIMEOUT = 120.0
TASK_TIMEOUT = 600.0

CLAIM_SCAN = 1000
"""How far past PVE's next free id a claim looks for one no parallel create holds."""

__all__ = ["CLAIM_SCAN", "PveDriver", "PveError", "first_ipv4"]


class PveDriver:
    """PVE operations on one node, reached through `transport` (default: `pvesh` over
    `channel`). `channel` stays reachable for what is not PVE's API (snippet files)."""

    def __init__(
        self, channel: Channel, node: str, *, transport: PveTransport | None = None
    ) -> None:
        self.channel = channel
        self.node = node
        self.transport: PveTransport = transport or PveshTransport(channel)
        self._claimed: set[int] = set()
        self._claiming = trio.Lock()

    # --- the one way in ----------------------------------------------------------------

    async def run(self, request: PveRequest, *, timeout: float | None = None) -> Any:
        """Run `request`; its data. A task-returning request is followed until the task
        ends (its UPID is the data), and a failed task raises PveError with its exit status.
        `timeout` (default 120 s for a call, 600 s for a task) bounds the call and then the
        task each."""
        if timeout is None:
            timeout = TASK_TIMEOUT if request.returns_task else CALL_TIMEOUT
        data = await self.transport.call(request, timeout=timeout)
        if request.returns_task and is_upid(data):  # some tasks finish at once (null)
            await self.wait_task(data, timeout=timeout)
        return data

    async def wait_task(self, upid: str, *, timeout: float = TASK_TIMEOUT) -> None:
        await follow_task(self.transport, self.node, upid, timeout=timeout)

    # --- cluster and node --------------------------------------------------------------

    async def version(self) -> dict[str, Any]:
        return await self.run(requests.version())

    async def nodes(self) -> list[dict[str, Any]]:
        return list(await self.run(requests.nodes()) or [])

    async def vms(self) -> list[dict[str, Any]]:
        """Every VM of the cluster (`/cluster/resources`, qemu entries only)."""
        data = await self.run(requests.cluster_resources("vm"))
        return [vm for vm in data or [] if vm.get("type") == "qemu"]

    async def guests(self) -> list[dict[str, Any]]:
        """Every VM and container of the cluster (`/cluster/resources`: `type` qemu or
        lxc), for what looks at both (drift, status, leftovers)."""
        data = await self.run(requests.cluster_resources("vm"))
        return [g for g in data or [] if g.get("type") in ("qemu", "lxc")]

    async def next_id(self) -> int:
        return int(await self.run(requests.next_id()))  # a JSON *string*

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
                return int(await self.run(requests.next_id(candidate)))
            except PveError:
                continue  # taken on the host
        raise PveError(f"no free vmid among the {CLAIM_SCAN} after {vmid}")

    # --- VMs ---------------------------------------------------------------------------

    async def config(self, vmid: int) -> dict[str, Any]:
        return await self.run(requests.vm_config(self.node, vmid))

    async def status(self, vmid: int) -> dict[str, Any]:
        return await self.run(requests.vm_status(self.node, vmid))

    async def create_vm(self, vmid: int, params: Mapping[str, PvesValue | None]) -> None:
        await self.run(requests.create_vm(self.node, vmid, params))

    async def set_config(self, vmid: int, params: Mapping[str, PvesValue | None]) -> None:
        await self.run(requests.set_vm_config(self.node, vmid, params))

    async def resize(self, vmid: int, disk: str, size: str) -> None:
        await self.run(requests.resize_disk(self.node, vmid, disk, size))

    async def power(self, vmid: int, action: PowerAction) -> None:
        """start | stop | shutdown | reboot | reset, followed to the end of its task."""
        await self.run(requests.vm_power(self.node, vmid, action))

    async def destroy_vm(self, vmid: int, *, skiplock: bool = False) -> None:
        await self.run(requests.destroy_vm(self.node, vmid, skiplock=skiplock))

    async def make_template(self, vmid: int) -> None:
        await self.run(requests.make_template(self.node, vmid))

    async def clone_vm(
        self, vmid: int, newid: int, *, name: str, full: bool, storage: str | None = None
    ) -> None:
        """Clone `vmid` as `newid` on this node, followed to the end of PVE's task."""
        await self.run(
            requests.clone_vm(self.node, vmid, newid, name=name, full=full, storage=storage)
        )

    async def interfaces(self, vmid: int) -> list[dict[str, Any]]:
        data = await self.run(requests.agent_interfaces(self.node, vmid))
        return list((data or {}).get("result", []))

    async def read_guest_file(self, vmid: int, file: str) -> str:
        """`file` inside VM `vmid`, through its guest agent (PveError if the agent is not
        configured or not running, or the file is missing)."""
        data = await self.run(requests.agent_file_read(self.node, vmid, file))
        return str((data or {}).get("content", ""))

    # --- containers ----------------------------------------------------------------------

    async def cts(self) -> list[dict[str, Any]]:
        """Every container of the cluster (`/cluster/resources`, lxc entries only)."""
        data = await self.run(requests.cluster_resources("vm"))
        return [ct for ct in data or [] if ct.get("type") == "lxc"]

    async def ct_config(self, vmid: int) -> dict[str, Any]:
        return await self.run(requests.ct_config(self.node, vmid))

    async def ct_status(self, vmid: int) -> dict[str, Any]:
        return await self.run(requests.ct_status(self.node, vmid))

    async def create_ct(self, vmid: int, params: Mapping[str, PvesValue | None]) -> None:
        """Over `pvesh`, root's keys go in a file `pct create` reads (`run_pct_create`),
        never on the host's command line; over the API, in the request's body."""
        request = requests.create_ct(self.node, vmid, params)
        if isinstance(self.transport, PveshTransport) and request.params.get(CT_KEYS):
            await run_pct_create(self.channel, request, timeout=TASK_TIMEOUT)
            return
        await self.run(request)

    async def set_ct_config(self, vmid: int, params: Mapping[str, PvesValue | None]) -> None:
        await self.run(requests.set_ct_config(self.node, vmid, params))

    async def resize_ct(self, vmid: int, disk: str, size: str) -> None:
        await self.run(requests.resize_ct(self.node, vmid, disk, size))

    async def ct_power(self, vmid: int, action: requests.CtPowerAction) -> None:
        await self.run(requests.ct_power(self.node, vmid, action))

    async def destroy_ct(self, vmid: int) -> None:
        await self.run(requests.destroy_ct(self.node, vmid))

    async def ct_interfaces(self, vmid: int) -> list[dict[str, Any]]:
        return list(await self.run(requests.ct_interfaces(self.node, vmid)) or [])

    # --- storage -----------------------------------------------------------------------

    async def storage_status(self, storage: str) -> dict[str, Any] | None:
        """`storage` as this node has it (type, content, active), or None without it."""
        found = await self.run(requests.node_storage(self.node, storage)) or []
        return dict(found[0]) if found else None

    async def set_storage_content(self, storage: str, content: Sequence[str]) -> None:
        await self.run(requests.set_storage_content(storage, content))

    async def storage_content(self, storage: str, content: str) -> list[dict[str, Any]]:
        return list(await self.run(requests.storage_content(self.node, storage, content)) or [])

    async def download(
        self, storage: str, *, filename: str, url: str, content: str, sha256: str | None
    ) -> None:
        await self.run(
            requests.download_url(
                self.node, storage, filename=filename, url=url, content=content, sha256=sha256
            )
        )

    # --- host network and access ---------------------------------------------------------

    async def networks(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The node's interfaces (`/nodes/{node}/network`), of one `type` if given."""
        return list(await self.run(requests.networks(self.node, kind)) or [])

    async def create_bridge(self, bridge: str, ports: str) -> None:
        """Stage a Linux bridge over `ports` (pending until `apply_network`)."""
        await self.run(requests.create_bridge(self.node, bridge, ports))

    async def apply_network(self) -> None:
        """Apply the pending network changes (PVE's reload, a task)."""
        await self.run(requests.reload_network(self.node), timeout=CALL_TIMEOUT)

    async def create_token(self, userid: str, tokenid: str, *, privsep: bool) -> dict[str, Any]:
        """A new API token (`full-tokenid`, `info`, and its `value`, shown this once)."""
        return await self.run(requests.create_token(userid, tokenid, privsep=privsep))


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
