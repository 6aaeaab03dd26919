"""The small interfaces the lifecycle layer needs from its neighbours.

The manager and the workload loops depend on these Protocols only, so the
outbox (branch conn) and the control-interface host (branch ctl) plug in
without imports in the other direction, and tests use the fakes of
``agent.testing``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ankaios_agent.agent.model import InstanceName, Response, ToServerMessage, WorkloadState


class MessageSink(Protocol):
    """Where messages for the server go (``agent.outbox.Outbox``): non-blocking, keeps order."""

    def send(self, msg: ToServerMessage) -> None: ...


class ControlInterfaceHost(Protocol):
    """The per-workload FIFO folders and their relays (``control_interface.ControlInterfaces``)."""

    async def ensure(self, instance: InstanceName) -> Path:
        """Create the folder and FIFOs if missing, start the relay; raises ControlInterfaceError."""
        ...

    async def remove(self, workload: str) -> None:
        """Stop the relay of ``workload`` and remove its FIFOs and folder."""
        ...

    def route(self, response: Response) -> None:
        """Hand a response to the workload named by the request id prefix (non-blocking)."""
        ...

    async def close(self) -> None:
        """Shutdown: stop every relay, keep the files."""
        ...


class StateReporter(Protocol):
    """Where a workload loop reports the states of its workload (the manager's own-state path)."""

    def report(self, state: WorkloadState) -> None: ...
