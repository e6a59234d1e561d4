"""`probe_node_ssh`: after a run, can every node of the tree be reached over SSH?

homestak's `test` verb checks each node it created with a command over SSH. Which node is
where comes from the run's report: a node's address and pinned host key are outputs of its
own `wait_ip` and `create` steps, and a nested node's come back through its host's
`subplan.delegate` step as `node.NAME.FIELD` outputs. Only reads: `true` is the command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from .channels import ChannelError, SshTarget

if TYPE_CHECKING:
    from pveplan.planner import Plan

    from ._context import Services
    from ._model import RunReport

VERIFY_TIMEOUT = 30
"""Seconds for `true` on one node."""


async def probe_node_ssh(
    services: Services, plan: Plan, report: RunReport
) -> dict[str, str | None]:
    """SSH to every node of `plan`'s tree (nested ones through the chain of their hosts,
    as root on each), each with its pinned key; `true` must succeed.
    Node name -> problem (None: fine)."""
    from .kinds._delegate import NODE_FIELDS

    field_step = {field: step for step, fields in NODE_FIELDS.items() for field in fields}
    known: dict[str, Any] = {}
    for outcome in report.outcomes:
        for key, value in outcome.outputs.items():
            known[f"{outcome.address}#{key}"] = value
            if key.startswith("node."):  # a nested node, from its delegate
                name, field = key[5:].rsplit(".", 1)
                known[f"node.{name}.{field_step[field]}#{field}"] = value

    def target(node: str, user: str, via: SshTarget | None) -> SshTarget | None:
        ip = known.get(f"node.{node}.wait_ip#ip")
        # a VM's key comes from its create, a container's from its wait_ip (and a nested
        # node's, reported by its delegate, is filed under one of the two)
        key = known.get(f"node.{node}.create#host_key") or known.get(
            f"node.{node}.wait_ip#host_key"
        )
        if not ip or not key:
            return None
        found = services.hosts.vm_target(plan.host, str(ip), user, str(key), node)
        return msgspec.structs.replace(found, via=via)

    results: dict[str, str | None] = {}

    async def level(level_plan: Plan, via: SshTarget | None) -> None:
        for step in level_plan.steps:
            if step.kind != "ssh.wait":
                continue
            node = step.address.split(".")[1]
            found = target(node, str(step.args.get("user") or "homestak"), via)
            if found is None:
                results[node] = "no address or host key recorded"
                continue
            try:
                channel = await services.pool.channel(found)
                result = await channel.run(["true"], timeout=VERIFY_TIMEOUT)
            except ChannelError as exc:
                results[node] = str(exc)
                continue
            status = result.exit_status
            results[node] = None if status == 0 else f"`true` exited {status}"
        for address, subplan in level_plan.subplans.items():
            host = address.split(".")[1]
            await level(subplan, target(host, "root", via))

    await level(plan, None)
    return results
