"""`pveplan apply | destroy` and homestak's `create | destroy | test`: plans, run.

`apply` without a plan file plans first, shows the diff and asks for consent
(`_consent`: on a terminal, else `--yes` or a refusal); with a plan file (the reviewed
consent) it refuses one that is unsigned where signatures are required, stale against
the store, or made from inputs that moved. Every run holds the workspace lock, so two
applies of one workspace never interleave.

Exit codes: 0 success (or nothing to do), 1 a failed step or a refusal, 130 interrupted;
`apply --detailed-exitcode`: 2 when changes were applied and all succeeded.
"""

from __future__ import annotations

import argparse
import functools
import gc
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from pveplan.planner import (
    Plan,
    PlanError,
    PlanFile,
    canonical,
    diff_plans,
    placed_line,
    plan_changes,
    pull_identities,
    read_plan_file,
    render_changes,
)

from ._consent import at_risk, confirm
from ._drift import refresh_wanted, with_live_drift
from ._plan import make_plan, rehearsal_note, summarize_with_drift, workspace_destroy
from ._select import SiteCache, simulating, site_root
from ._serve import serve_for_run
from ._session import driver_key, hosts_info, open_run_store, plan_hosts, run_trio
from ._state import applied_plan, lock_timeout
from ._targets import (
    destroyed_considered,
    no_sweep,
    old_view,
    target_hosts_of,
    targets_of,
    warn,
)
from ._verb_end import homestak_end, node_order, verb_nodes

if TYPE_CHECKING:
    from pveplan.executor import RunReport
    from pveplan.planner import SiteConfig

    from . import Console

INTERRUPTED = 130


class Prepared:
    """What a run needs: the plan (and its file), the site, the workspace."""

    def __init__(
        self, plan_file: PlanFile, site: SiteConfig, old: Plan | None, *, saved: bool = False
    ) -> None:
        self.plan_file = plan_file
        self.site = site
        self.old = old
        self.saved = saved
        """A saved (reviewed) plan file: it is the consent, nobody is asked again."""

    @property
    def plan(self) -> Plan:
        return self.plan_file.plan

    @property
    def workspace(self) -> str:
        return self.plan_file.header.workspace


def _is_plan_file(path: str) -> bool:
    return path.endswith(".json")


def collect_less() -> None:
    """A run holds a step, result, outcome and event per step, by the ten thousand; every
    700 allocations (the default) Python's cycle collector walked them again: a quarter of
    the CPU of a 10,000-VM no-op apply. Nothing here makes cycles in bulk, so it runs
    after 50,000 allocations instead: the same collections, far less often."""
    gc.set_threshold(50_000, *gc.get_threshold()[1:])


def prepare(args: argparse.Namespace, console: Console) -> Prepared:
    """The plan to apply: a saved plan file (checked for signatures, moved inputs and
    staleness), or one compiled now (refused where the site requires signed plans)."""
    collect_less()
    files = list(getattr(args, "files", None) or [])
    if len(files) == 1 and _is_plan_file(files[0]):
        return _prepare_plan_file(args, console, files[0])
    plan_file, old, site = make_plan(args, console)
    if args.command != "destroy":  # drift is an input of every plan made here
        plan_file = with_live_drift(args, console, plan_file, site, old)
    if site.site.trusted_plan_keys and args.command != "destroy":
        raise PlanError.at(
            None,
            f"the site config {site.root} lists trusted_plan_keys, so it runs signed plans only",
            "save the plan (`pveplan plan ... -o FILE`), have it reviewed and signed "
            "(`pveplan sign FILE --key KEYFILE`), then `pveplan apply FILE`",
        )
    return Prepared(plan_file, site, old)


