"""`pveplan import` on the simulator: VMs made with `qm create` directly (as an operator, or
another tool, makes them on a real host) become a manifest's nodes, and the next apply runs
only what differs.

Three VMs are made with the host's own `qm`, one with more memory than the manifest says.
`--discover --dry-run` finds the same three and records nothing; a VM whose guest agent is
not enabled is refused (its host key cannot be read through a trusted channel) and nothing
is imported; then the import adopts them, pinning each host key read from the guest. The
next apply creates no VM and starts none: it sets the one memory, and runs what import
could not establish (the SSH checks, and host steps not already in place); a second plan
shows no changes.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from pveplan.executor import generate_ed25519, public_line
from tests.cli_runner import run_cli

from .conftest import Lab
from .test_apply import counts, last_run_events, resources, specless

pytestmark = pytest.mark.slow

BASE = 87100
NAME = "imported"
WORKSPACE = f"{NAME}@sim"


def qm(lab: Lab, *argv: str) -> None:
    """`qm` on the simulated host, as an operator would run it there."""
    tool = str(lab.sim.host_dir("sim") / "bin" / "qm")
    subprocess.run([tool, *argv], check=True, capture_output=True)


def driver_key_on_host(lab: Lab) -> str:
    """The driver's public key (made as pveplan makes it on first use), copied onto the
    host for `qm create --sshkeys` to read: the operator gave the VMs pveplan's key."""
    path = lab.root / "config" / "pveplan" / "driver_ed25519"
    if not path.exists():
        private, _ = generate_ed25519("pveplan-driver")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_bytes(private)
        path.chmod(0o600)
    on_host = lab.sim.host_dir("sim") / "root" / "import-driver.pub"
    on_host.parent.mkdir(parents=True, exist_ok=True)
    on_host.write_text(public_line(path.read_bytes()) + "\n")
    return "/root/import-driver.pub"


def make_vm(
    lab: Lab, index: int, memory: int, *, agent: bool = True, storage: str = "local"
) -> None:
    qm(
        lab,
        "create",
        str(BASE + index),
        *("--name", f"im-{index}", "--memory", str(memory), "--cores", "1"),
        *("--scsi0", f"{storage}:8", "--net0", "virtio,bridge=vmbr0"),
        *("--ide2", "local-lvm:cloudinit", "--ciuser", "homestak"),
        *("--sshkeys", driver_key_on_host(lab), "--agent", "1" if agent else "0"),
        *("--tags", f"pveplan;pveplan-{NAME}"),
    )
    qm(lab, "start", str(BASE + index))


def calls_since(lab: Lab, since: int) -> list[str]:
    lines = lab.sim.calls.read_text().splitlines()[since:]
    return [" ".join([c["tool"], *c.get("argv", [])]) for c in map(json.loads, lines)]


@pytest.fixture
def local_holds_images(lab: Lab) -> Iterator[None]:
    """The manifest's datastore (`local`) holds VM disks, as an operator's host would; its
    content types are put back afterwards, for the session's lab is shared: a later test's
    container on `local` needs the `rootdir` this set drops, and the store that recorded
    `local`'s content as ensured would not check it again."""
    assert run_cli(["sim", "up"])[0] == 0
    pvesh = str(lab.sim.host_dir("sim") / "bin" / "pvesh")
    shown = subprocess.run(
        [pvesh, "get", "/storage/local", "--output-format", "json"],
        check=True,
        capture_output=True,
        text=True,
    )
    before = json.loads(shown.stdout)["content"]
    subprocess.run(
        [pvesh, "set", "/storage/local", "--content", "backup,images,import,iso,snippets"],
        check=True,
        capture_output=True,
    )
    try:
        yield
    finally:
        subprocess.run([pvesh, "set", "/storage/local", "--content", before], check=True)


