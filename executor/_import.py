"""`pveplan import`: reading what existing VMs establish, and recording it in the store.

What import may record is what it has seen for itself, never what a step would have
done. For each adopted VM it reads, through PVE (one listing of the host for them all,
then per VM its config and two guest-agent calls):

- that the VM exists with the node's name at its VMID (the create step's postcondition),
  with its `vmgenid`, which the create step's drift probe compares later;
- the guest's SSH host key, read from the guest by its agent
  (`agent/file-read` of `/etc/ssh/ssh_host_ed25519_key.pub`): a channel through the
  hypervisor, so the key is known before the first SSH connection, never trusted on
  first use. No agent answering, no key: the VM is refused, with what to do;
- whether it runs (the start step's postcondition) and its address (`wait_ip`'s output,
  from the agent's `network-get-interfaces`).

The host-level steps the creates depend on (a storage's content types, the image on the
storage) are established by their own kinds' probes, given the outputs they would have
produced. Everything else (SSH reachability, the node's configuration inside the guest)
is not established: the next apply runs it.

Recording (`record_import`) is one run record (verb `import`) whose results are what
import established, in one transaction with each VM's resource (so destroy, drift and
status know it), under the workspace lock the caller holds like apply's. The create's
result is filed under `adopted_key(step)` rather than a run key: a run key hashes the
create's resolved inputs (the image volume the image step outputs), which import cannot
claim the VM was made from; the scheduler reuses an adopted result while the step's hash
is unchanged and the resource recorded, exactly as it reuses a cached one (drift still
re-runs it). The steps after it get ordinary run keys, computed from those outputs.
The applied state becomes the established steps (and what they hash over), so `plan`
diffs the rest as to be created and shows the drift of what differs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pveplan.planner import (
    Plan,
    Step,
    VmCreateArgs,
    adopted_plan,
    args_of,
    canonical,
    digest,
)
from pveplan.store import RunEvent, StepResult, Store

from ._adopt import Candidate, Frozen, ImportRefusal
from ._context import Services, StepContext
from ._kinds import kind_for
from ._model import Event
from ._results import node_of
from .kinds._image import CONTENT as IMAGE_CONTENT
from .pve import PveDriver, PveError, first_ipv4

HOST_KEY_FILE = "/etc/ssh/ssh_host_ed25519_key.pub"
GUEST_CREATE = "pve.vm.create"
DERIVED: dict[str, Callable[[Any], dict[str, Any]]] = {
    "pve.storage.content": lambda args: {},
    "pve.image.ensure": lambda args: {"volid": f"{args.storage}:{IMAGE_CONTENT}/{args.filename}"},
}
"""The outputs the host-level kinds produce, from their args alone (as their `apply`
returns them): import probes each with these and records it only if the probe agrees."""


class Adopted(Frozen, kw_only=True):
    """One VM import established as a node: the create step's outputs (as the create
    kind's adoption returns them), whether it runs, and its address if the agent gave one."""

    node: str
    vmid: int
    address: str
    outputs: dict[str, Any]
    running: bool
    ip: str | None = None
    found_by: str = "given"


def adopted_key(step: Step) -> str:
    """Where an imported create's result is filed: by the step's hash alone (see the
    module docstring), never equal to a run key."""
    return digest(canonical({"adopted": step.hash}))


