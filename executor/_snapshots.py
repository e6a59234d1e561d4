"""The end of a run that took snapshots before its changes (`snapshot_before`): once every
step succeeded, the snapshots not asked to be kept are removed (`kinds._snapshot` takes
them and lists them in `Services.snapshots`). A failed run leaves them, for `qm rollback`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ._context import Services
from ._model import Event
from .pve import PveError, requests


async def remove_snapshots(services: Services, emit: Callable[[Event], None]) -> None:
    """Remove the snapshots this run took (the run succeeded). One that cannot be removed
    is logged with the command that removes it, never a failed run: the change is made."""
    taken, services.snapshots = services.snapshots, []
    for address, host, vmid, name in taken:
        try:
            pve = await services.pve(host)
            await pve.run(requests.delete_snapshot(pve.node, vmid, name))
            message = f"removed snapshot {name} of VM {vmid}: the run succeeded"
        except PveError as err:
            message = (
                f"snapshot {name} of VM {vmid} is left: removing it failed ({err}); "
                f"remove it with `qm delsnapshot {vmid} {name}`"
            )
        emit(Event(address=address, kind="log", host=host, at=time.time(), message=message))