def _prepare_plan_file(args: argparse.Namespace, console: Console, name: str) -> Prepared:
    """A saved plan, refused unless signed as required, made from the inputs on disk,
    and planned against what the store records as applied now."""
    from pveplan.dsl import load_manifest
    from pveplan.planner import moved_inputs, require_signature, trusted_keys

    plan_file = read_plan_file(Path(name))
    required = getattr(args, "require_signature", None) or ()
    signer, refusal = None, None
    if required:  # before anything else reads the plan's inputs
        try:
            signer = require_signature(plan_file, trusted_keys(required, ()), name)
        except PlanError as exc:
            refusal = exc
    site = SiteCache().get(plan_site_root(args, console, Path(name), plan_file))
    if signer is None and site.site.trusted_plan_keys:
        signer = require_signature(
            plan_file, trusted_keys(required, site.site.trusted_plan_keys), name
        )
    elif refusal is not None:
        raise refusal
    if signer is not None:
        console.error(f"Plan {plan_file.hash} is signed by trusted key {signer}.")
    _check_rehearsal(args, console, plan_file, site, name)
    manifest = _manifest_of(args, console, plan_file, site.root)
    moved = moved_inputs(plan_file, load_manifest(str(manifest)), site)
    if moved:
        raise PlanError.at(
            None,
            f"plan file {name} no longer matches its inputs: " + "; ".join(moved),
            f"re-plan from what is on disk now (`pveplan plan -M {plan_file.plan.manifest} "
            f"-H {plan_file.plan.host} -o {name}`), review the diff, and apply that",
        )
    old = applied_plan(console, plan_file.header.workspace)
    current = old.hash if old else None
    if plan_file.header.planned_against != current:
        raise PlanError.at(
            None,
            f"plan file {name} is stale: it was planned against "
            f"{plan_file.header.planned_against or 'nothing applied'}, and the store now "
            f"records {current or 'nothing'} as applied to {plan_file.header.workspace}",
            "something was applied since: re-run `pveplan plan ... -o FILE`, review, apply that",
        )
    return Prepared(plan_file, site, old, saved=True)


def _check_rehearsal(
    args: argparse.Namespace, console: Console, plan_file: PlanFile, site: SiteConfig, name: str
) -> None:
    """A plan made with --simulate runs only with --simulate, and only on the simulator
    (its host is `sim:HOST`); a plan for a real host is never taken as a rehearsal."""
    from pveplan.planner import rehearsed_host

    host = plan_file.plan.host
    real = rehearsed_host(host)
    if real is not None and not simulating(args, console):
        raise PlanError.at(
            None,
            f"plan file {name} is a rehearsal: it was planned with --simulate for {real}, "
            f"so it never runs on {real} itself",
            f"apply it with --simulate to run the rehearsal on the simulator; for {real}, plan "
            f"without --simulate (`pveplan plan -M {plan_file.plan.manifest} -H {real} -o FILE`), "
            "review, and apply that",
        )
    if real is None and simulating(args, console) and not site.host(host).sim:
        raise PlanError.at(
            None,
            f"plan file {name} is for the real host {host}, and --simulate only runs rehearsals",
            f"plan the rehearsal (`pveplan plan -M {plan_file.plan.manifest} -H {host} "
            "--simulate -o FILE`) and apply that with --simulate",
        )


def plan_site_root(
    args: argparse.Namespace, console: Console, path: Path, plan_file: PlanFile
) -> Path:
    """The site config a saved plan was made with: --site-config, else where its header
    says (relative to the plan file's folder, then to the working directory), else the
    usual discovery. Its digests are checked after, so a wrong guess is refused."""
    recorded = plan_file.header.site_config
    if getattr(args, "site_config", None) is None and recorded:
        for base in (path.parent, console.cwd):
            candidate = base / recorded
            if (candidate / "site.yaml").is_file() or candidate.is_dir():
                return candidate
    return site_root(args, console, None)


def _manifest_of(
    args: argparse.Namespace, console: Console, plan_file: PlanFile, root: Path
) -> Path:
    """The manifest a plan file was made from: named by -M / --manifest-file, else the
    site config's manifest of the plan's name."""
    from ._select import find_manifest

    if getattr(args, "manifest_file", None):
        return Path(args.manifest_file)
    name = getattr(args, "manifest", None) or plan_file.plan.manifest
    try:
        return find_manifest(root, name)
    except PlanError as exc:
        raise PlanError.at(
            None,
            f"cannot check the plan file against its manifest: {exc.summary}",
            "name the manifest it was made from with --manifest-file FILE",
        ) from None


def _still_current(store: Any, prepared: Prepared) -> None:
    """Under the workspace lock: nothing was applied since the plan was diffed (another
    run may have held the lock while this one planned, asked, or waited for it)."""
    state = store.applied(prepared.workspace)
    now = state.plan_hash if state is not None else None
    expected = prepared.old.hash if prepared.old is not None else None
    if now != expected:
        raise PlanError.at(
            None,
            f"another run applied {now or 'a destroy'} to {prepared.workspace} since this "
            f"plan was made against {expected or 'nothing applied'}",
            "re-plan against what is applied now, review, and apply that",
        )


