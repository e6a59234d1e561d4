"""The permission each simulated API method needs: the PVE 9.1 schema's `permissions`.

`SCHEMA_CHECKS` is the `check` of each method's `permissions` in the API schema
(`apidata`, tests/fixtures/pve/; tests/simapi/test_perms.py holds this copy to it), None
where the schema says `"user": "all"` and leaves the check to the handler. `HANDLER_CHECKS`
are those handler checks, as qemu-server and pve-manager make them; `filter_result` drops
the list entries a caller may not see, as those handlers do. A method with no entry here is
refused to everyone but root@pam: a new route must say what it needs.
"""

from __future__ import annotations

from typing import Any

from pveplan.sim._acl import ROOT, check, denied, permissions

# fmt: off
SCHEMA_CHECKS: dict[str, list[Any] | None] = {
    "GET /access/acl": None,
    "PUT /access/acl": ["perm-modify", "{path}"],
    "GET /access/permissions": None,
    "GET /access/roles": None,
    "POST /access/roles": ["perm", "/access", ["Sys.Modify"]],
    "GET /access/users": None,
    "POST /access/users": ["and", ["userid-param", "Realm.AllocateUser"], ["userid-group", ["User.Modify"], "groups_param", "create"]],
    "POST /access/users/{userid}/token/{tokenid}": ["or", ["userid-param", "self"], ["userid-group", ["User.Modify"]]],
    "GET /cluster/nextid": None,
    "GET /cluster/resources": None,
    "GET /nodes": None,
    "DELETE /nodes/{node}/network": ["perm", "/nodes/{node}", ["Sys.Modify"]],
    "GET /nodes/{node}/network": None,
    "POST /nodes/{node}/network": ["perm", "/nodes/{node}", ["Sys.Modify"]],
    "PUT /nodes/{node}/network": ["perm", "/nodes/{node}", ["Sys.Modify"]],
    "GET /nodes/{node}/network/{iface}": ["perm", "/nodes/{node}", ["Sys.Audit"]],
    "GET /nodes/{node}/qemu": None,
    "POST /nodes/{node}/qemu": None,
    "DELETE /nodes/{node}/qemu/{vmid}": ["perm", "/vms/{vmid}", ["VM.Allocate"]],
    "GET /nodes/{node}/qemu/{vmid}": None,
    "GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces": ["perm", "/vms/{vmid}", ["VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"], "any", 1],
    "GET /nodes/{node}/qemu/{vmid}/agent/file-read": ["perm", "/vms/{vmid}", ["VM.GuestAgent.FileRead", "VM.GuestAgent.Unrestricted"], "any", 1],
    "POST /nodes/{node}/qemu/{vmid}/agent/ping": ["perm", "/vms/{vmid}", ["VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"], "any", 1],
    "GET /nodes/{node}/qemu/{vmid}/config": ["perm", "/vms/{vmid}", ["VM.Audit"]],
    "POST /nodes/{node}/qemu/{vmid}/config": ["perm", "/vms/{vmid}", ["VM.Config.Disk", "VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.HWType", "VM.Config.Options", "VM.Config.Cloudinit"], "any", 1],
    "PUT /nodes/{node}/qemu/{vmid}/config": ["perm", "/vms/{vmid}", ["VM.Config.Disk", "VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.HWType", "VM.Config.Options", "VM.Config.Cloudinit"], "any", 1],
    "PUT /nodes/{node}/qemu/{vmid}/resize": ["perm", "/vms/{vmid}", ["VM.Config.Disk"]],
    "GET /nodes/{node}/qemu/{vmid}/snapshot": ["perm", "/vms/{vmid}", ["VM.Audit"]],
    "POST /nodes/{node}/qemu/{vmid}/snapshot": ["perm", "/vms/{vmid}", ["VM.Snapshot"]],
    "GET /nodes/{node}/qemu/{vmid}/snapshot/{snapname}": None,
    "DELETE /nodes/{node}/qemu/{vmid}/snapshot/{snapname}": ["perm", "/vms/{vmid}", ["VM.Snapshot"]],
    "POST /nodes/{node}/qemu/{vmid}/template": ["perm", "/vms/{vmid}", ["VM.Allocate"]],
    "POST /nodes/{node}/qemu/{vmid}/clone": ["and", ["perm", "/vms/{vmid}", ["VM.Clone"]], ["or", ["perm", "/vms/{newid}", ["VM.Allocate"]], ["perm", "/pool/{pool}", ["VM.Allocate"], "require_param", "pool"]]],
    "PUT /nodes/{node}/qemu/{vmid}/cloudinit": ["perm", "/vms/{vmid}", ["VM.Config.Cloudinit"]],
    "GET /nodes/{node}/qemu/{vmid}/status/current": ["perm", "/vms/{vmid}", ["VM.Audit"]],
    "POST /nodes/{node}/qemu/{vmid}/status/reboot": ["perm", "/vms/{vmid}", ["VM.PowerMgmt"]],
    "POST /nodes/{node}/qemu/{vmid}/status/reset": ["perm", "/vms/{vmid}", ["VM.PowerMgmt"]],
    "POST /nodes/{node}/qemu/{vmid}/status/shutdown": ["perm", "/vms/{vmid}", ["VM.PowerMgmt"]],
    "POST /nodes/{node}/qemu/{vmid}/status/start": ["perm", "/vms/{vmid}", ["VM.PowerMgmt"]],
    "POST /nodes/{node}/qemu/{vmid}/status/stop": ["perm", "/vms/{vmid}", ["VM.PowerMgmt"]],
    "DELETE /nodes/{node}/lxc/{vmid}": ["perm", "/vms/{vmid}", ["VM.Allocate"]],
    "GET /nodes/{node}/lxc": None,
    "GET /nodes/{node}/lxc/{vmid}": None,
    "GET /nodes/{node}/lxc/{vmid}/config": ["perm", "/vms/{vmid}", ["VM.Audit"]],
    "GET /nodes/{node}/lxc/{vmid}/interfaces": ["perm", "/vms/{vmid}", ["VM.Audit"]],
    "GET /nodes/{node}/lxc/{vmid}/status/current": ["perm", "/vms/{vmid}", ["VM.Audit"]],
    "POST /nodes/{node}/lxc": None,
    "POST /nodes/{node}/lxc/{vmid}/status/reboot": ["perm", "/vms/{vmid}", ["VM.PowerMgmt"]],
    "POST /nodes/{node}/lxc/{vmid}/status/shutdown": ["perm", "/vms/{vmid}", ["VM.PowerMgmt"]],
    "POST /nodes/{node}/lxc/{vmid}/status/start": ["perm", "/vms/{vmid}", ["VM.PowerMgmt"]],
    "POST /nodes/{node}/lxc/{vmid}/status/stop": ["perm", "/vms/{vmid}", ["VM.PowerMgmt"]],
    "PUT /nodes/{node}/lxc/{vmid}/config": ["perm", "/vms/{vmid}", ["VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.Options"], "any", 1],
    "PUT /nodes/{node}/lxc/{vmid}/resize": ["perm", "/vms/{vmid}", ["VM.Config.Disk"], "any", 1],
    "GET /nodes/{node}/storage": None,
    "GET /nodes/{node}/storage/{storage}/content": ["perm", "/storage/{storage}", ["Datastore.Audit", "Datastore.AllocateSpace"], "any", 1],
    "POST /nodes/{node}/storage/{storage}/download-url": ["and", ["perm", "/storage/{storage}", ["Datastore.AllocateTemplate"]], ["or", ["perm", "/", ["Sys.Audit", "Sys.Modify"]], ["perm", "/nodes/{node}", ["Sys.AccessNetwork"]]]],
    "GET /nodes/{node}/tasks/{upid}/log": None,
    "GET /nodes/{node}/tasks/{upid}/status": None,
    "GET /nodes/{node}/version": None,
    "GET /storage": None,
    "GET /storage/{storage}": ["perm", "/storage/{storage}", ["Datastore.Allocate"]],
    "PUT /storage/{storage}": ["perm", "/storage", ["Datastore.Allocate"]],
    "GET /version": None,
}
# fmt: on

