"""Which existing VMs `pveplan import` may adopt as which nodes: the rules, pure.

An operator names pairs (`db=120`), or `--discover` proposes them from one listing of the
host; either way every pair then passes the same checks against the manifest, the store
and that listing (`match_claims`), and a pair that fails one is refused with its reason,
never adopted half-way. The rules, and why:

- the node must be a VM node of the manifest on the target host itself: a nested node's
  VM is not on this host's listing, and a container is no VM;
- neither the node nor the VMID may already be recorded in the workspace (a second
  import would overwrite what an apply recorded), and no VMID may be named twice;
- a VMID the manifest pins for another node is that node's, and a node that pins its own
  VMID can only be that VM (else apply would create the pinned one anyway);
- the VM must be a QEMU guest and no template, carry the node's name (a name differs
  only when the pair is a typo, and apply finds a node's VM by name), and not be
  tagged for another pveplan manifest (it belongs to that workspace).

`--discover` (`discover_claims`) proposes, for each VM node not recorded, the VMs that
carry the node's name and at least one more sign: the manifest's tag
(`pveplan-<manifest>`), the node's pinned VMID, or a VMID in `--vmid-range`. A name alone
proves nothing (two labs may both have a `db`), as destroy's search holds too. Several
VMs for one node are refused as ambiguous: the operator names the one meant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from ._leftovers import MANAGED, Frozen, Wanted, manifest_tag, vm_tags

FoundBy = Literal["given", "tag", "name+vmid", "name+range"]


class Claim(Frozen, kw_only=True):
    """`node` is to be VM `vmid` (named by the operator, or proposed by `--discover`)."""

    node: str
    vmid: int
    found_by: FoundBy = "given"


class Candidate(Frozen, kw_only=True):
    """A claim that passed every rule: the VM as the listing showed it."""

    node: str
    vmid: int
    vm_name: str
    status: str
    found_by: FoundBy = "given"


class ImportRefusal(Frozen, kw_only=True):
    """A claim (or, for `--discover`, a node) that is not adopted, and why: the reason
    names the cause and what to do."""

    node: str
    vmid: int | None = None
    reason: str


class Matched(Frozen, kw_only=True):
    adopt: tuple[Candidate, ...] = ()
    refused: tuple[ImportRefusal, ...] = ()


def _vmid(vm: Mapping[str, Any]) -> int | None:
    value = vm.get("vmid")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def match_claims(
    wanted: Sequence[Wanted],
    claims: Sequence[Claim],
    vms: Iterable[Mapping[str, Any]],
    manifest: str,
    *,
    host: str,
    nodes: Iterable[str] = (),
    recorded: Mapping[str, int | None] = {},
) -> Matched:
    """Each claim adopted or refused (in claim order), by the rules above.

    `wanted`: the manifest's VM nodes (`wanted_nodes`); `nodes`: every node name of the
    manifest (to tell a container node from a name that is no node); `vms`: the one
    listing of `host`; `recorded`: node -> vmid the workspace's store already records."""
    by_name = {w.name: w for w in wanted}
    known = set(nodes) | set(by_name)
    pinned = {w.vmid: w.name for w in wanted if w.vmid is not None}
    recorded_vmids = {v: n for n, v in recorded.items() if v is not None}
    listing = {v: vm for vm in vms if (v := _vmid(vm)) is not None}
    tag = manifest_tag(manifest)
    node_count: dict[str, int] = {}
    vmid_count: dict[int, int] = {}
    for claim in claims:
        node_count[claim.node] = node_count.get(claim.node, 0) + 1
        vmid_count[claim.vmid] = vmid_count.get(claim.vmid, 0) + 1
    adopt: list[Candidate] = []
    refused: list[ImportRefusal] = []
    for claim in claims:
        node, vmid = claim.node, claim.vmid

        def refuse(reason: str, node: str = node, vmid: int = vmid) -> None:
            refused.append(ImportRefusal(node=node, vmid=vmid, reason=reason))

        want = by_name.get(node)
        vm = listing.get(vmid)
        name = str(vm.get("name") or "") if vm is not None else ""
        if node_count[node] > 1:
            refuse(f"node {node} is named more than once: give one VMID per node")
        elif vmid_count[vmid] > 1:
            refuse(f"VMID {vmid} is named for more than one node: one VM is one node")
        elif node not in known:
            names = ", ".join(sorted(known)) or "none"
            refuse(f"the manifest has no node {node!r} (its nodes: {names}): check the name")
        elif want is None:
            refuse(f"node {node} is not a VM node: import adopts VMs (type vm or pve) only")
        elif want.path:
            refuse(
                f"node {node} lives inside nested host {want.path[-1]}, not on {host}: "
                "import adopts VMs of the target host; apply creates the nested ones"
            )
        elif node in recorded:
            refuse(
                f"node {node} is already recorded in the store (VM {recorded[node]}): there "
                "is nothing to import; `pveplan status` shows how it stands"
            )
        elif vmid in recorded_vmids:
            refuse(
                f"VM {vmid} is already recorded in the store as node {recorded_vmids[vmid]}: "
                "name the VM that is this node"
            )
        elif vmid in pinned and pinned[vmid] != node:
            refuse(
                f"VMID {vmid} is node {pinned[vmid]}'s in the manifest, not {node}'s: "
                "name the VM that is this node"
            )
        elif want.vmid is not None and want.vmid != vmid:
            refuse(
                f"the manifest pins VMID {want.vmid} for node {node}: import {node}="
                f"{want.vmid}, or set vmid = {vmid} in the manifest to adopt VM {vmid}"
            )
        elif vm is None:
            refuse(f"there is no VM {vmid} on {host}: check the VMID (`qm list` on the host)")
        elif str(vm.get("type") or "qemu") != "qemu":
            refuse(f"{vmid} on {host} is a {vm.get('type')} guest, not a VM: node {node} is a VM")
        elif vm.get("template") in (1, True, "1"):
            refuse(f"VM {vmid} is a template: pveplan does not adopt templates as nodes")
        elif name != node:
            refuse(
                f"VM {vmid} is named {name!r}, not {node!r}: if it is node {node}, rename it "
                f"first (`qm set {vmid} --name {node}`); else name the right VMID"
            )
        elif (other := _other_manifest(vm_tags(vm), tag)) is not None:
            refuse(
                f"VM {vmid} carries tag {other}: it belongs to another pveplan manifest's "
                "workspace; import it there, or remove that tag if it is wrong"
            )
        else:
            adopt.append(
                Candidate(
                    node=node,
                    vmid=vmid,
                    vm_name=name,
                    status=str(vm.get("status") or "unknown"),
                    found_by=claim.found_by,
                )
            )
    return Matched(adopt=tuple(adopt), refused=tuple(refused))


