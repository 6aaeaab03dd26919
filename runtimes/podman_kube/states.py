"""State of a kube workload: the combination over its pods' containers.

Pure: takes what Podman lists and returns the ExecutionState with the
reference's exact strings. Each container maps to a ``PodContainerState``;
the workload's state is the minimum under this order (lowest first)::

    Failed < Starting < Unknown < Running < Stopping < Succeeded < Lost

starting from Lost. Several Failed values compare by the exit code's text
("10" < "2"), as Rust's derived ordering on the string does. A pod id with no
container in the listing counts as one Unknown container; no container is
excluded, so a pod's infra container takes part (it runs until every other
container of the pod has exited, so Succeeded is still reached).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ankaios_agent.agent.model import ExecutionState

STARTING_INFO = "starting container"
UNKNOWN_INFO = "unknown container state"
STOPPING_INFO = "stopping container"
PODS_ERROR_INFO = "Error getting state from pods."


class PodContainerKind(enum.IntEnum):
    """Rank in the combination order; lower wins."""

    FAILED = 0
    STARTING = 1
    UNKNOWN = 2
    RUNNING = 3
    STOPPING = 4
    SUCCEEDED = 5
    LOST = 6


@dataclass(frozen=True, order=True)
class PodContainerState:
    """One container's contribution; ``exit_text`` only matters for FAILED."""

    kind: PodContainerKind
    exit_text: str = ""


@dataclass(frozen=True)
class ListedContainer:
    """The fields of a Podman container listing that the combination reads."""

    pod: str | None
    state: str
    exit_code: int
    id: str = ""


LOST = PodContainerState(PodContainerKind.LOST)
UNKNOWN = PodContainerState(PodContainerKind.UNKNOWN)

_BY_PODMAN_STATE = {
    "created": PodContainerKind.STARTING,
    "configured": PodContainerKind.STARTING,
    "initialized": PodContainerKind.STARTING,
    "running": PodContainerKind.RUNNING,
    "paused": PodContainerKind.UNKNOWN,
    "stopping": PodContainerKind.STOPPING,
    "stopped": PodContainerKind.STOPPING,
    "removing": PodContainerKind.STOPPING,
}


def container_state(container: ListedContainer) -> PodContainerState:
    """Map one container."""
    state = container.state.lower()
    if state == "exited":
        if container.exit_code == 0:
            return PodContainerState(PodContainerKind.SUCCEEDED)
        return PodContainerState(PodContainerKind.FAILED, str(container.exit_code))
    return PodContainerState(_BY_PODMAN_STATE.get(state, PodContainerKind.UNKNOWN))


def combine(pod_ids: Sequence[str] | None, containers: Iterable[ListedContainer]) -> ExecutionState:
    """The workload state from its pod ids and the current container listing.

    ``pod_ids`` None means the pod list is unknown (the ``.pods`` volume could
    not be read after an agent restart): the reference reports Succeeded(Ok).
    ``containers`` may hold containers of other pods; they are ignored.
    """
    if pod_ids is None:
        return ExecutionState.succeeded()
    by_pod: dict[str, list[PodContainerState]] = {pod: [] for pod in pod_ids}
    for container in containers:
        if container.pod is not None and container.pod in by_pod:
            by_pod[container.pod].append(container_state(container))
    combined = LOST
    for states in by_pod.values():
        for state in states or [UNKNOWN]:
            combined = min(combined, state)
    return to_execution_state(combined)


def to_execution_state(state: PodContainerState) -> ExecutionState:
    """The reported state for a combined value."""
    match state.kind:
        case PodContainerKind.FAILED:
            return ExecutionState.exec_failed(int(state.exit_text))
        case PodContainerKind.STARTING:
            return ExecutionState.starting(STARTING_INFO)
        case PodContainerKind.UNKNOWN:
            return ExecutionState.unknown(UNKNOWN_INFO)
        case PodContainerKind.RUNNING:
            return ExecutionState.running()
        case PodContainerKind.STOPPING:
            return ExecutionState.stopping(STOPPING_INFO)
        case PodContainerKind.SUCCEEDED:
            return ExecutionState.succeeded()
        case PodContainerKind.LOST:
            return ExecutionState.lost()


def pods_error() -> ExecutionState:
    """Reported when Podman cannot be asked for the containers."""
    return ExecutionState.unknown(PODS_ERROR_INFO)