@pytest.mark.usefixtures("local_holds_images")
def test_import_adopts_qm_made_vms_and_apply_runs_only_what_differs(lab: Lab) -> None:
    name = lab.manifest(NAME, specless(NAME, 3, BASE, prefix="im"))
    site = ["-M", name, "-H", "sim"]
    make_vm(lab, 1, 1024)
    make_vm(lab, 2, 2048)  # the manifest's preset says 1024
    make_vm(lab, 3, 1024, agent=False)
    pairs = [f"im-{i}={BASE + i}" for i in (1, 2, 3)]

    # No agent, no trusted key: refused with what to do, and nothing is recorded.
    code, out, err = run_cli(lab.args("import", *site, *pairs))
    assert code == 1, out + err
    assert f"error: im-3={BASE + 3}: VM {BASE + 3}'s guest agent is not enabled" in err
    assert f"qm set {BASE + 3} --agent enabled=1" in err and "recreate" in err
    assert "Nothing was imported" in err and resources(lab, WORKSPACE) == {}
    qm(lab, "set", str(BASE + 3), "--agent", "1")
    qm(lab, "stop", str(BASE + 3))
    qm(lab, "start", str(BASE + 3))

    # --discover finds the same three from one listing, and a dry run records nothing.
    code, out, err = run_cli(lab.args("import", *site, "--discover", "--dry-run"))
    assert code == 0, out + err
    for i in (1, 2, 3):
        assert f"im-{i} = VM {BASE + i}  (by its pveplan tag; running; host key SHA256:" in out
    assert "~ vm im-2  memory: 2048 (live) -> 1024 (manifest)" in out
    assert "Would import 3 VM(s)" in out and resources(lab, WORKSPACE) == {}

    before = {v["vmid"]: v["config"]["vmgenid"] for v in lab.vms(name)}
    code, out, err = run_cli(lab.args("import", *site, *pairs))
    assert code == 0, out + err
    assert "Imported 3 VM(s)" in out
    recorded = resources(lab, WORKSPACE)
    for i in (1, 2, 3):
        pub = lab.sim.vm_dir("sim", BASE + i) / "etc" / "ssh" / "ssh_host_ed25519_key.pub"
        outputs = recorded[f"node.im-{i}.create"]
        assert outputs["vm_id"] == BASE + i
        assert outputs["host_key"].split() == pub.read_text().split()[:2], "read from the guest"

    code, out, err = run_cli(lab.args("plan", *site, "--detailed-exitcode"))
    assert code == 2, out + err
    assert "~ vm im-2  memory: 2048 (live) -> 1024 (manifest)" in out
    assert "+ node.im-1.create" not in out, "an imported VM is never planned as created"

    since = len(lab.sim.calls.read_text().splitlines())
    code, out, err = run_cli(lab.args("apply", *site, "--yes"))
    assert code == 0, out + err
    ran = {e.address for e in last_run_events(lab, WORKSPACE) if e.kind == "started"}
    assert {"node.im-2.create", *(f"node.im-{i}.wait_ssh" for i in (1, 2, 3))} <= ran
    host_steps = {a for a in ran if not a.startswith("node.")}
    assert host_steps <= {"storage.local.content", "image.debian-13.ensure"}
    assert ran - host_steps == {"node.im-2.create", *(f"node.im-{i}.wait_ssh" for i in (1, 2, 3))}
    assert counts(out)["ran"] == len(ran) and counts(out)["cached"] == 14 - len(ran)
    made = calls_since(lab, since)
    assert not [c for c in made if c.startswith(("pvesh create /nodes/sim/qemu ", "qm create"))]
    assert not [c for c in made if "/status/start" in c or c.startswith("qm start")]
    assert [c for c in made if "--memory" in c] == [
        f"pvesh set /nodes/sim/qemu/{BASE + 2}/config --memory 1024 --output-format json"
    ]
    after = {v["vmid"]: v for v in lab.vms(name)}
    assert {vmid: v["config"]["vmgenid"] for vmid, v in after.items()} == before, "not remade"
    assert str(after[BASE + 2]["config"]["memory"]) == "1024"

    code, out, err = run_cli(lab.args("plan", *site, "--detailed-exitcode"))
    assert code == 0 and "No changes." in out and "Drift" not in out, out + err

    # Imported once: a second import of the same node is refused.
    code, out, err = run_cli(lab.args("import", *site, f"im-1={BASE + 1}"))
    assert code == 1 and "already recorded in the store" in err, out + err
    assert run_cli(lab.args("destroy", *site, "--yes"))[0] == 0
    assert lab.vms(name) == []
