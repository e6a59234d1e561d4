"""Drift of what only a VM's own config carries, found by a full refresh.

PVE's listing (what the default probe reads, one call per host) has no NIC, no `onboot`
and no cloud-init options: those are in `GET /nodes/{node}/qemu/{vmid}/config`, one call
per VM. `plan --refresh=full` reads that config for each VM the store records as applied
(never every VM of the host) and hands it here as a `LiveConfig`; `find_config_drift`
compares it, pure, with the create step's args, and `config_changes` is the one
comparison both this and the VM kind's adopt use, so what the plan shows is what the
apply sets.

Compared: net0's bridge and model (pveplan writes `virtio,bridge=...`; a firewall flag,
VLAN tag or MAC is not pveplan's and is left alone), `onboot` (only when the manifest sets
it), and the cloud-init `ciuser` and `sshkeys` (decoded from PVE's URL-encoding and
compared as a set of keys, order and comments aside). How each is carried out is the rule
of the args field it comes from (`VmCreateArgs.RULES`): all in place. PVE applies
cloud-init options at the guest's next boot (it regenerates the cloud-init drive at each
start, and the apply regenerates it at once), so the cause says so.

SSH keys are public, yet a drift line shows each as its fingerprint and comment only, not
the whole key: a plan stays readable and carries no blob a reader would have to check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from msgspec import UNSET

from ._drift import CHANGED, LiveHost, _create_args
from ._plan import Drift, Frozen, Plan
from ._stepargs import Change, VmCreateArgs, change_of

NIC_MODEL = "virtio"
"""The NIC model pveplan's create writes into net0."""
DEFAULT_BRIDGE = "vmbr0"
DEFAULT_USER = "homestak"
NEXT_BOOT = "changed outside pveplan; set back in place, the guest reads it at its next boot"

ARG_OF: Mapping[str, str] = {
    "bridge": "bridge",
    "model": "bridge",
    "firewall": "bridge",
    "onboot": "onboot",
    "ciuser": "cloud_init",
    "sshkeys": "cloud_init",
}
"""Each compared config option -> the create args field it comes from, whose rule
(`VmCreateArgs.RULES`) says how a change of it is carried out."""


class LiveConfig(Frozen, kw_only=True):
    """What one VM's config says of the options pveplan sets and no listing carries."""

    vmid: int
    model: str | None = None
    """net0's model (`virtio`), None without a net0."""
    bridge: str | None = None
    firewall: bool = False
    """net0's `firewall=1` (the manifest's NIC says; unset means off)."""
    onboot: bool = False
    """PVE's default when the option is absent is off."""
    ciuser: str | None = None
    sshkeys: tuple[str, ...] = ()
    """The public keys, one line each, decoded from PVE's URL-encoding."""


class ConfigChange(Frozen, kw_only=True):
    """One compared option that differs: its live and wanted values, as shown to a
    reader (keys as fingerprints), and how it is carried out."""

    field: str
    live: str
    wanted: str
    change: Change


def key_id(line: str) -> tuple[str, str] | None:
    """A public key line's (type, base64 blob), whatever its options and comment; None
    for a line that is not a key (a blank or a `#` comment)."""
    fields = line.split()
    for index, word in enumerate(fields[:-1]):
        if word.startswith(("ssh-", "ecdsa-", "sk-")):
            return word, fields[index + 1]
    return None


def fingerprint(line: str) -> str:
    """`SHA256:... comment`, as `ssh-keygen -l` names a key (never the key itself)."""
    found = key_id(line)
    if found is None:
        return "(not a key)"
    try:
        blob = base64.b64decode(found[1], validate=True)
    except (binascii.Error, ValueError):
        return "(not a key)"
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    fields = line.split()
    comment = " ".join(fields[fields.index(found[1]) + 1 :])
    return f"SHA256:{digest}" + (f" {comment}" if comment else "")


def describe_keys(lines: Iterable[str]) -> str:
    """A key set for a drift line: each key's fingerprint, sorted; `(none)` if empty."""
    shown = sorted(fingerprint(line) for line in lines if key_id(line) is not None)
    return ", ".join(shown) or "(none)"


