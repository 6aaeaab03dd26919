"""The agent's domain model: plain frozen dataclasses and enums.

Nothing here knows about protobuf, gRPC, Podman or asyncio. The conversion
modules at the edges translate to and from the wire: per dialect one for the
server stream (``agent.conversion`` for v0.3.1, ``agent.dialect_v1.conversion``
for v1.0.1) and one for the FIFOs (``control_interface.framing``,
``agent.dialect_v1.control_codec``).

Types and fields that only v1.0.1 carries (workload files, control-interface
access rules, configs, logs, load status, agent tags) have empty defaults: the
v0.3.1 dialect simply leaves them empty.
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
        """Parse ``<workload>.<id>.<agent>``; ``None`` unless there are exactly 3 parts (behaviour "Instance
        names")."""
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

    # Named constructors for the states the agent produces (behaviour "State strings").
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
    def retrying(cls, retry: int, error: str) -> ExecutionState:
        """v1.0.1: a failed, retryable create attempt; ``retry`` counts from 1 and never ends."""
        return cls(State.PENDING_STARTING, f"{RETRY_INFO_PREFIX}{retry}: {error}")

    @classmethod
    def unsupported_runtime(cls) -> ExecutionState:
        """v1.0.1: the workload names a runtime this agent does not run (final, no retry)."""
        return cls(State.PENDING_STARTING_FAILED, UNSUPPORTED_RUNTIME)

    @classmethod
    def files_failed(cls, reason: str) -> ExecutionState:
        """v1.0.1: a workload file could not be written (final, no retry)."""
        return cls(State.PENDING_STARTING_FAILED, f"Failed to create workload file: '{reason}'")

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
RETRY_INFO_PREFIX = "Retry "
"""v1.0.1 retry states read ``Retry <n>: <error>``; clients look for this prefix."""
UNSUPPORTED_RUNTIME = "Unsupported Runtime"


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


class Operation(enum.Enum):
    """What a state rule grants or forbids (values: the manifest spellings)."""

    NOTHING = "Nothing"
    READ = "Read"
    WRITE = "Write"
    READ_WRITE = "ReadWrite"


@dataclass(frozen=True)
class StateRule:
    """Access to parts of the complete state: dot paths, a segment may be ``*``."""

    operation: Operation
    filter_masks: tuple[str, ...]


@dataclass(frozen=True)
class LogRule:
    """Access to the logs of workloads: names, each with at most one ``*``."""

    workload_names: tuple[str, ...]


AccessRule = StateRule | LogRule


@dataclass(frozen=True)
class AccessRules:
    """A workload's ``controlInterfaceAccess``: allow and deny rules in the order the server sent them.

    The v0.3.1 dialect leaves both empty (it gives every workload a control
    interface regardless).
    """

    allow: tuple[AccessRule, ...] = ()
    deny: tuple[AccessRule, ...] = ()

    @property
    def needs_control_interface(self) -> bool:
        """v1.0.1: a workload gets a control interface iff it has at least one allow rule."""
        return bool(self.allow)


NO_ACCESS_RULES = AccessRules()


@dataclass(frozen=True)
class TextContent:
    text: str
    """Written as UTF-8."""


@dataclass(frozen=True)
class Base64Content:
    encoded: str
    """Standard base64 as received; decoded only when the file is planned and written."""


FileContent = TextContent | Base64Content


@dataclass(frozen=True)
class WorkloadFile:
    """A file the agent writes for a workload and mounts read-only at ``mount_point``."""

    mount_point: str
    content: FileContent


@dataclass(frozen=True)
class WorkloadSpec:
    """What the server asks this agent to run (an AddedWorkload).

    Equality covers every field: a spec that differs in anything (files, access
    rules, tags, ...) is a different spec even when its instance name is equal.
    ``tags`` keep the wire order; v1.0.1 sends them as a map, which arrives in
    key order. ``configs`` maps the workload's config aliases to config keys as
    the server sent them; the server has already rendered every template, so
    the agent never reads them to render anything.
    """

    instance: InstanceName
    runtime: str
    runtime_config: str
    restart_policy: RestartPolicy = RestartPolicy.NEVER
    dependencies: Mapping[str, AddCondition] = field(default_factory=_frozen_map)
    tags: tuple[tuple[str, str], ...] = ()
    configs: Mapping[str, str] = field(default_factory=_frozen_map)
    files: tuple[WorkloadFile, ...] = ()
    control_interface_access: AccessRules = NO_ACCESS_RULES

    def __post_init__(self) -> None:
        object.__setattr__(self, "dependencies", _frozen_map(self.dependencies))
        object.__setattr__(self, "configs", _frozen_map(self.configs))

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

    ``body`` is the serialized Response of the session's dialect (``ankaios`` or
    ``ank_base``) *without* its requestId: the agent only routes responses and
    never looks inside them, so the payload stays opaque bytes between the two
    protobuf edges.
    """

    request_id: str
    body: bytes


@dataclass(frozen=True)
class DesiredState:
    """The answer to the agent's own reconciliation request after a hello.

    ``workloads`` holds only this agent's workloads, with ids computed like the
    server does (sha256 of runtimeConfig). ``known_instances`` are the instances
    of this agent the server holds a state for. ``error`` is set when the
    server answered with an error instead.
    """

    request_id: str
    workloads: tuple[WorkloadSpec, ...] = ()
    error: str | None = None
    known_instances: frozenset[InstanceName] = frozenset()


@dataclass(frozen=True)
class ServerHello:
    """v1.0.1: every workload the server assigns to this agent, sent after each hello."""

    added: tuple[WorkloadSpec, ...] = ()


@dataclass(frozen=True)
class LogsRequest:
    """v1.0.1: collect logs of some of this agent's workloads.

    ``request_id`` is the server's full id and is echoed unchanged in every
    answer. ``tail`` None means all lines; the server may send a negative one.
    ``since``/``until`` are passed to the runtime as given.
    """

    request_id: str
    workloads: tuple[InstanceName, ...] = ()
    follow: bool = False
    tail: int | None = None
    since: str | None = None
    until: str | None = None


@dataclass(frozen=True)
class LogsCancelRequest:
    """v1.0.1: stop the log collection started under ``request_id`` (if this agent has one)."""

    request_id: str


FromServerMessage = UpdateWorkload | UpdateWorkloadState | Response | DesiredState
FromServerMessageV1 = FromServerMessage | ServerHello | LogsRequest | LogsCancelRequest
"""What a v1.0.1 session delivers: the v0.3.1 set plus the new messages."""


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
    workload: only requests the server can take carry it. ``body`` is the
    serialized Request of the dialect *without* its requestId; the connection
    puts the id in front of it instead of encoding the content again. A dialect
    whose codec keeps requests opaque sets only ``body``; a request the agent
    makes itself may carry only ``content``.
    """

    request_id: str
    body: bytes = b""
    content: RequestContent | None = None


