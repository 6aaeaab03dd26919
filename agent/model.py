"""The agent's domain model: plain frozen dataclasses and enums.

Nothing here knows about protobuf, gRPC, Podman or asyncio. The conversion
modules at the two edges (``agent.conversion`` for the server stream,
``control_interface.framing`` for the FIFOs) translate to and from the wire.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

INSTANCE_SEPARATOR = "."
REQUEST_ID_SEPARATOR = "@"


@dataclass(frozen=True, order=True)
class InstanceName:
    """A workload instance: (workload name, agent name, id = sha256 of runtimeConfig)."""

    workload: str
    agent: str
    id: str

    def __str__(self) -> str:
        return f"{self.workload}.{self.id}.{self.agent}"

    @property
    def folder_name(self) -> str:
        """Name of the control-interface folder: ``<workload>.<id>`` (no agent part)."""
        return f"{self.workload}.{self.id}"

    @classmethod
    def parse(cls, text: str) -> InstanceName | None:
        """Parse ``<workload>.<id>.<agent>``; ``None`` unless there are exactly 3 parts (spec §1.6)."""
        parts = text.split(INSTANCE_SEPARATOR)
        if len(parts) != 3:
            return None
        workload, id_, agent = parts
        return cls(workload=workload, agent=agent, id=id_)


class StateKind(enum.Enum):
    AGENT_DISCONNECTED = "AgentDisconnected"
    PENDING = "Pending"
    RUNNING = "Running"
    STOPPING = "Stopping"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    NOT_SCHEDULED = "NotScheduled"
    REMOVED = "Removed"


class State(enum.Enum):
    """Every (state, substate) pair of v0.3.1; value = (kind, substate display or None)."""

    AGENT_DISCONNECTED = (StateKind.AGENT_DISCONNECTED, None)
    PENDING_INITIAL = (StateKind.PENDING, "Initial")
    PENDING_WAITING_TO_START = (StateKind.PENDING, "WaitingToStart")
    PENDING_STARTING = (StateKind.PENDING, "Starting")
    PENDING_STARTING_FAILED = (StateKind.PENDING, "StartingFailed")
    RUNNING_OK = (StateKind.RUNNING, "Ok")
    STOPPING = (StateKind.STOPPING, "Stopping")
    STOPPING_WAITING_TO_STOP = (StateKind.STOPPING, "WaitingToStop")
    STOPPING_REQUESTED_AT_RUNTIME = (StateKind.STOPPING, "RequestedAtRuntime")
    STOPPING_DELETE_FAILED = (StateKind.STOPPING, "DeleteFailed")
    SUCCEEDED_OK = (StateKind.SUCCEEDED, "Ok")
    FAILED_EXEC_FAILED = (StateKind.FAILED, "ExecFailed")
    FAILED_UNKNOWN = (StateKind.FAILED, "Unknown")
    FAILED_LOST = (StateKind.FAILED, "Lost")
    NOT_SCHEDULED = (StateKind.NOT_SCHEDULED, None)
    REMOVED = (StateKind.REMOVED, None)

    @property
    def kind(self) -> StateKind:
        kind: StateKind = self.value[0]
        return kind

    @property
    def display(self) -> str:
        """The form the ``ank`` CLI prints in its EXECUTION STATE column, e.g. ``Running(Ok)``."""
        kind, sub = self.value
        return kind.value if sub is None else f"{kind.value}({sub})"


@dataclass(frozen=True)
class ExecutionState:
    """A state plus its ``additionalInfo`` text."""

    state: State
    info: str = ""

    def __str__(self) -> str:
        return self.state.display if not self.info else f"{self.state.display} / {self.info!r}"

    @property
    def display(self) -> str:
        return self.state.display

    # Named constructors for the states the agent produces (spec Appendix B).
    @classmethod
    def waiting_to_start(cls) -> ExecutionState:
        return cls(State.PENDING_WAITING_TO_START)

    @classmethod
    def starting(cls, info: str = "Triggered at runtime.") -> ExecutionState:
        return cls(State.PENDING_STARTING, info)

    @classmethod
    def starting_failed(cls, info: str) -> ExecutionState:
        return cls(State.PENDING_STARTING_FAILED, info)

    @classmethod
    def running(cls) -> ExecutionState:
        return cls(State.RUNNING_OK)

    @classmethod
    def succeeded(cls) -> ExecutionState:
        return cls(State.SUCCEEDED_OK)

    @classmethod
    def exec_failed(cls, exit_code: int) -> ExecutionState:
        return cls(State.FAILED_EXEC_FAILED, f"Exit code: '{exit_code}'")

    @classmethod
    def lost(cls) -> ExecutionState:
        return cls(State.FAILED_LOST)

    @classmethod
    def unknown(cls, info: str = "") -> ExecutionState:
        return cls(State.FAILED_UNKNOWN, info)

    @classmethod
    def stopping(cls, info: str = "") -> ExecutionState:
        return cls(State.STOPPING, info)

    @classmethod
    def waiting_to_stop(cls) -> ExecutionState:
        return cls(State.STOPPING_WAITING_TO_STOP)

    @classmethod
    def requested_at_runtime(cls) -> ExecutionState:
        return cls(State.STOPPING_REQUESTED_AT_RUNTIME)

    @classmethod
    def delete_failed(cls, info: str) -> ExecutionState:
        return cls(State.STOPPING_DELETE_FAILED, info)

    @classmethod
    def removed(cls) -> ExecutionState:
        return cls(State.REMOVED)


NO_MORE_RETRIES = "No more retries."


class AddCondition(enum.Enum):
    RUNNING = 0
    SUCCEEDED = 1
    FAILED = 2


class DeleteCondition(enum.Enum):
    RUNNING = 0
    NOT_PENDING_NOR_RUNNING = 1


class RestartPolicy(enum.Enum):
    NEVER = 0
    ON_FAILURE = 1
    ALWAYS = 2


K = TypeVar("K")
V = TypeVar("V")


def _frozen_map(items: Mapping[K, V] | None = None) -> Mapping[K, V]:
    return MappingProxyType(dict(items or {}))


@dataclass(frozen=True)
class WorkloadSpec:
    """What the server asks this agent to run (an AddedWorkload)."""

    instance: InstanceName
    runtime: str
    runtime_config: str
    restart_policy: RestartPolicy = RestartPolicy.NEVER
    dependencies: Mapping[str, AddCondition] = field(default_factory=_frozen_map)
    tags: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "dependencies", _frozen_map(self.dependencies))

    @property
    def name(self) -> str:
        return self.instance.workload


@dataclass(frozen=True)
class DeleteRequest:
    """What the server asks this agent to remove (a DeletedWorkload)."""

    instance: InstanceName
    dependencies: Mapping[str, DeleteCondition] = field(default_factory=_frozen_map)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dependencies", _frozen_map(self.dependencies))

    @property
    def name(self) -> str:
        return self.instance.workload


@dataclass(frozen=True)
class WorkloadState:
    instance: InstanceName
    state: ExecutionState


# --- messages from the server, after conversion ------------------------------


@dataclass(frozen=True)
class UpdateWorkload:
    added: tuple[WorkloadSpec, ...] = ()
    deleted: tuple[DeleteRequest, ...] = ()


@dataclass(frozen=True)
class UpdateWorkloadState:
    states: tuple[WorkloadState, ...] = ()


@dataclass(frozen=True)
class Response:
    """A response to a control-interface request.

    ``body`` is the serialized ``ankaios.Response`` *without* its requestId: the
    agent only routes responses and never looks inside them, so the payload stays
    opaque bytes between the two protobuf edges.
    """

    request_id: str
    body: bytes


@dataclass(frozen=True)
class DesiredState:
    """The answer to the agent's own reconciliation request (DESIGN decision 2).

    ``workloads`` holds only this agent's workloads, with ids computed like the
    server does (sha256 of runtimeConfig). ``error`` is set when the server
    answered with an error instead.
    """

    request_id: str
    workloads: tuple[WorkloadSpec, ...] = ()
    error: str | None = None


FromServerMessage = UpdateWorkload | UpdateWorkloadState | Response | DesiredState


# --- messages to the server, before conversion -------------------------------


@dataclass(frozen=True)
class DeclaredWorkload:
    """One entry of the workload map of a state a workload sends in a request."""

    agent: str = ""
    runtime: str = ""
    runtime_config: str = ""
    restart_policy: RestartPolicy = RestartPolicy.NEVER
    dependencies: Mapping[str, AddCondition] = field(default_factory=_frozen_map)
    tags: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "dependencies", _frozen_map(self.dependencies))


@dataclass(frozen=True)
class DeclaredState:
    """A set of workloads with its format version (startup or desired state)."""

    api_version: str = ""
    workloads: Mapping[str, DeclaredWorkload] = field(default_factory=_frozen_map)

    def __post_init__(self) -> None:
        object.__setattr__(self, "workloads", _frozen_map(self.workloads))


@dataclass(frozen=True)
class CompleteState:
    """The whole state a workload proposes; a part is None when the workload left it out."""

    startup_state: DeclaredState | None = None
    desired_state: DeclaredState | None = None
    workload_states: tuple[WorkloadState, ...] = ()


@dataclass(frozen=True)
class CompleteStateRequest:
    field_mask: tuple[str, ...] = ()


@dataclass(frozen=True)
class UpdateStateRequest:
    new_state: CompleteState | None = None
    update_mask: tuple[str, ...] = ()


RequestContent = CompleteStateRequest | UpdateStateRequest


@dataclass(frozen=True)
class Request:
    """A control-interface request on its way to the server.

    ``content`` is the request decoded and checked once, where it left the
    workload: only requests the server can take carry it, and the connection
    encodes it without looking at the workload's bytes again. A dialect whose
    codec keeps requests opaque sets ``body`` instead: the serialized Request
    of that dialect *without* its requestId.
    """

    request_id: str
    body: bytes = b""
    content: RequestContent | None = None


@dataclass(frozen=True)
class DesiredStateRequest:
    """The agent's own CompleteStateRequest for ``desiredState.workloads``."""

    request_id: str


ToServerMessage = WorkloadState | Request | DesiredStateRequest

# Request ids starting with this text belong to the agent itself: the routing prefix
# (text before the first "@") is empty, and no workload can be named "".
AGENT_REQUEST_PREFIX = REQUEST_ID_SEPARATOR + "ank-agent/"
