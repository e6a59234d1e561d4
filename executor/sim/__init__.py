"""The PVE simulator: simulated PVE hosts and VMs on loopback (see docs/simulator.md)."""

from typing import Any

from ._state import SimRoot


def ensure_simulator(*args: Any, **kwargs: Any) -> Any:
    """See `_up.ensure_simulator` (imported on call: keeps `import executor.sim` light)."""
    from ._up import ensure_simulator as ensure

    return ensure(*args, **kwargs)


__all__ = ["SimRoot", "ensure_simulator"]
