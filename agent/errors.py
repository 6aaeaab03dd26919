"""Typed errors raised inside the agent.

Transport and runtime errors are translated into this tree at the edge that
meets them (gRPC connection, podman client, FIFO I/O), so the logic branches on
types and structured fields, never on message text::

    AgentError
    ├── UsageError                   bad command line or environment (exit 2)
    ├── ServerUnavailable            the gRPC stream could not be opened or broke
    ├── ConversionError              a wire message that violates its dialect's contract
    ├── RuntimeFailure                base of everything a runtime reports
    │   ├── RuntimeUnavailable       the container engine cannot be reached
    │   ├── WorkloadConfigError      runtimeConfig is malformed / uses an unsupported option
    │   ├── RuntimeCreateFailed      the engine refused to create/start the workload
    │   └── RuntimeDeleteFailed      the engine refused to stop/remove the workload
    └── ControlInterfaceError        FIFOs for a workload cannot be set up
"""

from __future__ import annotations

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


class RuntimeUnavailable(RuntimeFailure):
    def __init__(self, runtime: str, reason: str) -> None:
        super().__init__(f"{runtime}: {reason}")
        self.runtime = runtime
        self.reason = reason


class WorkloadConfigError(RuntimeFailure):
    """runtimeConfig cannot be used; ``reason`` is shown to the user as StartingFailed info."""

    def __init__(self, instance: InstanceName, reason: str) -> None:
        super().__init__(reason)
        self.instance = instance
        self.reason = reason


class RuntimeCreateFailed(RuntimeFailure):
    def __init__(self, instance: InstanceName, reason: str) -> None:
        super().__init__(reason)
        self.instance = instance
        self.reason = reason


class RuntimeDeleteFailed(RuntimeFailure):
    def __init__(self, instance: InstanceName, reason: str) -> None:
        super().__init__(reason)
        self.instance = instance
        self.reason = reason


class ControlInterfaceError(AgentError):
    def __init__(self, workload: str, reason: str) -> None:
        super().__init__(f"control interface of {workload!r}: {reason}")
        self.workload = workload
        self.reason = reason
