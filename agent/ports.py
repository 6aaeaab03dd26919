"""The small interfaces the lifecycle layer needs from its neighbours.

The manager and the workload loops depend on these Protocols only: the outbox,
the control-interface host and the runtimes plug in from outside (``wiring``
assembles them), so nothing in ``agent/`` imports ``runtimes/`` or
``control_interface/``, and tests use the fakes of ``agent.fakes``.

A runtime is addressed only by instance name: it finds its own objects by the
``name=<workload>.<id>.<agent>`` label (or the kube bookkeeping volumes), so
the lifecycle layer never handles container ids. All runtime methods are
coroutines that never block the event loop; blocking client calls go through
``agent.blocking.run_blocking``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ankaios_agent.agent.lifecycle_rules import Dialect
from ankaios_agent.agent.model import (
    ExecutionState,
    InstanceName,
    Response,
    ToServerMessage,
    WorkloadSpec,
    WorkloadState,
)


class MessageSink(Protocol):
    """Where messages for the server go (``agent.outbox.Outbox``): non-blocking, keeps order."""

    def send(self, msg: ToServerMessage) -> None: ...


class ControlInterfaceHost(Protocol):
    """The per-workload FIFO folders and their relays (``control_interface.ControlInterfaceHost``)."""

    async def ensure_for(self, spec: WorkloadSpec) -> Path | None:
        """Give ``spec`` the control interface its dialect and access rules call for: create the
        folder and FIFOs if missing and start the relay; return the folder to mount, None when
        the workload gets none. Raises ControlInterfaceError."""
        ...

    async def remove(self, workload: str) -> None:
        """Stop the relay of ``workload`` and remove its FIFOs and folder."""
        ...

    def use_dialect(self, dialect: Dialect) -> None:
        """A session of ``dialect`` started: control interfaces made from now on follow its rules."""
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


@dataclass(frozen=True)
class OwnedWorkload:
    """A workload instance of this agent that exists on the runtime right now."""

    instance: InstanceName
    runtime_id: str
    state: ExecutionState


@dataclass(frozen=True)
class StateChange:
    """The current state of one instance, emitted whenever it (may have) changed.

    Level-triggered: consumers treat it as "this is how X is now", so a
    duplicated change is harmless. ``runtime_id`` lets the consumer ignore
    reports about an older container of the same instance name.
    """

    instance: InstanceName
    runtime_id: str
    state: ExecutionState


class Runtime(Protocol):
    name: str

    async def create(self, spec: WorkloadSpec, control_dir: Path | None) -> str:
        """Create and start ``spec``; return the runtime id.

        ``control_dir`` is the host folder holding the workload's FIFOs, to be
        mounted at /run/ankaios/control_interface (None: no mount). Raises
        WorkloadConfigError for a bad runtimeConfig and RuntimeCreateFailed when
        the engine refuses; nothing half-made is left behind.
        """
        ...

    async def delete(self, instance: InstanceName) -> None:
        """Stop and remove everything of ``instance``; already gone is success.

        Raises RuntimeDeleteFailed.
        """
        ...

    async def list_owned(self) -> list[OwnedWorkload]:
        """Every instance of this agent that exists on the runtime, with its state.

        Each state is the runtime's latest observation: never older than a
        change ``events()`` yielded before ``list_owned`` returned, so a change
        that was yielded while no one could take it yet is not lost in an
        adoption. Later changes follow on ``events()``.
        """
        ...

    def events(self) -> AsyncIterator[StateChange]:
        """One endless stream of state changes of this agent's instances.

        A new subscription first yields the latest observed state of every
        instance the runtime knows; then one item per change, in the order
        observed, none dropped. An instance that disappears yields ``Failed(Lost)``.
        """
        ...