def _display(args: argparse.Namespace, console: Console) -> Any:
    from pveplan.executor import LiveDisplay, PlainDisplay

    stream = console.err if args_json(args) else console.out  # stdout holds the JSON
    verbose = bool(getattr(args, "verbose", False))
    if stream.isatty() and not console.env.get("NO_COLOR"):
        return LiveDisplay(stream, verbose=verbose)
    return PlainDisplay(stream, verbose=verbose)


def execute_run(
    args: argparse.Namespace,
    console: Console,
    prepared: Prepared,
    plan: Plan,
    verb: str,
    *,
    after: Any = None,
) -> tuple[RunReport, float, Any]:
    """Run `plan` (apply or destroy) on the prepared workspace, under its lock.

    `after(services, report)` runs in the same session (SSH pool still open) and its
    result is returned too: `test` verifies SSH with it.
    """
    from pveplan.executor import run_workspace

    display = _display(args, console)
    display.begin(plan, getattr(args, "parallelism", None))
    running: dict[str, float] = {}
    started = time.time()
    wait = lock_timeout(prepared.site, getattr(args, "lock_timeout", None))
    with (
        open_run_store(console) as store,
        store.lock_workspace(prepared.workspace, plan=plan.hash, wait=wait) as lock,
    ):
        if lock.recovered_from is not None:
            console.error(
                f"note: the last run of {prepared.workspace} "
                f"({lock.recovered_from.describe()}) ended without releasing its lock; "
                "taking it over"
            )
        if verb == "apply":
            _still_current(store, prepared)
        public = driver_key(console)[1]
        # Every host the run may reach: its plan's, the manifest's and the applied plan's
        # (a destroy's search), and any a recorded resource names (`host:` nodes).
        resources = store.resources(prepared.workspace)
        placed = {str(r.outputs["host"]) for r in resources if r.outputs.get("host")}
        names = (*plan_hosts(plan, prepared.plan, prepared.old), *sorted(placed))
        hosts = hosts_info(console, prepared.site, tuple(dict.fromkeys(names)), public, store)
        plan_object = store.put_object(canonical(plan)) if verb == "apply" else None

        async def body(services: Any) -> tuple[RunReport, Any]:
            services.probe_live = refresh_wanted(args)  # nested levels probe their own
            report = await run_workspace(
                plan,
                plan_object,
                services,
                display,
                verb=verb,  # type: ignore[arg-type]
                parallelism=getattr(args, "parallelism", None),
                refresh=getattr(args, "refresh", None) is True,  # bare: every step
                running=running,
            )
            extra = await after(services, report) if after is not None else None
            return report, extra

        try:
            serve = None
            if verb == "apply" and pull_identities(plan):
                serve = functools.partial(serve_for_run, console, store, prepared.site, plan)
            report, extra = run_trio(
                console, store, prepared.workspace, hosts, prepared.site, body, serve
            )
            report = display.with_nested(report)  # the nested hosts' steps, as displayed
        except BaseException as exc:
            if not _is_interrupt(exc):
                raise
            what = ", ".join(sorted(running)) or "nothing"
            raise Interrupted(
                f"interrupted: every finished step is recorded; was running: {what}. "
                "Run the same command again to resume."
            ) from None
        finally:
            display.close()
    return report, time.time() - started, extra


def _is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C, possibly wrapped in exception groups by trio's nurseries."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(KeyboardInterrupt) is not None
    return False


class Interrupted(Exception):
    """Ctrl-C during a run: exit 130 with what was running."""


def _print_failures(console: Console, report: RunReport) -> None:
    for outcome in report.outcomes:
        if outcome.status == "failed":
            console.error(f"error: {outcome.address}: {outcome.error}")


