"""Combined state of a kube workload."""

from __future__ import annotations

import pytest

from ankaios_agent.agent.model import ExecutionState, State
from ankaios_agent.runtimes.podman_kube.states import ListedContainer, combine, pods_error


def c(pod: str | None, state: str, exit_code: int = 0) -> ListedContainer:
    return ListedContainer(pod=pod, state=state, exit_code=exit_code)


@pytest.mark.parametrize(
    ("state", "exit_code", "expected"),
    [
        ("created", 0, ExecutionState(State.PENDING_STARTING, "starting container")),
        ("configured", 0, ExecutionState(State.PENDING_STARTING, "starting container")),
        ("Initialized", 0, ExecutionState(State.PENDING_STARTING, "starting container")),
        ("running", 0, ExecutionState(State.RUNNING_OK)),
        ("exited", 0, ExecutionState(State.SUCCEEDED_OK)),
        ("exited", 3, ExecutionState(State.FAILED_EXEC_FAILED, "Exit code: '3'")),
        ("paused", 0, ExecutionState(State.FAILED_UNKNOWN, "unknown container state")),
        ("stopping", 0, ExecutionState(State.STOPPING, "stopping container")),
        ("stopped", 0, ExecutionState(State.STOPPING, "stopping container")),
        ("removing", 0, ExecutionState(State.STOPPING, "stopping container")),
        ("unknown", 0, ExecutionState(State.FAILED_UNKNOWN, "unknown container state")),
        ("weird", 0, ExecutionState(State.FAILED_UNKNOWN, "unknown container state")),
    ],
)
def test_single_container_maps_with_exact_strings(
    state: str, exit_code: int, expected: ExecutionState
) -> None:
    """Per-container mapping and the reference's exact additionalInfo texts."""
    assert combine(["p"], [c("p", state, exit_code)]) == expected


def test_minimum_follows_the_reference_order() -> None:
    """Failed < Starting < Unknown < Running < Stopping < Succeeded < Lost."""
    order = [("exited", 1), ("created", 0), ("paused", 0), ("running", 0), ("stopped", 0), ("exited", 0)]
    for low in range(len(order)):
        containers = [c("p", s, e) for s, e in order[low:]]
        alone = combine(["p"], [c("p", *order[low])])
        assert combine(["p"], list(reversed(containers))) == alone


def test_one_exited_container_with_a_running_sibling_is_running() -> None:
    """Succeeded only when every container (the infra one included) has exited 0."""
    assert combine(["p"], [c("p", "exited"), c("p", "running")]) == ExecutionState.running()


def test_failed_values_compare_by_their_text() -> None:
    """Several Failed values are compared by their text ("10" < "2")."""
    assert combine(["p"], [c("p", "exited", 2), c("p", "exited", 10)]) == ExecutionState.exec_failed(10)


def test_states_of_all_pods_combine() -> None:
    state = combine(["p1", "p2"], [c("p1", "running"), c("p2", "exited", 7), c("other", "exited", 1)])
    assert state == ExecutionState.exec_failed(7)


def test_pod_missing_from_the_listing_counts_as_one_unknown_container() -> None:
    """A pod id missing from the cache counts as Unknown."""
    assert combine(["p1", "gone"], [c("p1", "running")]) == ExecutionState.unknown("unknown container state")
    assert combine(["gone"], [c("p1", "exited", 1)]) == ExecutionState.unknown("unknown container state")


def test_empty_pod_list_is_lost() -> None:
    """An empty pod list means Failed(Lost)."""
    assert combine([], [c("p", "running")]) == ExecutionState.lost()


def test_unknown_pod_list_is_succeeded() -> None:
    """A missing pod list after resume means Succeeded(Ok)."""
    assert combine(None, [c("p", "exited", 1)]) == ExecutionState.succeeded()


def test_containers_without_a_pod_are_ignored() -> None:
    assert combine(["p"], [c(None, "exited", 1), c("p", "running")]) == ExecutionState.running()


def test_listing_error_has_the_reference_text() -> None:
    """'Error getting state from pods.'"""
    assert pods_error() == ExecutionState(State.FAILED_UNKNOWN, "Error getting state from pods.")
