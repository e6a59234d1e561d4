"""Readiness checks before `create`, `destroy` and `test` (iac-driver's preflight).

iac-driver refuses a run before it creates anything when its site config or host is not
ready, listing every problem with what to do, and `--preflight` runs the checks alone.
pveplan checks the same things, all of them every time (one problem never hides the
next), in this order:

- the site config: found; `secrets.yaml` there and decrypted (a lone `secrets.yaml.enc`
  says how to decrypt it); the node's file, `nodes/HOST.yaml` or `hosts/HOST.yaml`;
- the manifest plans against it (every name it uses exists, the schema holds);
- for a lab, that is a real host (a `sim: true` node needs neither; a `--simulate`
  rehearsal checks what the real run would), when creating: `defaults.gateway` and
  `defaults.dns_servers` in site.yaml and an SSH key in secrets.yaml for the VM user;
- the host: reachable, its certificate or host key the pinned one, the credentials valid
  and holding the privileges the plan needs (the executor's `preflight`, as the
  `preflight` command runs it), and for a tiered manifest (a PVE node with children)
  nested virtualization enabled on it.

The host is only asked when the files are sound: its checks need the plan.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from pveplan.dsl import DiagnosticError
from pveplan.planner import PlanError

from ._plan import make_plan
from ._select import display_path, host_name, site_root

if TYPE_CHECKING:
    from pveplan.planner import SiteConfig

    from . import Console

HINT = "(see docs/homestak-compat.md#preflight)"


class Finding(NamedTuple):
    """One check: its name, whether it passed, what was found, and what to do if not."""

    name: str
    ok: bool
    detail: str
    todo: str = ""


def readiness(args: argparse.Namespace, console: Console, *, only: bool = False) -> bool:
    """Check everything, print the findings (all of them with `only`, else the failures),
    and return whether the run may go ahead."""
    findings = check(args, console)
    ok = all(f.ok for f in findings)
    out = console.print if only else console.error
    if only or not ok:
        host = host_name(args) or "?"
        out(f"pveplan {args.command}: preflight checks for host {host}")
        for finding in findings:
            if only or not finding.ok:
                mark = console.style.green("ok  ") if finding.ok else console.style.red("FAIL")
                out(f"  {mark} {finding.name}: {finding.detail}")
                if finding.todo and not finding.ok:
                    out(f"       what to do: {finding.todo}")
    if only:
        out("ready" if ok else f"not ready: see FAIL above {HINT}")
    elif not ok:
        verb = "destroyed" if args.command == "destroy" else "created"
        out(
            f"refused before anything was {verb}: fix the problems above, or pass "
            f"--skip-preflight to run without these checks {HINT}"
        )
    return ok


def check(args: argparse.Namespace, console: Console) -> list[Finding]:
    """Every finding, in the order of the module's docstring."""
    findings: list[Finding] = []
    try:
        root = site_root(args, console, getattr(args, "manifest_file", None))
    except (PlanError, DiagnosticError) as exc:
        return [Finding("site config", False, _text(exc), "name it with --site-config DIR")]
    findings.append(Finding("site config", True, display_path(root, console.cwd)))
    secrets = _secrets(root)
    findings.append(secrets)
    host = host_name(args)
    node_file = _node_file(root, host) if host is not None else None
    if node_file is not None:
        findings.append(node_file)
    if args.command != "destroy" and secrets.ok and node_file is not None and node_file.ok:
        # A lab is a real host; a --simulate rehearsal checks what the real run would.
        findings.extend(_lab(root, host or ""))
    quiet = dataclasses.replace(console, err=io.StringIO())  # its warnings: the run's to print
    try:
        plan_file, old, site = make_plan(args, quiet)
    except (PlanError, DiagnosticError) as exc:
        findings.append(
            Finding("plan", False, _text(exc), "fix the manifest or the site config as it says")
        )
        return findings
    plan = plan_file.plan
    findings.append(Finding("plan", True, f"{plan.manifest}: {len(plan.steps)} step(s)"))
    config = site.host(plan.host)
    tiered = bool(plan.subplans)
    if not all(f.ok for f in findings):
        return findings  # the host's checks need sound files (and would only add noise)
    findings.extend(_host(console, plan_file, old, site, nested=tiered and not config.sim))
    if tiered and config.sim:
        findings.append(
            Finding("nested virtualization", True, f"{plan.host} is simulated: nesting is too")
        )
    return findings


def _lab(root: Path, host: str) -> list[Finding]:
    """The lab's site checks, when `host`'s node file says it is real (not `sim: true`)."""
    from pveplan.planner import load_site_config

    try:
        site = load_site_config(root)
        if site.host(host).sim:
            return []
    except (PlanError, DiagnosticError) as exc:
        return [Finding("site config", False, _text(exc), "fix the site config as it says")]
    return lab_findings(site)