def config_changes(
    args: VmCreateArgs, live: LiveConfig, keys: Sequence[str]
) -> tuple[ConfigChange, ...]:
    """Each compared option of `live` that differs from what `args` (and `keys`, the
    public keys the VM's cloud-init user is given) make; empty when the VM matches."""
    out: list[ConfigChange] = []

    def differs(field: str, have: Any, want: Any, shown: tuple[str, str]) -> None:
        rule = change_of(VmCreateArgs, ARG_OF[field], have, want)
        out.append(ConfigChange(field=field, live=shown[0], wanted=shown[1], change=rule))

    first = args.nic_list()[0]  # net0: `bridge`, or the first of `nics`
    bridge, model = first.bridge or DEFAULT_BRIDGE, first.model or NIC_MODEL
    if live.bridge != bridge:
        differs("bridge", live.bridge, bridge, (live.bridge or "(none)", bridge))
    if live.model != model:
        differs("model", live.model, model, (live.model or "(none)", model))
    firewall = bool(first.firewall)
    if live.firewall != firewall:
        differs("firewall", live.firewall, firewall, (str(int(live.firewall)), str(int(firewall))))
    if args.onboot is not UNSET and live.onboot != args.onboot:
        differs("onboot", live.onboot, args.onboot, (str(int(live.onboot)), str(int(args.onboot))))
    user = args.cloud_init.user or DEFAULT_USER
    if live.ciuser != user:
        differs("ciuser", live.ciuser, user, (live.ciuser or "(none)", user))
    have = {k for k in map(key_id, live.sshkeys) if k is not None}
    want = {k for k in map(key_id, keys) if k is not None}
    if have != want:
        differs("sshkeys", have, want, (describe_keys(live.sshkeys), describe_keys(keys)))
    return tuple(out)


def config_targets(
    plan: Plan, live: LiveHost, resources: Mapping[str, Mapping[str, Any]]
) -> dict[str, int]:
    """The VMs whose config a full refresh reads: each applied create step of `plan`'s
    own level (address -> vmid) whose VM the listing shows under its name. A VM the
    listing misses is already drift (`find_drift`), and one never applied is a create."""
    by_vmid = {vm.vmid: vm for vm in live.vms}
    out: dict[str, int] = {}
    for step in plan.steps:
        if step.address not in resources or (args := _create_args(step)) is None:
            continue
        if step.host != live.host:  # a node on another host: that host's listing reads it
            continue
        vmid = resources[step.address].get("vm_id") or args.vmid
        vm = by_vmid.get(vmid) if isinstance(vmid, int) else None
        if vm is not None and vm.name == args.name:
            out[step.address] = vm.vmid
    return out


def find_config_drift(
    plan: Plan,
    configs: Mapping[str, LiveConfig],
    keys: Mapping[str, Sequence[str]],
    applied: Mapping[str, str] | None = None,
) -> tuple[Drift, ...]:
    """The config drift of each VM read (`configs`, by create step address), in plan
    order; `keys` are the public keys each is meant to have. As in `find_drift`, a
    create step whose hash differs from its `applied` one runs anyway and sets the new
    manifest's values, so its differences are the plan's change, not drift."""
    out: list[Drift] = []
    for step in plan.steps:
        live = configs.get(step.address)
        if live is None or (args := _create_args(step)) is None:
            continue
        if applied is not None and applied.get(step.address) != step.hash:
            continue
        for change in config_changes(args, live, keys.get(step.address, ())):
            in_place = change.change == "in_place"
            cause = NEXT_BOOT if change.field in ("ciuser", "sshkeys") else CHANGED
            out.append(
                Drift(
                    address=step.address,
                    node=args.name,
                    type=args.type,
                    field=change.field,
                    live=change.live,
                    wanted=change.wanted,
                    cause=cause if in_place else f"{CHANGED}; only a new VM can change it",
                    fix="in_place" if in_place else "report",
                )
            )
    return tuple(out)


def merged_drift(plan: Plan, *groups: Iterable[Drift]) -> tuple[Drift, ...]:
    """The drift of every group as one, in plan order (a node's listing drift first)."""
    order = {step.address: index for index, step in enumerate(plan.steps)}
    found = [item for group in groups for item in group]
    return tuple(sorted(found, key=lambda item: order.get(item.address, len(order))))