def run_apply(args: argparse.Namespace, console: Console) -> int:
    from pveplan.executor import node_rows, node_table, summary

    prepared = prepare(args, console)
    targets = prepared.plan.targets
    if targets and prepared.saved:
        warn(console, targets)  # a saved targeted plan: say so again when it runs
    view = old_view(prepared.old, targets)
    changes = diff_plans(prepared.plan, view, prepared.plan_file.header.sources)
    counts = summarize_with_drift(changes, prepared.plan)
    console.print(
        console.style.bold(
            f"pveplan: {prepared.plan.manifest} on {prepared.plan.host} (plan {prepared.plan.hash})"
        )
    )
    rehearsal_note(prepared.plan.host, console)
    console.print(render_changes(changes, counts, console.style, drift=prepared.plan.drift))
    risks = at_risk(changes)
    # homestak's `create` never asked (it never destroyed): it asks only when it would.
    ask = risks if args.command == "create" else counts.changes and not prepared.saved
    if ask and not confirm(args, console, "Apply these changes?", risks):
        console.print("Apply cancelled.")
        return 1
    started = time.time()
    try:
        report, seconds, _ = execute_run(args, console, prepared, prepared.plan, "apply")
    except Interrupted as exc:
        console.error(str(exc))
        return INTERRUPTED
    _print_failures(console, report)
    if args.command == "create":  # homestak's verb: its report, its statuses, its files
        code = homestak_end(args, console, prepared, "create", report, prepared.plan, started)
        console.print(summary(report, seconds, "apply"))
        return code
    if table := node_table(node_rows(report, prepared.plan)):
        console.print(table)
    console.print(summary(report, seconds, "apply"))
    for item in prepared.plan.drift:
        if item.fix == "report":  # never pretended converged
            console.error(f"warning: not converged: {placed_line(item)}")
    if report.status != "ok":
        return 1
    return 2 if getattr(args, "detailed_exitcode", False) and counts.changes else 0


def run_destroy(args: argparse.Namespace, console: Console) -> int:
    """pveplan destroy / homestak destroy: what the store says is applied, then what is
    left of the manifest on the host (`_leftovers`: by tag, and by name+vmid)."""
    from pveplan.executor import summary

    from . import _leftovers as leftovers

    if getattr(args, "dry_run", False):
        if targets_of(args) or target_hosts_of(args):  # the cut destroy's diff; the
            # host-wide search is not targeted
            from ._plan import run_dry_run_verb

            return run_dry_run_verb(args, console)
        return leftovers.run_destroy_dry_run(args, console)
    prepared = prepare(args, console)
    destroy = workspace_destroy(prepared.plan_file, prepared.old, console).plan
    discover = bool(getattr(args, "discover", False))
    targets = destroy.targets
    if targets and discover:
        raise PlanError.at(
            None,
            "--discover destroys what it finds of the whole manifest, so it cannot be -targeted",
            "leave out --discover to destroy only the -target nodes the store records",
        )
    searched = ", ".join(plan_hosts(prepared.plan))  # each host the manifest's nodes are on
    if discover:  # what is on the host alone, whatever the store says
        destroy = Plan(
            manifest=destroy.manifest, host=destroy.host, action="destroy", hash=destroy.hash
        )
    if not args_json(args):
        console.print(
            f"Destroying {', '.join(targets)} in {prepared.workspace}: "
            f"{len(destroy.steps)} recorded step(s)."
            if targets
            else f"Destroying {prepared.workspace}: {len(destroy.steps)} recorded step(s), then "
            f"what is left on {searched}: VMs tagged pveplan-{destroy.manifest}, and "
            "VMs named as a node at its vmid."
        )
    view = old_view(prepared.old, targets, destroy=True)
    risks = at_risk(destroyed_considered(plan_changes(destroy, view), targets))
    if not targets and (discover or not risks):
        risks = [
            *risks,
            f"any VM on {searched} tagged pveplan-{destroy.manifest}, or named as a node "
            "of the manifest at its vmid (and whatever runs inside such a PVE host)",
        ]
    what = ", ".join(targets) if targets else f"everything in {prepared.workspace}"
    if not confirm(args, console, f"Destroy {what}?", risks):
        console.print("Destroy cancelled.")
        return 1
    # A targeted destroy leaves the rest alone: no search for what else is on the host.
    after = (
        no_sweep
        if targets
        else leftovers.after_destroy(leftover_search(prepared, console, destroy))
    )
    started = time.time()
    try:
        report, seconds, swept = execute_run(
            args, console, prepared, destroy, "destroy", after=after
        )
    except Interrupted as exc:
        console.error(str(exc))
        return INTERRUPTED
    for error in swept.errors:
        console.error(f"error: {error}")
    if swept.errors:
        report = msgspec.structs.replace(report, status="failed")
    leftovers.warn_refused(console, swept.leftovers)
    _print_failures(console, report)
    if not args_json(args):
        leftovers.print_swept(console, swept, searched)
    elif swept.leftovers.found or swept.leftovers.refused:
        console.error(leftovers.HINT)  # stderr: stdout holds the JSON
    nodes = verb_nodes(args, console, prepared, report, destroy, layout=prepared.plan)
    code = homestak_end(
        args,
        console,
        prepared,
        "destroy",
        report,
        destroy,
        started,
        nodes=leftovers.with_findings(nodes, swept.findings),
    )
    if not args_json(args):
        console.print(summary(report, seconds, "destroy"))
    return code