HANDLER_CHECKS: dict[str, list[Any]] = {
    # qemu-server's create_vm: `check_vm_perm(..., ['VM.Allocate'])` (no pools simulated).
    "POST /nodes/{node}/qemu": ["perm", "/vms/{vmid}", ["VM.Allocate"]],
    # pve-container's create_vm: VM.Allocate on the guest, then (`check_ct_modify_config_perm`)
    # a VM.Config.* privilege per kind of option, which the role pveplan makes holds.
    "POST /nodes/{node}/lxc": ["perm", "/vms/{vmid}", ["VM.Allocate"]],
}
"""Checks a handler makes where the schema says `"user": "all"`."""

TASK_ROUTES = ("GET /nodes/{node}/tasks/{upid}/status", "GET /nodes/{node}/tasks/{upid}/log")
"""A task's owner may read it; anyone else needs Sys.Audit on /nodes/{node}."""


def authorize(state: dict[str, Any], node: str, who: str, key: str, values: dict[str, Any]) -> None:
    """Raise PVE's 403 unless `who` may call method `key` (`METHOD TEMPLATE`) with these
    (raw) path and request values; root@pam always may."""
    if who == ROOT:
        return
    if key not in SCHEMA_CHECKS:
        raise denied()
    rule = SCHEMA_CHECKS[key] or HANDLER_CHECKS.get(key)
    if key in TASK_ROUTES:
        task = state.get("tasks", {}).get(str(values.get("upid")), {})
        if task.get("user") != who:
            rule = ["perm", "/nodes/{node}", ["Sys.Audit"]]
    if key == "GET /access/permissions" and values.get("userid", who) not in (who, ""):
        target = str(values["userid"])
        if target.partition("!")[0] != who:  # a user may dump its own tokens' permissions
            rule = ["perm", "/access", ["Sys.Audit"]]
    if rule is not None:
        check(state, node, who, rule, values)


def _visible(state: dict[str, Any], node: str, who: str, entry: Any) -> bool:
    if not isinstance(entry, dict):
        return True
    if "vmid" in entry:
        return "VM.Audit" in permissions(state, node, who, f"/vms/{entry['vmid']}")
    if "storage" in entry:  # a storage in /cluster/resources, /storage or a node's list
        wanted = {"Datastore.Audit", "Datastore.AllocateSpace"}
        return bool(wanted & set(permissions(state, node, who, f"/storage/{entry['storage']}")))
    return True


def filter_result(state: dict[str, Any], node: str, who: str, key: str, data: Any) -> Any:
    """The part of a list method's result `who` may see (VMs need VM.Audit on /vms/VMID,
    storages Datastore.Audit or AllocateSpace on /storage/STORAGE)."""
    if who == ROOT or key not in (
        "GET /nodes/{node}/qemu",
        "GET /nodes/{node}/lxc",
        "GET /cluster/resources",
        "GET /nodes/{node}/storage",
        "GET /storage",
    ):
        return data
    return [entry for entry in data if _visible(state, node, who, entry)]
