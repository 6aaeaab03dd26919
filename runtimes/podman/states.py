"""Podman container data → ExecutionState, with the reference's exact strings.

Everything here is pure: the monitor feeds it list entries, inspect data and
events, and gets ``ContainerRecord`` values and states back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ankaios_agent.agent.model import ExecutionState, InstanceName

ERROR_GETTING_STATE = "Error getting state from Podman."
NAME_LABEL = "name"
AGENT_LABEL = "agent"

_STARTING = ("created", "configured", "initialized")
_STOPPING = ("stopping", "stopped", "removing")


def state_of(status: str, exit_code: int) -> ExecutionState:
    """Map Podman's ``State`` text (and exit code) as the reference does."""
    lowered = status.lower()
    if lowered in _STARTING:
        return ExecutionState.starting(status)
    if lowered == "running":
        return ExecutionState.running()
    if lowered == "exited":
        code = exit_code & 0xFF  # the reference reads ExitCode as an unsigned 8-bit number
        return ExecutionState.succeeded() if code == 0 else ExecutionState.exec_failed(code)
    if lowered in _STOPPING:
        return ExecutionState.stopping(status)
    if lowered == "unknown":
        return ExecutionState.unknown(status)
    return ExecutionState.unknown(lowered)


@dataclass(frozen=True)
class ContainerRecord:
    """What the monitor knows about one container of this agent."""

    id: str
    instance: InstanceName
    status: str
    exit_code: int = 0

    @property
    def state(self) -> ExecutionState:
        return state_of(self.status, self.exit_code)


def owned_instance(labels: Mapping[str, str] | None, agent: str) -> InstanceName | None:
    """The instance a container belongs to, if its labels say it is this agent's."""
    if not labels or labels.get(AGENT_LABEL) != agent:
        return None
    instance = InstanceName.parse(labels.get(NAME_LABEL, ""))
    if instance is None or instance.agent != agent:
        return None
    return instance


def record_from_list_entry(entry: Mapping[str, object], agent: str) -> ContainerRecord | None:
    """One entry of ``GET /libpod/containers/json``; None when not this agent's or malformed."""
    labels = entry.get("Labels")
    container_id = entry.get("Id")
    status = entry.get("State")
    if not isinstance(labels, dict) or not isinstance(container_id, str) or not isinstance(status, str):
        return None
    instance = owned_instance(labels, agent)
    if instance is None:
        return None
    exit_code = entry.get("ExitCode")
    return ContainerRecord(container_id, instance, status, exit_code if isinstance(exit_code, int) else 0)


def record_from_inspect(data: Mapping[str, object], agent: str) -> ContainerRecord | None:
    """``GET /libpod/containers/{id}/json`` data; None when not this agent's or malformed."""
    config = data.get("Config")
    state = data.get("State")
    container_id = data.get("Id")
    if not isinstance(config, dict) or not isinstance(state, dict) or not isinstance(container_id, str):
        return None
    instance = owned_instance(config.get("Labels"), agent)
    status = state.get("Status")
    if instance is None or not isinstance(status, str):
        return None
    exit_code = state.get("ExitCode")
    return ContainerRecord(container_id, instance, status, exit_code if isinstance(exit_code, int) else 0)


# Podman event action → the container status it implies. Events not listed
# (create, init, cleanup, kill, health_status, ...) change nothing a client of
# the agent could see, or are followed by one that does.
EVENT_STATUS = {
    "start": "running",
    "restart": "running",
    "unpause": "running",
    "died": "exited",
    "pause": "paused",
}
REMOVE_EVENT = "remove"
