"""PVE operations as data: each builder returns the `PveRequest` that asks PVE for one thing.

Deciding what to ask is kept apart from asking (STYLE §4): the builders here are pure (no
channel, no clock, no I/O), so a table test can hold every request against PVE 9.1's API
schema (`tests/executor/test_pve_requests.py`), and any transport can carry them: `pvesh`
on the host today (`_pvesh`), PVE's HTTPS API with a token next. A request says it the way
the schema does (`apidata.js`): the method, the path template (`/nodes/{node}/qemu/{vmid}/
config`) with the values of its placeholders, and the parameters by their API names.

Values are what PVE is sent, already in PVE's spelling where a spelling matters
(`encode_sshkeys`, `tags`, property strings: `_params`); booleans stay booleans, and each
transport writes them as PVE wants them (0/1). A builder never puts None in `params`: an
absent parameter is left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal
from urllib.parse import quote

import msgspec

from ._params import PvesValue

Method = Literal["GET", "POST", "PUT", "DELETE"]
PowerAction = Literal["start", "stop", "shutdown", "reboot", "reset"]


class PveRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One call of PVE's API, as its schema names it; what a transport carries.

    Frozen, but shallow: builders hand out fresh dicts and nothing may change them after.
    """

    method: Method
    path: str
    """The schema's path template, e.g. `/nodes/{node}/qemu/{vmid}/config`."""
    path_params: dict[str, str | int] = {}
    """The value of each `{placeholder}` in `path`, as it is (not URL-encoded)."""
    params: dict[str, PvesValue] = {}
    """The method's parameters by their API names (query for GET/DELETE, body otherwise)."""
    returns_task: bool = False
    """PVE answers with a UPID and does the work in a task: the caller follows the task to
    its end, because a task that failed is still a success for the call that started it."""

    def filled_path(self, *, encode: bool = False) -> str:
        """`path` with its placeholders filled; `encode` percent-encodes each value, as a
        URL needs (`pvesh` routes the path itself and takes them as they are)."""
        path = self.path
        for name, value in self.path_params.items():
            text = str(value)
            path = path.replace(f"{{{name}}}", quote(text, safe="") if encode else text)
        return path

    def __str__(self) -> str:
        return f"{self.method} {self.filled_path()}"


def _clean(params: Mapping[str, PvesValue | None]) -> dict[str, PvesValue]:
    return {key: value for key, value in params.items() if value is not None}


# --- cluster and nodes --------------------------------------------------------------------


def cluster_resources(kind: Literal["vm", "storage", "node", "sdn"]) -> PveRequest:
    """Every resource of one type across the cluster (VMs: qemu and lxc both)."""
    return PveRequest(method="GET", path="/cluster/resources", params={"type": kind})


def next_id(vmid: int | None = None) -> PveRequest:
    """PVE's next free vmid, or (with `vmid`) whether that one is free: PVE answers with the
    id as a JSON *string*, and refuses a taken one."""
    return PveRequest(method="GET", path="/cluster/nextid", params=_clean({"vmid": vmid}))


def version() -> PveRequest:
    return PveRequest(method="GET", path="/version")


def nodes() -> PveRequest:
    return PveRequest(method="GET", path="/nodes")


def task_status(node: str, upid: str) -> PveRequest:
    """A task's state; `node` must be the node the task runs on (the UPID's own)."""
    return PveRequest(
        method="GET",
        path="/nodes/{node}/tasks/{upid}/status",
        path_params={"node": node, "upid": upid},
    )


# --- VMs ------------------------------------------------------------------------------------

_VM = "/nodes/{node}/qemu/{vmid}"


def _vm(node: str, vmid: int) -> dict[str, str | int]:
    return {"node": node, "vmid": vmid}


def vm_config(node: str, vmid: int) -> PveRequest:
    return PveRequest(method="GET", path=f"{_VM}/config", path_params=_vm(node, vmid))


def vm_status(node: str, vmid: int) -> PveRequest:
    return PveRequest(method="GET", path=f"{_VM}/status/current", path_params=_vm(node, vmid))


