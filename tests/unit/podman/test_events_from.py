"""The monitor's pure pieces: snapshot diff and event parsing."""

from __future__ import annotations

from ankaios_agent.agent.model import ExecutionState, InstanceName
from ankaios_agent.agent.ports import StateChange
from ankaios_agent.runtimes.podman.monitor import PodmanEvent, events_from, parse_event
from ankaios_agent.runtimes.podman.states import ContainerRecord

A = InstanceName("a", "agent", "1")
B = InstanceName("b", "agent", "2")


def rec(cid: str, instance: InstanceName, status: str, code: int = 0) -> ContainerRecord:
    return ContainerRecord(cid, instance, status, code)


def test_new_container_is_reported_with_its_state() -> None:
    assert events_from({}, {"c1": rec("c1", A, "running")}) == [
        StateChange(A, "c1", ExecutionState.running())
    ]


def test_unchanged_state_is_not_reported() -> None:
    snapshot = {"c1": rec("c1", A, "running")}
    assert events_from(snapshot, dict(snapshot)) == []


def test_changed_state_is_reported() -> None:
    old = {"c1": rec("c1", A, "running")}
    new = {"c1": rec("c1", A, "exited", 3)}
    assert events_from(old, new) == [StateChange(A, "c1", ExecutionState.exec_failed(3))]


def test_vanished_container_is_lost() -> None:
    """A container id missing from the list is Failed(Lost)."""
    old = {"c1": rec("c1", A, "running"), "c2": rec("c2", B, "running")}
    new = {"c2": rec("c2", B, "running")}
    assert events_from(old, new) == [StateChange(A, "c1", ExecutionState.lost())]


def test_exit_code_change_alone_is_reported() -> None:
    old = {"c1": rec("c1", A, "exited", 1)}
    new = {"c1": rec("c1", A, "exited", 2)}
    assert events_from(old, new) == [StateChange(A, "c1", ExecutionState.exec_failed(2))]


def test_replaced_container_of_same_instance_reports_old_lost_and_new_state() -> None:
    old = {"c1": rec("c1", A, "running")}
    new = {"c9": rec("c9", A, "running")}
    assert events_from(old, new) == [
        StateChange(A, "c9", ExecutionState.running()),
        StateChange(A, "c1", ExecutionState.lost()),
    ]


def test_died_event_is_parsed_with_exit_code_and_container_name() -> None:
    data = {
        "status": "died",
        "id": "abc",
        "Type": "container",
        "Action": "died",
        "Actor": {"ID": "abc", "Attributes": {"containerExitCode": "3", "name": "wl.1.agent"}},
        "timeNano": 42,
    }
    assert parse_event(data) == PodmanEvent("abc", "died", 3, "wl.1.agent", 42)


def test_non_container_and_malformed_events_are_ignored() -> None:
    assert parse_event({"Type": "image", "Action": "pull", "id": "x"}) is None
    assert parse_event({"Type": "container"}) is None
    assert parse_event([1, 2]) is None