def host_key_of(text: str) -> str:
    """The `ssh-ed25519 <base64>` line of a guest's public key file; ValueError if it
    holds no valid ed25519 key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "ssh-ed25519":
            try:
                key = load_ssh_public_key(f"{fields[0]} {fields[1]}".encode())
            except (ValueError, TypeError):
                break
            if isinstance(key, Ed25519PublicKey):
                return f"{fields[0]} {fields[1]}"
    raise ValueError(f"{HOST_KEY_FILE} holds no valid ed25519 public key")


def agent_problem(vmid: int, status: str, error: str) -> str:
    """Why VM `vmid`'s host key cannot be read through its agent, and what to do."""
    recreate = "or leave it out of the import and let pveplan recreate it (destroy it first)"
    if "Permission check failed" in error:
        return (
            f"the API token may not read files through VM {vmid}'s guest agent ({error.strip()}): "
            "grant it VM.GuestAgent.FileRead on /vms (docs/transports.md), or import over SSH"
        )
    if "No QEMU guest agent configured" in error:
        return (
            f"VM {vmid}'s guest agent is not enabled, so its SSH host key cannot be read "
            f"through a trusted channel: enable it (`qm set {vmid} --agent enabled=1`, "
            f"qemu-guest-agent installed in the guest, then restart the VM), {recreate}"
        )
    if status != "running" or ("is not running" in error and "agent" not in error):
        return (
            f"VM {vmid} is {status}: its guest agent cannot hand over its SSH host key; "
            f"start it (`qm start {vmid}`) and import again, {recreate}"
        )
    if "failed to open file" in error:
        return (
            f"VM {vmid} has no {HOST_KEY_FILE}: pveplan pins ed25519 host keys; create one "
            f"in the guest (`ssh-keygen -A`), {recreate}"
        )
    return (
        f"VM {vmid}'s guest agent does not answer ({error.strip()}): start qemu-guest-agent "
        f"in the guest, {recreate}"
    )


def _create_steps(plan: Plan) -> dict[str, Step]:
    """node name -> its create step, on the target host's own level."""
    out: dict[str, Step] = {}
    for step in plan.steps:
        name = node_of(step.address)
        if step.kind == GUEST_CREATE and name is not None:
            out[name] = step
    return out


async def establish(
    services: Services, plan: Plan, candidates: Sequence[Candidate]
) -> tuple[tuple[Adopted, ...], tuple[ImportRefusal, ...]]:
    """Read each candidate's config, host key and address through PVE (module docstring);
    a candidate whose key cannot be read is refused with what to do."""
    from .kinds._vm import _outputs
    from .kinds._vmdevices import device_changes

    pve = await services.pve(plan.host)
    creates = _create_steps(plan)
    adopted: list[Adopted] = []
    refused: list[ImportRefusal] = []
    for found in candidates:
        config = await pve.config(found.vmid)
        args = args_of(creates[found.node])
        moved = (
            device_changes(pve.node, found.vmid, config, args).replace
            if isinstance(args, VmCreateArgs)
            else None
        )
        if moved is not None:  # the next apply would destroy it: never adopt to replace
            reason = (
                f"{moved}: the next apply would replace it (its data lost). Make the VM "
                "match (e.g. `qm disk move` to the manifest's storage) or the manifest "
                "match the VM (`disks` with its storage and bus), then import again"
            )
            refused.append(ImportRefusal(node=found.node, vmid=found.vmid, reason=reason))
            continue
        try:
            key = host_key_of(await pve.read_guest_file(found.vmid, HOST_KEY_FILE))
        except PveError as exc:
            reason = agent_problem(found.vmid, found.status, str(exc))
            refused.append(ImportRefusal(node=found.node, vmid=found.vmid, reason=reason))
            continue
        except ValueError as exc:
            refused.append(ImportRefusal(node=found.node, vmid=found.vmid, reason=str(exc)))
            continue
        ip = await _address(pve, found.vmid)
        adopted.append(
            Adopted(
                node=found.node,
                vmid=found.vmid,
                address=creates[found.node].address,
                outputs=dict(_outputs(pve, found.vmid, found.node, config, key)),
                running=found.status == "running",
                ip=ip,
                found_by=found.found_by,
            )
        )
    return tuple(adopted), tuple(refused)


async def _address(pve: PveDriver, vmid: int) -> str | None:
    try:
        return first_ipv4(await pve.interfaces(vmid))
    except PveError:
        return None


async def establish_host_steps(
    services: Services, plan: Plan, adopted: Iterable[Adopted], emit: Callable[[Event], None]
) -> dict[str, dict[str, Any]]:
    """address -> outputs of the host-level steps the adopted creates depend on whose own
    probe agrees with the outputs `DERIVED` says they would have (in plan order)."""
    by_address = {s.address: s for s in plan.steps}
    needed: set[str] = set()
    todo = [a.address for a in adopted]
    while todo:
        step = by_address[todo.pop()]
        for upstream in (*step.deps, *step.ref_addresses()):
            if upstream not in needed and upstream in by_address:
                needed.add(upstream)
                todo.append(upstream)
    out: dict[str, dict[str, Any]] = {}
    for step in plan.steps:
        derive, kind = DERIVED.get(step.kind), kind_for(step.kind)
        if step.address not in needed or derive is None or kind is None:
            continue
        if any(u not in out for u in (*step.deps, *step.ref_addresses())):
            continue
        args = args_of(step, kind.args_type)
        outputs = derive(args)
        ctx = StepContext(services, step, emit, plan, args)
        try:
            problem = await kind.probe(ctx, step, {}, outputs)
        except Exception as exc:  # a probe that cannot tell establishes nothing
            problem = str(exc)
        if problem is None:
            out[step.address] = outputs
    return out


