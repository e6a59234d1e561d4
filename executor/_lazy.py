"""Third-party modules imported on first use, not when pveplan's modules load.

asyncssh, httpx and cryptography take a large part of a command's start-up, and most
runs never need them: a no-op apply reaches no host, and a host over SSH never speaks
HTTPS. The modules that use them bind a `LazyModule` under the module's usual name (with
the real import under `TYPE_CHECKING` for the type checker), so their code reads as
before and the import happens at the first attribute read: a connection, a key parsed,
an exception type matched.
"""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """Stands for module `name`; imports it at the first attribute read."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name}>"