def create_vm(node: str, vmid: int, params: Mapping[str, PvesValue | None]) -> PveRequest:
    return PveRequest(
        method="POST",
        path="/nodes/{node}/qemu",
        path_params={"node": node},
        params=_clean({"vmid": vmid, **params}),
        returns_task=True,
    )


def set_vm_config(node: str, vmid: int, params: Mapping[str, PvesValue | None]) -> PveRequest:
    """Change a VM's config at once (PUT; POST would run it as a task)."""
    return PveRequest(
        method="PUT", path=f"{_VM}/config", path_params=_vm(node, vmid), params=_clean(params)
    )


def update_vm_config(node: str, vmid: int, params: Mapping[str, PvesValue | None]) -> PveRequest:
    """Change a VM's config as a task (POST): what PVE asks for when a change allocates
    storage (a new disk) or hot-plugs a device."""
    return PveRequest(
        method="POST",
        path=f"{_VM}/config",
        path_params=_vm(node, vmid),
        params=_clean(params),
        returns_task=True,
    )


def regenerate_cloudinit(node: str, vmid: int) -> PveRequest:
    """Regenerate the VM's cloud-init drive from its config now (PVE also does at each
    start); the guest reads it at its next boot."""
    return PveRequest(method="PUT", path=f"{_VM}/cloudinit", path_params=_vm(node, vmid))


def resize_disk(node: str, vmid: int, disk: str, size: str) -> PveRequest:
    """Grow `disk` to `size` (`32G`; `+1G` grows by); PVE never shrinks a disk."""
    return PveRequest(
        method="PUT",
        path=f"{_VM}/resize",
        path_params=_vm(node, vmid),
        params={"disk": disk, "size": size},
        returns_task=True,
    )


def snapshots(node: str, vmid: int) -> PveRequest:
    """The VM's snapshots, and `current` (the VM as it is) last."""
    return PveRequest(method="GET", path=f"{_VM}/snapshot", path_params=_vm(node, vmid))


def create_snapshot(node: str, vmid: int, snapname: str, description: str) -> PveRequest:
    """Snapshot the VM's disks and config (without its RAM: `vmstate` is left off)."""
    return PveRequest(
        method="POST",
        path=f"{_VM}/snapshot",
        path_params=_vm(node, vmid),
        params={"snapname": snapname, "description": description},
        returns_task=True,
    )


def delete_snapshot(node: str, vmid: int, snapname: str) -> PveRequest:
    return PveRequest(
        method="DELETE",
        path=f"{_VM}/snapshot/{{snapname}}",
        path_params={**_vm(node, vmid), "snapname": snapname},
        returns_task=True,
    )


def vm_power(node: str, vmid: int, action: PowerAction) -> PveRequest:
    return PveRequest(
        method="POST", path=f"{_VM}/status/{action}", path_params=_vm(node, vmid), returns_task=True
    )


def destroy_vm(node: str, vmid: int, *, skiplock: bool = False) -> PveRequest:
    """Destroy a VM with its disks and its place in backup, replication and HA jobs.

    `skiplock` (root only) destroys a VM a cut-off create left locked `create`."""
    params: dict[str, PvesValue] = {"purge": True, "destroy-unreferenced-disks": True}
    if skiplock:
        params["skiplock"] = True
    return PveRequest(
        method="DELETE", path=_VM, path_params=_vm(node, vmid), params=params, returns_task=True
    )


def make_template(node: str, vmid: int) -> PveRequest:
    """Turn stopped VM `vmid` into a template: its disks become base volumes (read-only,
    what linked clones are children of), and it can no longer be started."""
    return PveRequest(
        method="POST", path=f"{_VM}/template", path_params=_vm(node, vmid), returns_task=True
    )