def leftover_search(prepared: Prepared, console: Console, destroy: Plan) -> Any:
    """What a destroy of `prepared`'s workspace looks for on its host after its recorded
    steps (see `_leftovers`): the manifest's VM nodes the store does not record."""
    from ._leftovers import Search
    from ._state import applied_resources

    return Search(prepared.plan, destroy, applied_resources(console, prepared.workspace))


def args_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json_output", False))


def run_create(args: argparse.Namespace, console: Console) -> int:
    """homestak's `create`: apply without asking (the seeds never asked), unless the
    plan would destroy or replace a VM, which the seeds' create never did."""
    if args.dry_run:
        from ._plan import run_dry_run_verb

        return run_dry_run_verb(args, console)
    if not args_json(args):
        return run_apply(args, console)
    prepared = prepare(args, console)
    started = time.time()
    risks = at_risk(diff_plans(prepared.plan, old_view(prepared.old, prepared.plan.targets)))
    if risks and not confirm(args, console, "Apply these changes?", risks):
        from ._homestak_report import pending_nodes, verb_report
        from ._report_files import emit_report

        nodes = pending_nodes(prepared.plan, node_order(args, console, prepared))
        data = verb_report("create", False, 0.0, nodes, error="cancelled")
        host = prepared.plan.host
        return emit_report(args, console, data, host=host, subject="", started=started, write=False)
    try:
        report, _, _ = execute_run(args, console, prepared, prepared.plan, "apply")
    except Interrupted as exc:
        console.error(str(exc))
        return INTERRUPTED
    _print_failures(console, report)
    return homestak_end(args, console, prepared, "create", report, prepared.plan, started)


def run_test(args: argparse.Namespace, console: Console) -> int:
    """homestak's `test`: create, verify SSH on every node, destroy (also after a failure
    when cleanup_on_failure). Its nodes are reported as the create left them (iac-driver's
    way: a rolled-back node `destroyed`), its phases as passed, failed or skipped."""
    from ._homestak_report import phases_of_test

    if args.dry_run:
        from ._plan import run_dry_run_verb

        return run_dry_run_verb(args, console)
    prepared = prepare(args, console)
    started = time.time()
    skips = getattr(args, "skips", frozenset())  # --skip verify / destroy (_homestak_flags)
    verify = None if "verify" in skips else verify_ssh(prepared.plan)
    try:
        report, seconds, verified = execute_run(
            args, console, prepared, prepared.plan, "apply", after=verify
        )
        verified = verified or {}
    except Interrupted as exc:
        console.error(str(exc))
        return INTERRUPTED
    _print_failures(console, report)
    created = report.status == "ok"
    problems = {name: problem for name, problem in verified.items() if problem}
    for name, problem in problems.items():
        console.error(f"error: {name}: {problem}")
    down = None
    if "destroy" not in skips and (created or prepared.plan.settings.cleanup_on_failure):
        fresh = applied_plan(console, prepared.workspace) or prepared.plan
        destroy = workspace_destroy(
            PlanFile(hash=fresh.hash, plan=fresh, header=prepared.plan_file.header), fresh, console
        ).plan
        from ._leftovers import after_destroy

        search = leftover_search(prepared, console, destroy)
        run, down_seconds, swept = execute_run(
            args, console, prepared, destroy, "destroy", after=after_destroy(search)
        )
        down = (run.status == "ok" and not swept.errors, down_seconds)
    nodes = verb_nodes(args, console, prepared, report, prepared.plan)
    phases = phases_of_test(created, nodes, seconds, problems, down)
    destroyed_ok = down is None or down[0]
    success = created and not problems and destroyed_ok
    error = next((p.message for p in phases if p.status == "failed"), None)
    code = homestak_end(
        args,
        console,
        prepared,
        "test",
        report,
        prepared.plan,
        started,
        success=success,
        phases=phases,
        error=None if success or not created else error,
        nodes=nodes,
    )
    if not args_json(args):
        console.print(
            f"Test {'passed' if success else 'failed'}: {len(phases)} phase(s) "
            f"in {time.time() - started:.1f}s."
        )
    return code


def verify_ssh(plan: Plan) -> Any:
    """An `after` hook: SSH to every node of the tree with its pinned key (the executor's
    `probe_node_ssh`). Node name -> problem (None: fine)."""

    async def after(services: Any, report: Any) -> dict[str, str | None]:
        from pveplan.executor import probe_node_ssh

        return await probe_node_ssh(services, plan, report)

    return after
