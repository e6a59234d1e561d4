"""Which store a command uses, and what it says is applied, for `plan` to diff against.

Planning writes no records: with no local store yet, or nothing applied to the workspace,
the previous plan is None and everything is new (a PostgreSQL store that is still empty
gets its tables when first opened, which is all). The applied plan is read back from its
content-addressed object and verified like any plan file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pveplan.dsl import Diagnostic
from pveplan.planner import Plan, PlanError, decode_applied_plan

if TYPE_CHECKING:
    from pveplan.planner import SiteConfig
    from pveplan.store import StoreAddress

    from . import Console


def store_location(console: Console) -> StoreAddress:
    """The store this command uses: $PVEPLAN_STORE, else the site config's `store.url`
    (with secrets.yaml's `store.password`), else the local default directory."""
    from pveplan.store import locate_store

    if console.env.get("PVEPLAN_STORE"):
        return locate_store(console.env)
    url, password = _site_store(console)
    return locate_store(console.env, url, password)


def lock_timeout(site: SiteConfig, flag: float | None) -> float:
    """`--lock-timeout`, else the run's site.yaml `store.lock_timeout` (0: refuse at once)."""
    return flag if flag is not None else site.site.store.lock_timeout


def _site(console: Console) -> SiteConfig | None:
    """The site config this command would use, if one is found (never an error here)."""
    from pveplan.planner import discover_site_config, load_site_config

    try:
        root = discover_site_config(console.site_flag, console.env, console.cwd)
    except PlanError:
        return None
    return load_site_config(root)


def _site_store(console: Console) -> tuple[str | None, str | None]:
    site = _site(console)
    if site is None or not site.site.store.url:
        return None, None
    ref = site.secrets.ref("store", "password")
    return site.site.store.url, site.secrets.reveal(ref) if site.secrets.has(ref) else None


def store_exists(where: StoreAddress) -> bool:
    """Whether there may be records to read: a local store's database exists, or the
    store is shared (opening it creates its tables if they are missing)."""
    return where.shared or (where.local_dir / "store.sqlite").exists()


def applied_plan(console: Console, workspace: str) -> Plan | None:
    """The plan last applied to `workspace`, or None (no store, nothing applied)."""
    from pveplan.store import StoreError, open_store

    path = store_location(console)
    if not store_exists(path):
        return None
    try:
        with open_store(path) as store:
            state = store.applied(workspace)
            if state is None:
                return None
            object_hash = store.plan_object(state.plan_hash)
            if object_hash is None:
                raise PlanError.at(
                    None,
                    f"the store records plan {state.plan_hash} as applied but does not hold it",
                    "run `pveplan store verify`",
                )
            data = store.get_object(object_hash)
    except StoreError as exc:
        raise PlanError([_as_diagnostic(d) for d in exc.diagnostics]) from None
    return decode_applied_plan(data, state.plan_hash)


def applied_resources(console: Console, workspace: str) -> dict[str, dict[str, object]]:
    """The live resources the store records for `workspace`: address -> outputs."""
    from pveplan.store import StoreError, open_store

    path = store_location(console)
    if not store_exists(path):
        return {}
    try:
        with open_store(path) as store:
            return {r.address: dict(r.outputs) for r in store.resources(workspace)}
    except StoreError as exc:
        raise PlanError([_as_diagnostic(d) for d in exc.diagnostics]) from None


def _as_diagnostic(diag: object) -> Diagnostic:
    return Diagnostic(
        summary=getattr(diag, "summary", str(diag)),
        detail=getattr(diag, "detail", ""),
        severity=getattr(diag, "severity", "error"),
    )
