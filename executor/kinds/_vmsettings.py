"""A VM's config options that no listing carries, read and set back: net0's bridge and
model, `onboot`, and the cloud-init user and keys.

`live_config` reads them from a VM's config (as `GET .../config` returns it: net0 as
`virtio=MAC,bridge=vmbr0[,firewall=1]`, `sshkeys` URL-encoded), pure; what differs and
how it is carried out is the planner's one comparison (`planner.config_changes`, by the
args' `RULES`), used both by a full refresh's drift and here, by the create step's adopt.
`settings_requests` makes the changes in place (net0 is the NICs' job:
`_vmdevices.device_changes` rewrites it keeping its MAC, as a new MAC would change the
guest's DHCP address); a changed cloud-init user or key set is written and the
cloud-init drive regenerated, which the guest reads at its next boot (PVE's documented
behaviour: pveplan does not reboot a VM for it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from pveplan.planner import AUTH_SECRETS, LiveConfig, VmCreateArgs, config_changes, is_snippet

from ..pve import PveRequest, encode_sshkeys, requests

NIC_MODELS = frozenset(
    [
        "e1000",
        "e1000-82540em",
        "e1000-82544gc",
        "e1000-82545em",
        "e1000e",
        "i82551",
        "i82557b",
        "i82559er",
        "ne2k_isa",
        "ne2k_pci",
        "pcnet",
        "rtl8139",
        "virtio",
        "vmxnet3",
    ]
)
"""PVE's NIC models (the 9.1 schema's `net[n]` model enum): `model=MAC` leads a net0."""


def parse_net(value: str) -> tuple[str | None, str | None, list[tuple[str, str]]]:
    """A `netN` value's (model, MAC, other options in order)."""
    model, mac, rest = None, None, []
    for part in str(value).split(","):
        key, _, text = part.partition("=")
        if key in NIC_MODELS:
            model, mac = key, text or None
        elif key == "model":
            model = text
        elif key == "macaddr":
            mac = text
        elif key:
            rest.append((key, text))
    return model, mac, rest


def live_config(vmid: int, config: Mapping[str, Any]) -> LiveConfig:
    """The options pveplan sets and no listing carries, from one VM's config."""
    model, bridge, firewall = None, None, False
    if "net0" in config:
        model, _, rest = parse_net(str(config["net0"]))
        bridge = dict(rest).get("bridge")
        firewall = dict(rest).get("firewall") == "1"
    onboot = str(config.get("onboot", "0")).strip().lower() in ("1", "yes", "on", "true")
    lines = unquote(str(config.get("sshkeys") or "")).splitlines()
    return LiveConfig(
        vmid=vmid,
        model=model,
        bridge=bridge,
        firewall=firewall,
        onboot=onboot,
        ciuser=str(config["ciuser"]) if config.get("ciuser") else None,
        sshkeys=tuple(line.strip() for line in lines if line.strip()),
    )


def guest_keys(services: Any, step: Any) -> list[str]:
    """The public keys a VM's cloud-init user is given: the step's own (site secrets,
    revealed here, never written into a plan; not its cloud-init snippets), then the keys
    every VM of the run trusts."""
    credentials = set(AUTH_SECRETS.values())  # a pull node's credential is not a key
    keys = [
        services.reveal(s.name)
        for s in step.secrets
        if s.name not in credentials and not is_snippet(s.name)
    ]
    keys.extend(k for k in services.trusted_keys if k not in keys)
    return keys


def net0_value(live: str | None, bridge: str) -> str:
    """net0 with pveplan's model and `bridge`, keeping the live MAC and other options."""
    _, mac, rest = parse_net(live or "")
    first = f"virtio={mac}" if mac else "virtio"
    return ",".join([first, f"bridge={bridge}", *(f"{k}={v}" for k, v in rest if k != "bridge")])


def settings_requests(
    node: str, vmid: int, config: Mapping[str, Any], args: VmCreateArgs, keys: Sequence[str]
) -> list[PveRequest]:
    """What sets the VM's compared options back to `args` (and `keys`), in place; empty
    when they match. Pure."""
    changes = config_changes(args, live_config(vmid, config), keys)
    fields = {c.field for c in changes if c.change == "in_place"}
    params: dict[str, Any] = {}
    # net0's bridge and model are the NICs' (`_vmdevices.device_changes` sets every netN
    # back, keeping its MAC): set here too, a second write could undo a change of its tag.
    if "onboot" in fields:
        params["onboot"] = bool(args.onboot)
    if "ciuser" in fields:
        params["ciuser"] = args.cloud_init.user or "homestak"
    if "sshkeys" in fields:
        params["sshkeys"] = encode_sshkeys(keys)
    out = [requests.set_vm_config(node, vmid, params)] if params else []
    if fields & {"ciuser", "sshkeys"}:
        out.append(requests.regenerate_cloudinit(node, vmid))
    return out
