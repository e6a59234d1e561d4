"""pveplan: a Nix-like plan/apply orchestrator for Proxmox VE, nested PVE labs included.

The one import namespace of the distribution. Its packages are folders of their own at
the top of the repository, mapped here by the installer (pyproject.toml):
`pveplan.dsl` (text -> Manifest), `pveplan.planner` (Manifest + site config -> Plan),
`pveplan.executor` (Plan -> effects), `pveplan.store` (what outlives a command),
`pveplan.sim` (simulated PVE hosts, the far end for rehearsals and tests) and
`pveplan.cli` (the `pveplan` command, the composition root).
Nothing else is installed at the top level of site-packages.
"""