def _other_manifest(tags: set[str], mine: str) -> str | None:
    prefix = f"{MANAGED}-"
    return next((t for t in sorted(tags) if t.startswith(prefix) and t != mine), None)


def discover_claims(
    wanted: Sequence[Wanted],
    vms: Iterable[Mapping[str, Any]],
    manifest: str,
    *,
    recorded: Mapping[str, int | None] = {},
    vmid_range: tuple[int, int] | None = None,
) -> tuple[tuple[Claim, ...], tuple[ImportRefusal, ...]]:
    """The claims `--discover` proposes from one listing (for `match_claims` to check),
    and the nodes it refuses to guess for (several VMs could be the node). Nodes not
    recorded, on the target host, in manifest order; a node with no candidate is absent."""
    tag = manifest_tag(manifest)
    listing = [vm for vm in vms if _vmid(vm) is not None]
    claims: list[Claim] = []
    refused: list[ImportRefusal] = []
    for want in wanted:
        if want.path or want.name in recorded:
            continue
        found: list[Claim] = []
        for vm in sorted(listing, key=lambda v: _vmid(v) or 0):
            vmid = _vmid(vm)
            if vmid is None or str(vm.get("name") or "") != want.name:
                continue
            if tag in vm_tags(vm):
                found.append(Claim(node=want.name, vmid=vmid, found_by="tag"))
            elif want.vmid == vmid:
                found.append(Claim(node=want.name, vmid=vmid, found_by="name+vmid"))
            elif vmid_range is not None and vmid_range[0] <= vmid <= vmid_range[1]:
                found.append(Claim(node=want.name, vmid=vmid, found_by="name+range"))
        if len(found) == 1:
            claims.append(found[0])
        elif found:
            ids = ", ".join(str(c.vmid) for c in found)
            refused.append(
                ImportRefusal(
                    node=want.name,
                    reason=f"several VMs could be node {want.name} ({ids}): name the one "
                    f"meant, as {want.name}=VMID",
                )
            )
    return tuple(claims), tuple(refused)


def parse_vmid_range(text: str) -> tuple[int, int]:
    """`A-B` (inclusive, A <= B, PVE's VMID bounds) -> (A, B); ValueError saying why."""
    low, sep, high = text.partition("-")
    low, high = low.strip(), high.strip()
    if not sep or not all(p.isascii() and p.isdigit() for p in (low, high)):
        raise ValueError(f"{text!r} is not a VMID range: write it as A-B, e.g. 100-199")
    a, b = int(low), int(high)
    if not (100 <= a <= b <= 999_999_999):
        raise ValueError(
            f"{text!r} is not a VMID range: PVE's VMIDs run from 100 to 999999999, low-high"
        )
    return a, b


def parse_claim(text: str) -> Claim:
    """`NODE=VMID` -> Claim; ValueError saying what is wrong and how to write it."""
    node, sep, vmid = text.partition("=")
    node, vmid = node.strip(), vmid.strip()
    if not sep or not node or not vmid:
        raise ValueError(f"{text!r}: write each VM to import as NODE=VMID, e.g. db=120")
    if not (vmid.isascii() and vmid.isdigit()) or not (100 <= int(vmid) <= 999_999_999):
        raise ValueError(f"{text!r}: the VMID must be a number from 100 to 999999999")
    return Claim(node=node, vmid=int(vmid))