def lab_findings(site: SiteConfig) -> list[Finding]:
    """What a real lab's VMs need from the site config (iac-driver's site checks)."""
    found: list[Finding] = []
    defaults = site.site.defaults
    found.append(
        Finding("gateway", True, defaults.gateway)
        if defaults.gateway
        else Finding(
            "gateway",
            False,
            "site.yaml sets no defaults.gateway",
            "set defaults.gateway in site.yaml (e.g. 192.168.1.1)",
        )
    )
    found.append(
        Finding("DNS", True, ", ".join(defaults.dns_servers))
        if defaults.dns_servers
        else Finding(
            "DNS",
            False,
            "site.yaml sets no defaults.dns_servers",
            "set defaults.dns_servers in site.yaml (e.g. [192.168.1.1])",
        )
    )
    keys = site.secrets.keys("ssh_keys")
    found.append(
        Finding("SSH key", True, f"{len(keys)} in secrets.yaml for {defaults.vm_user}")
        if keys
        else Finding(
            "SSH key",
            False,
            f"secrets.yaml has no ssh_keys: nobody could log in to the VMs as {defaults.vm_user}",
            "add your public key under ssh_keys in secrets.yaml (homestak: "
            "`sudo homestak site-init`)",
        )
    )
    return found


def _secrets(root: Path) -> Finding:
    plain, encrypted = root / "secrets.yaml", root / "secrets.yaml.enc"
    decrypt = f"decrypt it: `cd {root} && make decrypt` (or `sops -d {encrypted} > {plain}`)"
    if not plain.is_file():
        if encrypted.is_file():
            return Finding(
                "secrets", False, f"only {encrypted.name} is there: it is not decrypted", decrypt
            )
        return Finding(
            "secrets",
            False,
            f"no secrets.yaml in {root}",
            "create it (homestak: `homestak site-init`), or copy it from your site config",
        )
    try:
        text = plain.read_text(errors="replace")
    except OSError as exc:
        return Finding("secrets", False, f"cannot read {plain}: {exc}", "make it readable")
    if any(line.startswith("sops:") for line in text.splitlines()):
        return Finding("secrets", False, f"{plain} is still SOPS-encrypted", decrypt)
    return Finding("secrets", True, f"{plain.name} decrypted")


def _node_file(root: Path, host: str) -> Finding:
    for folder in ("nodes", "hosts"):
        if (root / folder / f"{host}.yaml").is_file():
            return Finding("node config", True, f"{folder}/{host}.yaml")
    return Finding(
        "node config",
        False,
        f"no nodes/{host}.yaml or hosts/{host}.yaml in {root}",
        f"write nodes/{host}.yaml for a PVE host (homestak: `make node-config` on it), "
        f"or hosts/{host}.yaml for a Debian host before PVE",
    )


def _host(
    console: Console, plan_file: object, old: object, site: SiteConfig, *, nested: bool
) -> list[Finding]:
    """The executor's preflight of the plan's host, as findings."""
    from ._preflight import host_report

    try:
        report = host_report(console, plan_file, old, site, nested=nested)  # type: ignore[arg-type]
    except Exception as exc:
        if type(exc).__name__ in ("PlanError", "DiagnosticError") or _is_ours(exc):
            return [Finding("host", False, _text(exc), "check the node file and the host")]
        raise
    found = [
        Finding(
            c.name,
            c.ok,
            c.detail,
            "" if c.ok else "see docs/transports.md; run `pveplan preflight` for the detail",
        )
        for c in report.checks
    ]
    for need in report.missing:
        found.append(
            Finding(
                "privilege",
                False,
                f"missing {need.text()} (for {need.why})",
                "grant it to the token (docs/transports.md, least privilege)",
            )
        )
    return found


def _is_ours(exc: BaseException) -> bool:
    import sys

    roots = []
    for package, name in (
        ("pveplan.executor", "ExecutorError"),
        ("pveplan.sim", "SimError"),
        ("pveplan.store", "StoreError"),
    ):
        module = sys.modules.get(package)
        if module is not None:
            roots.append(getattr(module, name))
    return any(isinstance(exc, root) for root in roots)


def _text(exc: BaseException) -> str:
    diagnostics = getattr(exc, "diagnostics", None)
    if diagnostics:
        parts = []
        for diag in diagnostics:
            where = f"{diag.location}: " if getattr(diag, "location", None) else ""
            parts.append(f"{where}{diag.summary}")
        return "; ".join(parts)
    return str(exc)
