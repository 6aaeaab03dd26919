"""Typed errors raised inside the agent.

Transport and runtime errors are translated into this tree at the edge that
meets them (gRPC connection, podman client, FIFO I/O), so the logic branches on
types and structured fields, never on message text::

    AgentError
    ├── UsageError                   bad command line or environment (exit 2)
    ├── ServerUnavailable            the gRPC stream could not be opened or broke
    ├── ConversionError              a wire message that violates its dialect's contract
    ├── RuntimeFailure               base of everything a runtime method raises on purpose
    │   ├── RuntimeUnavailable       the container engine cannot be reached        (retry)
    │   ├── WorkloadConfigError      runtimeConfig is malformed / unsupported      (final)
    │   ├── RuntimeCreateFailed      the engine refused to create/start it         (retry)
    │   ├── RuntimeDeleteFailed      the engine refused to stop/remove it          (retry)
    │   ├── RuntimeLogsFailed        a workload's log cannot be read                (ends it)
    │   └── EngineCallFailed         one engine call failed (kind, status, operation); raised
    │       │                        where the engine's error enters, and turned into one of
    │       │                        the four above before it leaves a runtime method
    │       ├── EngineNotFound       the object addressed does not exist
    │       ├── EngineConflict       it exists already / is in use / in the wrong state
    │       ├── EngineUnreachable    no answer: socket missing, refused, connection broken
    │       └── EngineRejected       the engine refused the request as malformed
    └── ControlInterfaceError        FIFOs for a workload cannot be set up

The runtime-facing failures carry ``reason`` (the engine's own text, fit for a
user) and, where one engine call caused them, that call's ``EngineCallFailed``
as ``cause``, so a caller can branch on ``cause.kind`` without parsing text.
"""

from __future__ import annotations

import enum

from ankaios_agent.agent.model import InstanceName


class AgentError(Exception):
    """Base of all errors the agent raises on purpose."""


class UsageError(AgentError):
    """The user asked for something impossible (bad flag, unusable folder)."""


class ServerUnavailable(AgentError):
    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"server {address} unavailable: {reason}")
        self.address = address
        self.reason = reason


class ConversionError(AgentError):
    """A protobuf message that cannot be turned into the domain model."""


class RuntimeFailure(AgentError):
    """Base of everything a runtime reports."""


class EngineErrorKind(enum.Enum):
    """What went wrong in one call to the container engine, decided from status codes and types."""

    NOT_FOUND = "not found"
    CONFLICT = "conflict"
    UNREACHABLE = "unreachable"
    REJECTED = "bad request"
    OTHER = "other"


class EngineCallFailed(RuntimeFailure):
    """One call to the container engine failed; ``reason`` is the engine's own text."""

    kind = EngineErrorKind.OTHER

    def __init__(self, operation: str, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.operation = operation
        self.reason = reason
        self.status = status


class EngineNotFound(EngineCallFailed):
    kind = EngineErrorKind.NOT_FOUND


class EngineConflict(EngineCallFailed):
    kind = EngineErrorKind.CONFLICT


class EngineUnreachable(EngineCallFailed):
    kind = EngineErrorKind.UNREACHABLE


class EngineRejected(EngineCallFailed):
    kind = EngineErrorKind.REJECTED


class RuntimeUnavailable(RuntimeFailure):
    def __init__(self, runtime: str, reason: str, cause: EngineCallFailed | None = None) -> None:
        super().__init__(f"{runtime}: {reason}")
        self.runtime = runtime
        self.reason = reason
        self.cause = cause


class WorkloadConfigError(RuntimeFailure):
    """runtimeConfig cannot be used; ``reason`` is shown to the user as StartingFailed info."""

    def __init__(self, instance: InstanceName, reason: str) -> None:
        super().__init__(reason)
        self.instance = instance
        self.reason = reason


class RuntimeCreateFailed(RuntimeFailure):
    def __init__(self, instance: InstanceName, reason: str, cause: EngineCallFailed | None = None) -> None:
        super().__init__(reason)
        self.instance = instance
        self.reason = reason
        self.cause = cause


class RuntimeDeleteFailed(RuntimeFailure):
    def __init__(self, instance: InstanceName, reason: str, cause: EngineCallFailed | None = None) -> None:
        super().__init__(reason)
        self.instance = instance
        self.reason = reason
        self.cause = cause


class RuntimeLogsFailed(RuntimeFailure):
    """The log of ``instance`` cannot be read (no container, Podman refused the options, stream broke)."""

    def __init__(self, instance: InstanceName, reason: str) -> None:
        super().__init__(reason)
        self.instance = instance
        self.reason = reason


class ControlInterfaceError(AgentError):
    def __init__(self, workload: str, reason: str) -> None:
        super().__init__(f"control interface of {workload!r}: {reason}")
        self.workload = workload
        self.reason = reason