@dataclass(frozen=True)
class DesiredStateRequest:
    """The agent's own CompleteStateRequest for ``desiredState.workloads``."""

    request_id: str


@dataclass(frozen=True)
class AgentHello:
    """The first message of every session; v1.0.1 also carries the agent's tags."""

    agent_name: str
    tags: Mapping[str, str] = field(default_factory=_frozen_map)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", _frozen_map(self.tags))


@dataclass(frozen=True)
class AgentLoadStatus:
    """v1.0.1: the node's load, sent periodically: CPU in whole percent, free memory in bytes."""

    agent_name: str
    cpu_usage: int
    free_memory: int


@dataclass(frozen=True)
class LogEntry:
    instance: InstanceName
    message: str


@dataclass(frozen=True)
class LogEntries:
    """v1.0.1: lines read for the log collection ``request_id`` (the server's id, unchanged)."""

    request_id: str
    entries: tuple[LogEntry, ...]


@dataclass(frozen=True)
class LogsStopped:
    """v1.0.1: the log stream of ``instance`` in the collection ``request_id`` has ended."""

    request_id: str
    instance: InstanceName


ToServerMessage = WorkloadState | Request | DesiredStateRequest
ToServerMessageV1 = ToServerMessage | AgentLoadStatus | LogEntries | LogsStopped
"""What a v1.0.1 session sends besides the hello: the v0.3.1 set plus the new messages."""

# Request ids starting with this text belong to the agent itself: the routing prefix
# (text before the first "@") is empty, and no workload can be named "".
AGENT_REQUEST_PREFIX = REQUEST_ID_SEPARATOR + "ank-agent/"


# --- control interface (v1.0.1), after decoding a workload's frame ------------


@dataclass(frozen=True)
class ControlHello:
    """The handshake a workload must send first on its control interface."""

    protocol_version: str


class RequestKind(enum.Enum):
    """Which request a workload sent; NONE (no content) is never forwarded."""

    NONE = None
    UPDATE_STATE = "updateStateRequest"
    COMPLETE_STATE = "completeStateRequest"
    LOGS = "logsRequest"
    LOGS_CANCEL = "logsCancelRequest"
    EVENTS_CANCEL = "eventsCancelRequest"


@dataclass(frozen=True)
class WorkloadRequest:
    """A workload's request with what authorization needs to see.

    ``request`` carries the id as the workload sent it and the opaque body.
    ``masks`` are the fieldMask (complete state) or updateMask (update state);
    ``log_workloads`` the workload names of a logs request. ``has_new_state``
    tells an update without ``newState`` apart: the v1.0.1 server breaks the
    agent's whole connection on one, so it must be answered locally.
    """

    request: Request
    kind: RequestKind
    masks: tuple[str, ...] = ()
    log_workloads: tuple[str, ...] = ()
    subscribe_for_events: bool = False
    has_new_state: bool = False

    @property
    def forwardable(self) -> bool:
        """False for requests the server cannot take without dropping the agent's connection."""
        if self.kind is RequestKind.NONE:
            return False
        return self.kind is not RequestKind.UPDATE_STATE or self.has_new_state
