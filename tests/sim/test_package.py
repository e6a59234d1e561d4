"""`pveplan.sim` as a package: its public names, and the one thing of pveplan's it imports.

The simulator is the far end: it must run where only its own folder can be found (its
launchers register it as a bare package), so it may import nothing of pveplan's but the
executor's public key helper, and that only inside the function that needs it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pveplan.sim

SIM = Path(pveplan.sim.__file__).resolve().parent
ALLOWED = {("pveplan.executor", "generate_ed25519")}
"""(module, name) pairs of pveplan's outside the simulator that it may import."""


def test_all_names_exist_and_match_the_lazy_table() -> None:
    assert sorted(pveplan.sim._EXPORTS) == sorted(pveplan.sim.__all__)
    missing = [name for name in pveplan.sim.__all__ if not hasattr(pveplan.sim, name)]
    assert missing == []


def _imports(path: Path) -> list[tuple[str, str, bool]]:
    """(module, name, at module level) for every import of pveplan's in `path`."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [(alias.name, "") for alias in node.names]
        else:
            continue
        found += [(m, n, id(node) in top) for m, n in modules if m.split(".")[0] == "pveplan"]
    return found


def test_the_simulator_imports_nothing_of_pveplan_but_the_key_helper() -> None:
    offenders = [
        f"{path.name}: {module} {name}"
        for path in sorted(SIM.glob("*.py"))
        for module, name, at_top in _imports(path)
        if not (module == "pveplan.sim" or module.startswith("pveplan.sim."))
        and ((module, name) not in ALLOWED or at_top)
    ]
    assert offenders == []


def test_a_launcher_loads_no_other_package() -> None:
    """What a host command's launcher imports: the simulator's modules, nothing else of
    pveplan's (the executor's key helper comes with a VM's first boot, not here)."""
    from pveplan.sim._setup import bootstrap_code

    code = bootstrap_code("pveplan.sim._pvecli", "0").replace(
        "sys.exit(0)",
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'pveplan')))",
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", "import json\n" + code],
        capture_output=True,
        text=True,
        cwd="/",
        check=True,
    )
    loaded = json.loads(done.stdout)
    assert "pveplan.sim._pvecli" in loaded
    assert [m for m in loaded if m != "pveplan" and m.split(".")[1] != "sim"] == []
