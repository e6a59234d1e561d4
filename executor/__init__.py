"""executor: Plan -> effects (trio scheduler, drivers, remote executors, simulator).

Empty until the executor issue lands; the package exists because the design card fixes
the top-level layout.
"""