def clone_vm(
    node: str,
    vmid: int,
    newid: int,
    *,
    name: str,
    full: bool,
    storage: str | None = None,
    target: str | None = None,
) -> PveRequest:
    """Clone VM `vmid` as `newid`: linked (`full` false: only from a template, its disks
    thin children of the template's) or a full copy (then on `storage` if given; PVE
    refuses `storage` for a linked clone). `target` is the cluster node to make it on."""
    params: dict[str, PvesValue] = {"newid": newid, "name": name, "full": full}
    if full and storage:
        params["storage"] = storage
    if target:
        params["target"] = target
    return PveRequest(
        method="POST",
        path=f"{_VM}/clone",
        path_params=_vm(node, vmid),
        params=params,
        returns_task=True,
    )


def agent_interfaces(node: str, vmid: int) -> PveRequest:
    """The guest agent's `network-get-interfaces` (its answer is wrapped in `result`)."""
    return PveRequest(
        method="GET", path=f"{_VM}/agent/network-get-interfaces", path_params=_vm(node, vmid)
    )


def agent_file_read(node: str, vmid: int, file: str) -> PveRequest:
    """A file inside the guest, read by its agent (`content`, decoded text; `truncated`
    past 16 MiB). A channel to the guest that does not rest on the guest's own SSH
    identity: how `import` reads a VM's host key instead of trusting it on first use."""
    return PveRequest(
        method="GET",
        path=f"{_VM}/agent/file-read",
        path_params=_vm(node, vmid),
        params={"file": file},
    )


# --- containers (LXC) -----------------------------------------------------------------------

_CT = "/nodes/{node}/lxc/{vmid}"
CtPowerAction = Literal["start", "stop", "shutdown", "reboot"]


def ct_config(node: str, vmid: int) -> PveRequest:
    return PveRequest(method="GET", path=f"{_CT}/config", path_params=_vm(node, vmid))


def ct_status(node: str, vmid: int) -> PveRequest:
    return PveRequest(method="GET", path=f"{_CT}/status/current", path_params=_vm(node, vmid))


def create_ct(node: str, vmid: int, params: Mapping[str, PvesValue | None]) -> PveRequest:
    """A container from `ostemplate` (a vztmpl volume), its root file system allocated
    and the template unpacked in a task (`pct create`)."""
    return PveRequest(
        method="POST",
        path="/nodes/{node}/lxc",
        path_params={"node": node},
        params=_clean({"vmid": vmid, **params}),
        returns_task=True,
    )


def set_ct_config(node: str, vmid: int, params: Mapping[str, PvesValue | None]) -> PveRequest:
    """Change a container's config (PUT, at once; a running container takes cores, memory
    and swap live, a feature at its next start)."""
    return PveRequest(
        method="PUT", path=f"{_CT}/config", path_params=_vm(node, vmid), params=_clean(params)
    )


def resize_ct(node: str, vmid: int, disk: str, size: str) -> PveRequest:
    """Grow a container's `rootfs` (or `mpN`) to `size`; PVE never shrinks one."""
    return PveRequest(
        method="PUT",
        path=f"{_CT}/resize",
        path_params=_vm(node, vmid),
        params={"disk": disk, "size": size},
        returns_task=True,
    )


def ct_power(node: str, vmid: int, action: CtPowerAction) -> PveRequest:
    return PveRequest(
        method="POST", path=f"{_CT}/status/{action}", path_params=_vm(node, vmid), returns_task=True
    )


def destroy_ct(node: str, vmid: int) -> PveRequest:
    """Destroy a (stopped) container with its volumes and its place in backup,
    replication and HA jobs."""
    params: dict[str, PvesValue] = {"purge": True, "destroy-unreferenced-disks": True}
    return PveRequest(
        method="DELETE", path=_CT, path_params=_vm(node, vmid), params=params, returns_task=True
    )


def ct_interfaces(node: str, vmid: int) -> PveRequest:
    """A running container's interfaces with their addresses (read by the host: no agent)."""
    return PveRequest(method="GET", path=f"{_CT}/interfaces", path_params=_vm(node, vmid))


# --- storage ------------------------------------------------------------------------------


def node_storage(node: str, storage: str) -> PveRequest:
    """One storage as `node` has it (type, `content` as a comma list, active): a list of
    one, or empty when the node has no such storage. Read here rather than the storage's
    configuration (`GET /storage/{storage}`), which PVE guards with Datastore.Allocate:
    this listing needs only Datastore.Audit (or AllocateSpace) on the storage."""
    return PveRequest(
        method="GET",
        path="/nodes/{node}/storage",
        path_params={"node": node},
        params={"storage": storage},
    )


