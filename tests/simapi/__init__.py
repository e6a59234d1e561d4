"""Fast tests of the simulator's HTTPS API without its daemon: privileges, roles and ACLs
(`sim/_acl.py`), the routes' permissions (`sim/_perms.py`), and requests answered by
`sim/_rest.dispatch` against a simulator root. The daemon's real HTTPS server is tested in
tests/sim/test_https.py (slow tier)."""
