"""Which PVE privileges pveplan's API calls need, and whether a token has them (pure).

`REQUEST_NEEDS` maps each request pveplan sends over the API (method, path template) to
what PVE checks before it runs, taken from PVE 9.1's API schema (`permissions` of each
method in apidata.js; `tests/executor/test_pve_privileges.py` holds the table to it) and,
where the schema only describes the check (creating a VM), from qemu-server's handler:
`VM.Allocate` on the VM, a `VM.Config.*` privilege for each kind of option set,
`Datastore.AllocateSpace` on the storage its disks go to, `SDN.Use` on the bridge.
`KIND_REQUESTS` says which requests each step kind makes, so `needs(steps)` is what one
plan asks of the token. `granted` reads PVE's answer to `GET /access/permissions` the way
PVE computes it: the most specific path listed decides, and an ancestor's privilege counts
only where it propagates.

The role in docs/transports.md ("Least privilege") is the union of every privilege here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from . import _requests as requests
from ._requests import PveRequest

Option = tuple[tuple[str, str], ...]
"""Privileges that together satisfy a check: ((privilege, path template), ...)."""


class Need(msgspec.Struct, frozen=True, kw_only=True):
    """One check PVE makes: satisfied by any of `options`; `why` names the step."""

    options: tuple[Option, ...]
    why: str

    def text(self) -> str:
        """`VM.Allocate on /vms/100`, alternatives joined by "or"."""
        return " or ".join(
            " and ".join(f"{privilege} on {path}" for privilege, path in option)
            for option in self.options
        )


def _all(path: str, *privileges: str) -> tuple[Option, ...]:
    return (tuple((p, path) for p in privileges),)


def _any(path: str, *privileges: str) -> tuple[Option, ...]:
    return tuple(((p, path),) for p in privileges)


VM = "/vms/{vmid}"
CREATE_CONFIG = (
    "VM.Config.CPU",  # cores, cpu
    "VM.Config.Memory",  # memory
    "VM.Config.Network",  # net0
    "VM.Config.Disk",  # scsi0, scsihw
    "VM.Config.CDROM",  # ide2 (the cloud-init drive)
    "VM.Config.Cloudinit",  # ciuser, sshkeys, ipconfig0, cicustom
    "VM.Config.HWType",  # serial0, vga
    "VM.Config.Options",  # name, agent, boot, tags, description, ostype
)

CT_CREATE_CONFIG = (
    "VM.Config.CPU",  # cores
    "VM.Config.Memory",  # memory, swap
    "VM.Config.Network",  # net0
    "VM.Config.Disk",  # rootfs
    "VM.Config.Options",  # hostname, features, tags, description, ostype
)
"""What `pct create` checks of the options pveplan sets (`check_ct_modify_config_perm`)."""

REQUEST_NEEDS: dict[tuple[str, str], tuple[tuple[Option, ...], ...]] = {
    ("GET", "/nodes/{node}/qemu/{vmid}/config"): (_all(VM, "VM.Audit"),),
    ("GET", "/nodes/{node}/qemu/{vmid}/status/current"): (_all(VM, "VM.Audit"),),
    ("POST", "/nodes/{node}/qemu"): (
        _all(VM, "VM.Allocate"),
        *(_all(VM, p) for p in CREATE_CONFIG),
        _all("/storage/{storage}", "Datastore.AllocateSpace"),
        _all("/sdn/zones/localnetwork/{bridge}", "SDN.Use"),
    ),
    ("PUT", "/nodes/{node}/qemu/{vmid}/config"): (
        _any(VM, "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Options"),
    ),
    # POST: only to add a disk to a VM (a task, as PVE wants for allocating storage). Its
    # handler also checks Datastore.AllocateSpace on the disk's storage, which the
    # create's entry already asks of the token.
    ("POST", "/nodes/{node}/qemu/{vmid}/config"): (_all(VM, "VM.Config.Disk"),),
    ("PUT", "/nodes/{node}/qemu/{vmid}/resize"): (_all(VM, "VM.Config.Disk"),),
    ("PUT", "/nodes/{node}/qemu/{vmid}/cloudinit"): (_all(VM, "VM.Config.Cloudinit"),),
    ("GET", "/nodes/{node}/qemu/{vmid}/snapshot"): (_all(VM, "VM.Audit"),),
    ("POST", "/nodes/{node}/qemu/{vmid}/snapshot"): (_all(VM, "VM.Snapshot"),),
    ("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}"): (_all(VM, "VM.Snapshot"),),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/{action}"): (_all(VM, "VM.PowerMgmt"),),
    ("DELETE", "/nodes/{node}/qemu/{vmid}"): (_all(VM, "VM.Allocate"),),
    ("POST", "/nodes/{node}/qemu/{vmid}/template"): (_all(VM, "VM.Allocate"),),
    # The source's VM.Clone, the new VM's VM.Allocate (`{newid}`: the clone's own vmid).
    ("POST", "/nodes/{node}/qemu/{vmid}/clone"): (
        _all(VM, "VM.Clone"),
        _all("/vms/{newid}", "VM.Allocate"),
    ),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces"): (
        _any(VM, "VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"),
    ),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/file-read"): (  # `pveplan import` only
        _any(VM, "VM.GuestAgent.FileRead", "VM.GuestAgent.Unrestricted"),
    ),
    ("GET", "/nodes/{node}/lxc/{vmid}/config"): (_all(VM, "VM.Audit"),),
    ("GET", "/nodes/{node}/lxc/{vmid}/status/current"): (_all(VM, "VM.Audit"),),
    ("GET", "/nodes/{node}/lxc/{vmid}/interfaces"): (_all(VM, "VM.Audit"),),
    ("POST", "/nodes/{node}/lxc"): (
        _all(VM, "VM.Allocate"),
        *(_all(VM, p) for p in CT_CREATE_CONFIG),
        _all("/storage/{storage}", "Datastore.AllocateSpace"),
        _all("/sdn/zones/localnetwork/{bridge}", "SDN.Use"),
    ),
    ("PUT", "/nodes/{node}/lxc/{vmid}/config"): (
        _any(VM, "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Options"),
    ),
    ("PUT", "/nodes/{node}/lxc/{vmid}/resize"): (_all(VM, "VM.Config.Disk"),),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/{action}"): (_all(VM, "VM.PowerMgmt"),),
    ("DELETE", "/nodes/{node}/lxc/{vmid}"): (_all(VM, "VM.Allocate"),),
    ("GET", "/nodes/{node}/storage/{storage}/content"): (
        _any("/storage/{storage}", "Datastore.Audit", "Datastore.AllocateSpace"),
    ),
    ("PUT", "/storage/{storage}"): (_all("/storage", "Datastore.Allocate"),),
    ("POST", "/nodes/{node}/storage/{storage}/download-url"): (
        _all("/storage/{storage}", "Datastore.AllocateTemplate"),
        (
            (("Sys.Audit", "/"), ("Sys.Modify", "/")),
            (("Sys.AccessNetwork", "/nodes/{node}"),),
        ),
    ),
}
"""What PVE checks for each request pveplan makes over the API (requests not listed,
such as `/version`, `/cluster/resources`, `/cluster/nextid` and a token's own tasks, are
open to every authenticated token)."""

_CONFIG = ("GET", "/nodes/{node}/qemu/{vmid}/config")
_STATUS = ("GET", "/nodes/{node}/qemu/{vmid}/status/current")
_POWER = ("POST", "/nodes/{node}/qemu/{vmid}/status/{action}")

KIND_REQUESTS: dict[str, tuple[tuple[str, str], ...]] = {
    # Enabling a missing content type (`PUT /storage/{storage}`, Datastore.Allocate on
    # /storage) is left out: only a host that lacks one needs it, and the role leaves it
    # out on purpose (docs/transports.md, "Least privilege").
    "pve.storage.content": (("GET", "/nodes/{node}/storage"),),
    "pve.image.ensure": (
        ("GET", "/nodes/{node}/storage/{storage}/content"),
        ("POST", "/nodes/{node}/storage/{storage}/download-url"),
    ),
    "pve.vm.create": (
        ("POST", "/nodes/{node}/qemu"),
        _CONFIG,
        ("PUT", "/nodes/{node}/qemu/{vmid}/config"),
        ("POST", "/nodes/{node}/qemu/{vmid}/config"),  # a disk added to a listed VM
        ("PUT", "/nodes/{node}/qemu/{vmid}/resize"),
        ("PUT", "/nodes/{node}/qemu/{vmid}/cloudinit"),  # cloud-init drift set back
        ("DELETE", "/nodes/{node}/qemu/{vmid}"),  # a cut-off create is cleared first
    ),
    "pve.template.create": (
        ("POST", "/nodes/{node}/qemu"),
        _CONFIG,
        ("PUT", "/nodes/{node}/qemu/{vmid}/resize"),
        ("POST", "/nodes/{node}/qemu/{vmid}/template"),
        _STATUS,
        ("DELETE", "/nodes/{node}/qemu/{vmid}"),  # a changed template is made anew
    ),
    "pve.clone.create": (
        ("POST", "/nodes/{node}/qemu/{vmid}/clone"),
        _CONFIG,
        ("PUT", "/nodes/{node}/qemu/{vmid}/config"),
        ("PUT", "/nodes/{node}/qemu/{vmid}/resize"),
        _STATUS,
        _POWER,
        ("DELETE", "/nodes/{node}/qemu/{vmid}"),  # a clone of another template is remade
    ),
    "pve.vm.start": (_STATUS, _POWER),
    "pve.vm.wait_ip": (_STATUS, ("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces")),
    "pve.vm.destroy": (
        _STATUS,
        _CONFIG,
        ("PUT", "/nodes/{node}/qemu/{vmid}/config"),
        _POWER,
        ("DELETE", "/nodes/{node}/qemu/{vmid}"),
    ),
    "pve.ct.create": (
        ("POST", "/nodes/{node}/lxc"),
        ("GET", "/nodes/{node}/lxc/{vmid}/config"),
        ("PUT", "/nodes/{node}/lxc/{vmid}/config"),
        ("PUT", "/nodes/{node}/lxc/{vmid}/resize"),
        ("GET", "/nodes/{node}/lxc/{vmid}/status/current"),
        ("POST", "/nodes/{node}/lxc/{vmid}/status/{action}"),
        ("DELETE", "/nodes/{node}/lxc/{vmid}"),  # a container replaced
    ),
    "pve.ct.start": (
        ("GET", "/nodes/{node}/lxc/{vmid}/status/current"),
        ("POST", "/nodes/{node}/lxc/{vmid}/status/{action}"),
    ),
    "pve.ct.wait_ip": (("GET", "/nodes/{node}/lxc/{vmid}/interfaces"),),
    "pve.ct.destroy": (
        ("GET", "/nodes/{node}/lxc/{vmid}/status/current"),
        ("POST", "/nodes/{node}/lxc/{vmid}/status/{action}"),
        ("DELETE", "/nodes/{node}/lxc/{vmid}"),
    ),
}
"""The API requests each step kind may make (kinds not listed make none: they work over
SSH, on guests, or on nested hosts)."""

SNAPSHOT_REQUESTS = (
    ("GET", "/nodes/{node}/qemu/{vmid}/snapshot"),
    ("POST", "/nodes/{node}/qemu/{vmid}/snapshot"),
    ("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}"),
)
"""What a VM create step makes besides, when its args ask for `snapshot_before`: only
such a plan asks the token for `VM.Snapshot`."""

SSH_KINDS = frozenset(
    {"pve.vm.create", "pve.clone.create", "pve.template.create", "pve.vm.destroy"}
    | {"pve.ct.wait_ip", "subplan.delegate"}
)
"""Kinds that also need the host's SSH (cloud-init snippet files; a container's host key
read with `pct exec`; nested executors)."""


def needs(steps: Iterable[tuple[str, str, Mapping[str, Any]]], node: str) -> list[Need]:
    """What (address, kind, args) steps on `node` ask of a token, each check once, with
    the placeholders filled from the step's args (`/vms` when the vmid is chosen at run
    time: a privilege there propagates to every VM)."""
    found: dict[tuple[Option, ...], Need] = {}
    for address, kind, args in steps:
        values = {
            "node": node,
            # A clone's requests name its source (the template, known only at run time).
            "vmid": None if kind == "pve.clone.create" else args.get("vmid"),
            "newid": args.get("vmid"),
            "storage": args.get("storage") or "local",
            "bridge": args.get("bridge") or "vmbr0",
        }
        extra = SNAPSHOT_REQUESTS if kind == "pve.vm.create" and args.get("snapshot") else ()
        for request in (*KIND_REQUESTS.get(kind, ()), *extra):
            for check in REQUEST_NEEDS.get(request, ()):
                filled = tuple(
                    tuple((privilege, _fill(path, values)) for privilege, path in option)
                    for option in check
                )
                found.setdefault(filled, Need(options=filled, why=address))
    return list(found.values())


def _fill(template: str, values: Mapping[str, Any]) -> str:
    for name in ("vmid", "newid"):
        if f"{{{name}}}" in template and values.get(name) is None:
            return template.replace(f"/{{{name}}}", "")
    for name, value in values.items():
        template = template.replace(f"{{{name}}}", str(value))
    return template


def _parent(path: str) -> str | None:
    if path == "/":
        return None
    head = path.rstrip("/").rsplit("/", 1)[0]
    return head or "/"


def granted(permissions: Mapping[str, Mapping[str, Any]], privilege: str, path: str) -> bool:
    """Whether `GET /access/permissions`'s answer grants `privilege` on `path`: the most
    specific listed path at or above it decides; above it, only a propagating grant."""
    current: str | None = path
    while current is not None:
        listed = permissions.get(current)
        if listed is not None:
            if current == path:
                return privilege in listed
            return bool(int(listed.get(privilege, 0) or 0)) if privilege in listed else False
        current = _parent(current)
    return False


def missing(permissions: Mapping[str, Mapping[str, Any]], wanted: Iterable[Need]) -> list[Need]:
    """The needs no option of which the permissions grant in full."""
    return [
        need
        for need in wanted
        if not any(all(granted(permissions, p, path) for p, path in o) for o in need.options)
    ]


ROLE = (
    "Datastore.AllocateSpace",
    "Datastore.AllocateTemplate",
    "Datastore.Audit",
    "SDN.Use",
    "Sys.AccessNetwork",
    "VM.Allocate",
    "VM.Audit",
    "VM.Clone",
    *sorted(CREATE_CONFIG),
    "VM.GuestAgent.Audit",
    "VM.PowerMgmt",
    "VM.Snapshot",
)
"""The privileges of the role docs/transports.md gives pveplan's tokens: every check above
passes with them (of "or" checks, the narrowest choice: Sys.AccessNetwork on the node,
not Sys.Audit + Sys.Modify on /)."""

ROLE_ID = "PVEPlan"


def least_privilege_token(userid: str, tokenid: str) -> list[PveRequest]:
    """The requests that make `userid` (e.g. `pveplan@pve`) a user whose privilege-separated
    token `tokenid` has exactly `ROLE` on `/`, as docs/transports.md's pveum commands do:
    the role, the user, the user's ACL and the token's (a privsep token's privileges are
    the intersection of both), then the token (its answer holds the value, shown once)."""
    token = f"{userid}!{tokenid}"
    return [
        requests.create_role(ROLE_ID, ROLE),
        requests.create_user(userid, "pveplan automation"),
        requests.grant_role("/", ROLE_ID, users=userid),
        requests.create_token(userid, tokenid, privsep=True),
        requests.grant_role("/", ROLE_ID, tokens=token),
    ]
