"""The driver's encodings of PVE values (pve-api.md's pitfalls), and reading its output."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

from hypothesis import given
from hypothesis import strategies as st

from pveplan.executor.pve import PveError, encode_sshkeys, first_ipv4, flags, property_string, tags
from pveplan.executor.pve._pvesh import _data

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pve"
SSHKEYS_VALID = re.compile(r"^[-%a-zA-Z0-9_.!~*'()]*$")  # PVE's validator (pve-api.md §3)


@given(st.lists(st.text(min_size=1, max_size=80).filter(lambda k: k.strip()), max_size=4))
def test_sshkeys_pass_pves_validator_and_decode_to_the_keys(keys: list[str]) -> None:
    encoded = encode_sshkeys(keys)
    assert SSHKEYS_VALID.match(encoded)
    assert "+" not in encoded  # a space is %20, never +
    assert unquote(encoded) == "\n".join(k.strip() for k in keys)


def test_booleans_are_zero_or_one_and_none_is_left_out() -> None:
    assert flags({"agent": True, "onboot": False, "name": "web1", "pool": None}) == [
        "--agent", "1", "--name", "web1", "--onboot", "0",
    ]  # fmt: skip


def test_tags_as_pve_stores_them() -> None:
    assert tags(["pveplan-Lab", "pveplan", "pveplan"]) == "pveplan;pveplan-lab"


def test_property_strings() -> None:
    assert property_string("local:0", import_from="local:import/x.qcow2") == (
        "local:0,import-from=local:import/x.qcow2"
    )
    assert property_string("virtio", bridge="vmbr0", tag=None) == "virtio,bridge=vmbr0"


def test_first_ipv4_of_a_real_agent_answer() -> None:
    answer = json.loads((FIXTURES / "api_agent_network-get-interfaces_pve9.json").read_text())
    interfaces = answer["data"]["result"]
    ip = first_ipv4(interfaces)
    assert ip is not None and not ip.startswith("127.")
    lo_only = [i for i in interfaces if i.get("name") == "lo"]
    assert first_ipv4(lo_only) is None


def test_simulated_guests_on_loopback_addresses_count() -> None:
    interfaces = [
        {"name": "lo", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1"}]},
        {
            "name": "ens18",
            "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.83.0.7"}],
        },
    ]
    assert first_ipv4(interfaces) == "127.83.0.7"


def test_task_log_before_the_upid_and_silent_sets() -> None:
    upid = "UPID:pve:00001234:00005678:65000000:qmstart:100:root@pam:"
    assert _data(f"starting VM 100\nTASK OK\n{json.dumps(upid)}\n", "create", "/x") == upid
    assert _data("", "get", "/x") is None
    assert _data("scsi1: successfully created disk\n", "set", "/x") is None
    try:
        _data("not json", "get", "/x")
    except PveError as exc:
        assert "unexpected output" in str(exc)
    else:
        raise AssertionError("garbage output must be an error")
