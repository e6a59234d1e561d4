"""store: the local content-addressed store (objects, step results, resources, runs, locks).

Empty until the planner/store issue lands; the package exists because the design card
fixes the top-level layout. It will import nothing else of pveplan's.
"""
