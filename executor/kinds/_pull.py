"""Pull-mode nodes, driver side: what their first boot carries, and waiting for their report.

A pull node is created like any VM, but its cloud-init also writes where the spec server
is (URL and pinned certificate fingerprint), which node it is, a fresh instance id, the
bundle to install, and (unless its posture trusts the network) its credential; a constant
bootstrap then installs pveplan from the server and runs `spec get` and `config apply`.
The driver never logs in: `config.await_report` polls the server until the node reports,
and checks that the spec the node applied is the one the plan expected.

The credential is made here, at apply time: the site token as it is, or a provisioning
token minted now (it carries its issue time, so it could never be part of a plan).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

import trio

from pveplan.planner import AUTH_SECRETS, AwaitReportArgs, PullBoot, PullTimeouts

from .._context import SpecServerRef, StepContext
from .._kinds import StepKind, register
from .._model import Outputs, StepFailed

# Where cloud-init writes the node's pull settings (the node side reads the same files).
PULL_DIR = "/root/.pveplan/pull"
POLL_START = 0.25
POLL_MAX = 2.0
CLIENT_TIMEOUT = 10.0


def spec_server(ctx: StepContext, what: str) -> SpecServerRef:
    server = ctx.services.spec_server
    if server is None:
        raise StepFailed(
            f"{what} needs the spec server, and this run has none: apply starts one when the "
            "plan has pull nodes (or run `pveplan serve`)"
        )
    return server


def credential(ctx: StepContext, identity: str, spec: str | None, auth: str) -> str | None:
    """The token node `identity` presents under posture auth method `auth`."""
    from pveplan.executor.pull._tokens import mint_token

    secret = AUTH_SECRETS.get(auth)
    if secret is None:  # network: the boundary is trusted
        return None
    value = ctx.services.reveal(secret)
    return mint_token(identity, spec, value) if auth == "node_token" else value


def pull_boot(ctx: StepContext, pull: PullBoot) -> tuple[dict[str, Any], str]:
    """The cloud-init additions of a pull node, and its new instance id."""
    from pveplan.executor.pull._bootstrap import bootstrap_argv

    server = spec_server(ctx, f"pull node {pull.identity}")
    instance = secrets.token_hex(16)
    settings = {
        "server": pull.server or server.url,
        "fingerprint": server.fingerprint,
        "identity": pull.identity,
        "instance": instance,
        "bundle": ctx.services.bundle().hash,
    }
    files = [
        {
            "path": f"{PULL_DIR}/pull.json",
            "permissions": "0600",
            "content": json.dumps(settings, sort_keys=True) + "\n",
        }
    ]
    token = credential(ctx, pull.identity, pull.spec, pull.auth)
    if token is not None:
        files.append({"path": f"{PULL_DIR}/token", "permissions": "0600", "content": token})
    extra = {
        "write_files": files,
        "runcmd": [bootstrap_argv()],
    }
    return extra, instance


def pull_instance(user_data: Mapping[str, Any]) -> str | None:
    """The instance id a VM's existing user-data gave it (for adopting a pull node)."""
    for entry in user_data.get("write_files") or []:
        if isinstance(entry, dict) and entry.get("path") == f"{PULL_DIR}/pull.json":
            try:
                return str(json.loads(entry.get("content") or "{}")["instance"])
            except (ValueError, KeyError, TypeError):
                return None
    return None


