"""pveplan: a Nix-like plan/apply orchestrator for Proxmox VE, nested PVE labs included.

The one import namespace of the distribution. Its packages are folders of their own at
the top of the repository, mapped here by the installer (pyproject.toml):
`pveplan.dsl` (text -> Manifest), `pveplan.planner` (Manifest + site config -> Plan; the
CLI), `pveplan.executor` (Plan -> effects), `pveplan.store` (what outlives a command)
and `pveplan.sim` (simulated PVE hosts, the far end for rehearsals and tests).
Nothing else is installed at the top level of site-packages.
"""