def set_storage_content(storage: str, content: Sequence[str]) -> PveRequest:
    """Set the content types a storage allows (`pvesm set STORAGE --content ...`): the
    list replaces the old one, so it must hold the types to keep as well."""
    return PveRequest(
        method="PUT",
        path="/storage/{storage}",
        path_params={"storage": storage},
        params={"content": ",".join(content)},
    )


def storage_content(node: str, storage: str, content: str) -> PveRequest:
    return PveRequest(
        method="GET",
        path="/nodes/{node}/storage/{storage}/content",
        path_params={"node": node, "storage": storage},
        params={"content": content},
    )


def download_url(
    node: str, storage: str, *, filename: str, url: str, content: str, sha256: str | None
) -> PveRequest:
    """Fetch `url` onto the storage as `filename`; with `sha256`, PVE verifies it."""
    params: dict[str, PvesValue] = {"content": content, "filename": filename, "url": url}
    if sha256:
        params.update({"checksum": sha256, "checksum-algorithm": "sha256"})
    return PveRequest(
        method="POST",
        path="/nodes/{node}/storage/{storage}/download-url",
        path_params={"node": node, "storage": storage},
        params=params,
        returns_task=True,
    )


# --- host network and access --------------------------------------------------------------


def networks(node: str, kind: str | None = None) -> PveRequest:
    """The node's interfaces, of one `type` (bridge, eth, ...) if given."""
    return PveRequest(
        method="GET",
        path="/nodes/{node}/network",
        path_params={"node": node},
        params={"type": kind} if kind else {},
    )


def create_bridge(node: str, bridge: str, ports: str) -> PveRequest:
    """Stage a Linux bridge over `ports`: pending until `reload_network`."""
    return PveRequest(
        method="POST",
        path="/nodes/{node}/network",
        path_params={"node": node},
        params={"iface": bridge, "type": "bridge", "bridge_ports": ports, "autostart": True},
    )


def reload_network(node: str) -> PveRequest:
    """Apply the node's pending network changes (PVE's reload, a task)."""
    return PveRequest(
        method="PUT", path="/nodes/{node}/network", path_params={"node": node}, returns_task=True
    )


def create_token(userid: str, tokenid: str, *, privsep: bool) -> PveRequest:
    """A new API token of `userid`; its answer holds the token's value, shown this once."""
    return PveRequest(
        method="POST",
        path="/access/users/{userid}/token/{tokenid}",
        path_params={"userid": userid, "tokenid": tokenid},
        params={"privsep": privsep},
    )


def permissions(userid: str | None = None, path: str | None = None) -> PveRequest:
    """Effective privileges, `{path: {privilege: propagate}}`: of `userid` (a user or a
    full token id; a token may always ask for its own), else of whoever asks."""
    return PveRequest(
        method="GET", path="/access/permissions", params=_clean({"userid": userid, "path": path})
    )


def create_role(roleid: str, privileges: tuple[str, ...]) -> PveRequest:
    """A role with exactly `privileges` (`pveum role add ROLE --privs "..."`)."""
    return PveRequest(
        method="POST",
        path="/access/roles",
        params={"roleid": roleid, "privs": ",".join(privileges)},
    )


def create_user(userid: str, comment: str) -> PveRequest:
    """A user without a password (it acts only through its tokens)."""
    return PveRequest(
        method="POST", path="/access/users", params={"userid": userid, "comment": comment}
    )


def grant_role(
    path: str, roleid: str, *, users: str | None = None, tokens: str | None = None
) -> PveRequest:
    """An ACL giving `roleid` on `path` (propagating) to `users` or to `tokens`."""
    return PveRequest(
        method="PUT",
        path="/access/acl",
        params=_clean(
            {"path": path, "roles": roleid, "users": users, "tokens": tokens, "propagate": True}
        ),
    )
