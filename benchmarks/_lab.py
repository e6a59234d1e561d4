"""What the simulator benchmarks share: a throw-away lab, and pveplan run as a user runs it.

A lab is a copy of the example site config with its own store, config and simulator in a
temporary directory, so a benchmark never touches the user's store; the simulator is
stopped when the lab closes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "examples" / "site-config"


class Lab:
    def __init__(self, base: Path) -> None:
        self.site = base / "site"
        self.store = base / "store"
        self.env = {
            **os.environ,
            "PVEPLAN_STORE": str(self.store),
            "XDG_CONFIG_HOME": str(base / "config"),
        }

    def pveplan(self, *words: str, check: bool = True) -> float:
        """Run `pveplan WORDS`; its wall time (exits with its output when it fails)."""
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "pveplan.cli", *words],
            env=self.env,
            capture_output=True,
            text=True,
        )
        if check and done.returncode != 0:
            sys.exit(f"pveplan {' '.join(words)} failed:\n{done.stdout}{done.stderr}")
        return time.perf_counter() - started

    def finished_events(self, workspace: str) -> list:
        """The finished and cached events of the workspace's latest run."""
        sys.path.insert(0, str(ROOT))
        from pveplan.store import open_store

        with open_store(self.store) as store:
            run = store.runs(workspace, limit=1)[0]
            return [e for e in store.run_events(run.id) if e.kind in ("finished", "cached")]


@contextlib.contextmanager
def lab() -> Iterator[Lab]:
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(SITE, Path(tmp) / "site")
        made = Lab(Path(tmp))
        try:
            yield made
        finally:
            made.pveplan("sim", "down", check=False)