def import_results(
    plan: Plan,
    adopted: Sequence[Adopted],
    host_steps: Mapping[str, Mapping[str, Any]],
    run_id: int,
    now: float,
) -> list[tuple[StepResult, dict[str, Any] | None]]:
    """The results import files (with the create's resource), pure: each host step
    established, each adopted create (under `adopted_key`), then each node's start (if
    the VM runs) and `wait_ip` (if the agent gave an address), under their run keys."""
    from ._scheduler import run_key, upstream_of

    outputs: dict[str, dict[str, Any]] = {a: dict(o) for a, o in host_steps.items()}
    for item in adopted:
        outputs[item.address] = dict(item.outputs)
    done: dict[str, tuple[str, dict[str, Any]]] = {
        a: (run_key(plan.step(a), {}, {u: outputs[u] for u in upstream_of(plan.step(a))}), o)
        for a, o in outputs.items()
        if a in host_steps
    }
    for item in adopted:
        done[item.address] = (adopted_key(plan.step(item.address)), dict(item.outputs))
        node = item.address.rsplit(".", 1)[0]
        for suffix, wanted in ((".start", item.running), (".wait_ip", item.ip is not None)):
            address = node + suffix
            try:
                step = plan.step(address)
            except KeyError:
                break
            if not wanted or any(u not in outputs for u in upstream_of(step)):
                break
            refs = {}
            for name, ref in step.refs.items():
                source, _, field = ref.partition("#")
                refs[name] = outputs[source][field]
            result = {"ip": item.ip} if suffix == ".wait_ip" else {}
            done[address] = (
                run_key(step, refs, {u: outputs[u] for u in upstream_of(step)}),
                result,
            )
            outputs[address] = result
    resources = {a.address: dict(a.outputs) for a in adopted}
    out: list[tuple[StepResult, dict[str, Any] | None]] = []
    for step in plan.steps:  # in plan order
        if step.address not in done:
            continue
        key, result = done[step.address]
        record = StepResult(
            run_key=key,
            step_hash=step.hash,
            address=step.address,
            kind=step.kind,
            status="ok",
            outputs=result,
            run_id=run_id,
            started=now,
            finished=now,
        )
        out.append((record, resources.get(step.address)))
    return out


def record_import(
    store: Store,
    workspace: str,
    plan: Plan,
    adopted: Sequence[Adopted],
    host_steps: Mapping[str, Mapping[str, Any]],
) -> tuple[str, ...]:
    """File what import established (the caller holds the workspace lock): a run record
    of verb `import`, the results and resources in one transaction, and the applied state
    (the established steps, on top of what was applied with the same hashes). Returns
    the addresses recorded as done."""
    now = time.time()
    previous = store.applied(workspace)
    applied = dict(previous.steps) if previous is not None else {}
    run_id = store.start_run(workspace, plan.hash, "import")
    try:
        records = import_results(plan, adopted, host_steps, run_id, now)
        done = {r.address for r, _ in records}
        keep = done | {s.address for s in plan.steps if applied.get(s.address) == s.hash}
        state = adopted_plan(plan, keep)
        events = [
            RunEvent(address=r.address, kind="finished", message="imported", at=now, host=plan.host)
            for r, _ in records
        ]
        store.put_plan(state.hash, store.put_object(canonical(state)), workspace)
        store.record_steps(workspace, records)
        store.add_events(run_id, events)
        store.set_applied(workspace, state.hash, {s.address: s.hash for s in state.steps})
    except BaseException:
        store.finish_run(run_id, "failed")
        raise
    store.finish_run(run_id, "ok")
    return tuple(r.address for r, _ in records)
