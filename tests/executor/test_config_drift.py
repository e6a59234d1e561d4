"""A full refresh's config read: a VM's config parsed into the options pveplan sets and no
listing carries (net0's bridge and model, onboot, the cloud-init user and keys), compared
with the create step's args, and the requests that set it back.

Why: the comparison is what a `plan --refresh=full` shows and what the create step's adopt
sets, so it must never see drift in a VM made exactly as the args say (or the plan would
never settle), must see each hand change, and must set things back without touching what
pveplan does not set (the NIC's MAC, a firewall flag). The config is the simulator's
rendering of the create parameters, which stores values as PVE does (net0 gets a MAC,
`sshkeys` stays URL-encoded).
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import UNSET

from pveplan.executor._keys import generate_ed25519
from pveplan.executor.kinds._vm import _vm_params
from pveplan.executor.kinds._vmdevices import device_changes
from pveplan.executor.kinds._vmsettings import live_config, net0_value, settings_requests
from pveplan.executor.pve import encode_sshkeys
from pveplan.executor.pve._params import flag_value
from pveplan.planner import (
    LiveConfig,
    Plan,
    Step,
    VmCreateArgs,
    config_changes,
    describe_keys,
    find_config_drift,
)
from pveplan.sim._schema import VM_OPTIONS
from pveplan.sim._vmconfig import config_values
from tests._tiers import examples

KEYS = [generate_ed25519(comment)[1] for comment in ("alice@laptop", "bob@desk", "", "ci bot")]
NAMES = st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)


def args_of(**changes: Any) -> VmCreateArgs:
    wire: dict[str, Any] = {
        "name": "web1",
        "type": "vm",
        "vmid": 100,
        "cores": 2,
        "memory": 2048,
        "disk": 8,
        "bridge": "vmbr0",
        "storage": "local-lvm",
        "tags": ["pveplan"],
        "image": "debian-13",
        "cloud_init": {
            "user": "homestak",
            "sudo": True,
            "packages": [],
            "timezone": None,
            "agent": True,
            "serial": True,
            "mode": "push",
        },
    }
    wire.update(changes)
    return msgspec.convert(wire, VmCreateArgs)


def as_stored(args: VmCreateArgs, keys: list[str]) -> dict[str, Any]:
    """The config PVE (here the simulator) stores for the create parameters of `args`."""
    params = _vm_params(args, "local:import/d.qcow2", keys, 100, "local")
    wire = {key: flag_value(value) for key, value in params.items() if value is not None}
    return config_values(VM_OPTIONS, wire)  # as sent over the wire: text


@settings(max_examples=examples(100), deadline=None)
@given(
    bridge=st.one_of(st.none(), NAMES.map(lambda n: f"vmbr{len(n)}")),
    user=NAMES,
    onboot=st.sampled_from([UNSET, True, False]),
    keys=st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=True),
)
def test_a_config_made_from_the_args_never_drifts(
    bridge: str | None, user: str, onboot: Any, keys: list[str]
) -> None:
    cloud = {**msgspec.to_builtins(args_of().cloud_init), "user": user}
    args = args_of(bridge=bridge, cloud_init=cloud)
    if onboot is not UNSET:
        args = msgspec.structs.replace(args, onboot=onboot)
    config = as_stored(args, keys)
    assert "=" in config["net0"].split(",")[0]  # stored with its MAC, as PVE does
    live = live_config(100, config)
    assert config_changes(args, live, keys) == ()
    assert config_changes(args, live, list(reversed(keys))) == ()  # order is not drift
    assert settings_requests("pve", 100, config, args, keys) == []


@given(keys=st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=True))
def test_url_encoded_keys_round_trip(keys: list[str]) -> None:
    assert live_config(100, {"sshkeys": encode_sshkeys(keys)}).sshkeys == tuple(keys)


def test_each_hand_change_is_seen_with_live_and_wanted_values() -> None:
    args = args_of(onboot=True)
    config = as_stored(args, KEYS[:2])
    config.update(
        net0=config["net0"].replace("bridge=vmbr0", "bridge=vmbr9"),
        onboot=0,
        ciuser="mallory",
        sshkeys=encode_sshkeys(KEYS[:1]),
    )
    changes = {c.field: c for c in config_changes(args, live_config(100, config), KEYS[:2])}
    assert set(changes) == {"bridge", "onboot", "ciuser", "sshkeys"}
    assert (changes["bridge"].live, changes["bridge"].wanted) == ("vmbr9", "vmbr0")
    assert (changes["onboot"].live, changes["onboot"].wanted) == ("0", "1")
    assert (changes["ciuser"].live, changes["ciuser"].wanted) == ("mallory", "homestak")
    assert all(c.change == "in_place" for c in changes.values())
    keys = changes["sshkeys"]
    assert "alice@laptop" in keys.live and "bob@desk" in keys.wanted
    blob = KEYS[1].split()[1]
    assert blob not in keys.wanted and "SHA256:" in keys.wanted  # fingerprints, never keys


def test_onboot_is_compared_only_when_the_manifest_sets_it() -> None:
    config = {**as_stored(args_of(), KEYS[:1]), "onboot": 1}
    assert config_changes(args_of(), live_config(100, config), KEYS[:1]) == ()


def test_setting_back_keeps_the_mac_and_regenerates_the_cloud_init_drive() -> None:
    args = args_of()
    config = as_stored(args, KEYS[:1])
    mac = config["net0"].split(",")[0].split("=")[1]
    config["net0"] = f"e1000={mac},bridge=vmbr9,firewall=1"
    config["ciuser"] = "mallory"
    # net0 is the NICs' job (every netN set back in one write, its MAC kept) ...
    nics = device_changes("pve", 100, config, args).requests
    assert [r.params["net0"] for r in nics if "net0" in r.params] == [f"virtio={mac},bridge=vmbr0"]
    # ... and the cloud-init options the settings': the drive regenerated for them.
    requests = settings_requests("pve", 100, config, args, KEYS[:1])
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in requests] == [
        ("PUT", "config"),
        ("PUT", "cloudinit"),
    ]
    assert requests[0].params == {"ciuser": "homestak"}
    assert net0_value(None, "vmbr1") == "virtio,bridge=vmbr1"
    # A NIC-only change is no cloud-init change: nothing for the settings to write.
    config["ciuser"] = "homestak"
    assert settings_requests("pve", 100, config, args, KEYS[:1]) == []


def test_a_step_the_plan_changes_anyway_has_no_config_drift() -> None:
    args = args_of()
    wire = msgspec.to_builtins(args)
    step = Step(
        address="node.web1.create",
        kind="pve.vm.create",
        kind_version=1,
        host="sim",
        args=wire,
        hash="h1",
    )
    plan = Plan(manifest="m", host="sim", steps=(step,), hash="p")
    live = LiveConfig(vmid=100, model="virtio", bridge="vmbr9", ciuser="homestak")
    keys = {"node.web1.create": (KEYS[0],)}
    live = msgspec.structs.replace(live, sshkeys=(KEYS[0],))
    found = find_config_drift(plan, {"node.web1.create": live}, keys, {"node.web1.create": "h1"})
    assert [(d.field, d.live, d.wanted, d.fix) for d in found] == [
        ("bridge", "vmbr9", "vmbr0", "in_place")
    ]
    assert (
        find_config_drift(plan, {"node.web1.create": live}, keys, {"node.web1.create": "h0"}) == ()
    )


@pytest.mark.parametrize("line", ["", "# a comment", "not a key"])
def test_lines_that_are_not_keys_are_not_keys(line: str) -> None:
    assert describe_keys([line]) == "(none)"


def test_only_applied_vms_the_listing_shows_under_their_name_are_read() -> None:
    from pveplan.planner import LiveHost, LiveVm, config_targets

    steps = []
    for name, vmid in (("a", 101), ("b", 102), ("c", 103), ("d", 104)):
        wire = msgspec.to_builtins(args_of(name=name, vmid=vmid))
        steps.append(
            Step(
                address=f"node.{name}.create",
                kind="pve.vm.create",
                kind_version=1,
                host="sim",
                args=wire,
                hash=name,
            )
        )
    plan = Plan(manifest="m", host="sim", steps=tuple(steps), hash="p")
    live = LiveHost(
        host="sim",
        vms=(
            LiveVm(vmid=101, name="a", status="running"),
            LiveVm(vmid=102, name="someone-else", status="running"),  # its vmid reused
            LiveVm(vmid=104, name="d", status="running"),
            LiveVm(vmid=900, name="stranger", status="running"),  # never ours
        ),
    )
    resources = {"node.a.create": {"vm_id": 101}, "node.b.create": {"vm_id": 102}}
    resources["node.c.create"] = {"vm_id": 103}  # gone: the listing's drift says so
    assert config_targets(plan, live, resources) == {"node.a.create": 101}  # d: not applied