@register
class AwaitReport(StepKind):
    """Wait, polling the spec server, until a pull node reports it converged on its spec."""

    name = "config.await_report"
    tier = "extended"  # the seeds' 300 s for the spec and 300 s for the config, in turn

    def _client(self, ctx: StepContext, step: Any) -> Any:
        from pveplan.executor.pull._client import PullClient

        args = ctx.args_as(AwaitReportArgs)
        server = spec_server(ctx, f"waiting for pull node {args.identity}")
        token = credential(ctx, args.identity, args.spec_name, args.auth)
        return PullClient(args.server or server.url, server.fingerprint, token=token, timeout=10.0)

    async def apply(self, ctx: StepContext, step: Any, refs: Mapping[str, Any]) -> Outputs:
        args = ctx.args_as(AwaitReportArgs)
        identity = args.identity
        instance = str(refs["instance"])
        client = self._client(ctx, step)
        try:
            status = await self._wait(ctx, client, identity, instance, args.timeouts)
        finally:
            client.close()
        report = status["report"]
        if report["status"] != "converged":
            raise StepFailed(
                f"pull node {identity} failed to converge: {report.get('error') or 'no reason'}"
            )
        if report["spec_hash"] != args.spec_hash:
            raise StepFailed(
                f"pull node {identity} converged on spec {report['spec_hash'][:12]}, but the "
                f"plan expected {args.spec_hash[:12]}: the spec server serves another site "
                "config than the plan was made from (re-plan, or reload the server: SIGHUP)"
            )
        for line in report.get("drift") or []:
            ctx.log(f"{identity} repaired: {line}")
        return {
            "spec_hash": report["spec_hash"],
            "instance": instance,
            "changed": len(report.get("changed") or []),
        }

    async def _wait(
        self,
        ctx: StepContext,
        client: Any,
        identity: str,
        instance: str,
        timeouts: PullTimeouts,
    ) -> dict[str, Any]:
        """Poll until the node's report for `instance` arrives; each phase has its limit."""
        from pveplan.executor.pull._client import HttpStatusError, PinMismatch, PullError

        phase, started = "waiting", time.monotonic()
        limit = float(timeouts.spec)
        delay = POLL_START
        last_error = ""
        while True:
            try:
                status = await trio.to_thread.run_sync(
                    lambda: client.get_json(f"/report/{identity}", {"instance": instance}),
                    abandon_on_cancel=True,
                )
            except PinMismatch as exc:
                raise StepFailed(str(exc)) from None
            except HttpStatusError as exc:
                if exc.status in (401, 403, 404, 409):
                    raise StepFailed(
                        f"the spec server refused to report on {identity}: {exc}"
                    ) from None
                last_error = str(exc)
                status = {"phase": phase}
            except PullError as exc:  # the server restarting or busy: keep polling
                last_error = str(exc)
                status = {"phase": phase}
            if status.get("phase") == "reported":
                return status
            if status.get("phase") == "fetched" and phase == "waiting":
                ctx.log(f"{identity} fetched its spec; waiting for it to converge")
                phase, started, limit = "fetched", time.monotonic(), float(timeouts.config)
            if time.monotonic() - started > limit:
                what = "fetch its spec" if phase == "waiting" else "report after fetching its spec"
                hint = f" (last error: {last_error})" if last_error else ""
                raise StepFailed(
                    f"pull node {identity} did not {what} within {limit:g} s{hint}; its "
                    "cloud-init output log (/var/log/cloud-init-output.log) says why"
                )
            await trio.sleep(delay)
            delay = min(delay * 1.5, POLL_MAX)

    async def probe(
        self, ctx: StepContext, step: Any, refs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> str | None:
        """Drift as the node last reported it (a node that re-converged on a timer says
        what it repaired); a server that has no report yet knows of no drift."""
        from pveplan.executor.pull._client import PullError

        args = ctx.args_as(AwaitReportArgs)
        identity = args.identity
        client = self._client(ctx, step)
        try:
            status = await trio.to_thread.run_sync(
                lambda: client.get_json(f"/report/{identity}"), abandon_on_cancel=True
            )
        except PullError as exc:  # no news is not drift: the node may be fine
            ctx.log(f"cannot ask the spec server about {identity}: {exc}")
            return None
        finally:
            client.close()
        report = status.get("report")
        if not report:
            return None
        if report["status"] != "converged":
            return f"{identity} last reported a failure: {report.get('error')}"
        if report["spec_hash"] != args.spec_hash:
            return f"{identity} last converged on another spec ({report['spec_hash'][:12]})"
        return None
