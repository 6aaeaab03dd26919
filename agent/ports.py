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

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from ankaios_agent.agent.lifecycle_rules import Dialect
from ankaios_agent.agent.model import (
    ExecutionState,
    InstanceName,
    Response,
    ToServerMessageV1,
    WorkloadSpec,
    WorkloadState,
)
from ankaios_agent.agent.workload_file_writer import FileMount


class MessageSink(Protocol):
    """Where messages for the server go (``agent.outbox.Outbox``): non-blocking, keeps order."""

    def send(self, msg: ToServerMessageV1) -> None: ...


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


@dataclass(frozen=True)
class CreateRequest:
    """Everything a runtime needs to start one instance.

    ``control_dir`` is the host folder holding the workload's FIFOs, to be
    mounted at /run/ankaios/control_interface (None: no mount). ``file_mounts``
    are the workload's files, already written, each mounted read-only at its
    destination. ``reuse_id`` names a stopped container of this very instance
    to start again instead of creating a new one (only where the runtime
    ``reuses_containers``).
    """

    spec: WorkloadSpec
    control_dir: Path | None = None
    file_mounts: tuple[FileMount, ...] = ()
    reuse_id: str | None = None


@dataclass(frozen=True)
class LogOptions:
    """Which part of a workload's log to read: the options of a logs request.

    ``tail`` None or negative means every line; ``since``/``until`` are given to
    the runtime as received (RFC 3339, a Unix time or a duration such as ``10m``).
    """

    follow: bool = False
    tail: int | None = None
    since: str | None = None
    until: str | None = None


LogBatch = tuple[str, ...]
"""Complete log lines of one workload, without their line feed, in the order they were read."""


@runtime_checkable
class LogSource(Protocol):
    """A runtime that can read its workloads' logs (optional besides ``Runtime``)."""

    def logs(self, instance: InstanceName, options: LogOptions) -> AsyncGenerator[LogBatch, None]:
        """Batches of lines of stdout and stderr of ``instance`` until its log ends.

        Without ``follow`` the log ends after what exists now; with it, when the
        workload stops or is removed. Closing the iterator early (cancel) releases
        everything at once. Raises RuntimeLogsFailed when the log cannot be read.
        """
        ...


class Runtime(Protocol):
    name: str
    reuses_containers: bool
    """Whether ``create`` can start an ended container again (``CreateRequest.reuse_id``)."""

    async def create(self, request: CreateRequest) -> str:
        """Create and start ``request.spec`` (or start ``request.reuse_id`` again); return the runtime id.

        Raises WorkloadConfigError for a workload the runtime can never run as
        given (not retried) and RuntimeCreateFailed when the engine refuses;
        nothing half-made is left behind, also not a reused container whose
        start failed.
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
