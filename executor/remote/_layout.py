"""Where pveplan keeps its things on a nested host, relative to root's home.

Nested hosts are driven as root (PVE's tools need it). Files go there over SFTP, by
absolute path (`sftp_path`); commands run with the home directory as their working
directory and name the same files by relative path. Both forms hold on a real host
(home is /root) and on the simulator (SFTP is chrooted to the VM's tree, whose home for
root is `root/`), so no command ever carries a path that differs between them.
"""

from __future__ import annotations

REMOTE_USER = "root"
REMOTE_HOME = "/root"
BASE = ".pveplan"
SITE_CONFIG = f"{BASE}/site-config"
STORE = f"{BASE}/store"
NEXT_HOP_KEY = ".ssh/id_ed25519"
AUTHORIZED_KEYS = ".ssh/authorized_keys"


def sftp_path(relative: str) -> str:
    """The absolute SFTP path of `relative` (a path under root's home)."""
    return f"{REMOTE_HOME}/{relative}"
