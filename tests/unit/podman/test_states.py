"""Podman state → ExecutionState mapping with the reference's exact strings."""

from __future__ import annotations

import pytest

from ankaios_agent.agent.model import ExecutionState, InstanceName, State
from ankaios_agent.runtimes.podman.states import (
    ContainerRecord,
    owned_instance,
    record_from_inspect,
    record_from_list_entry,
    state_of,
)

AGENT = "agent_A"
INSTANCE = InstanceName("wl", AGENT, "abc")


@pytest.mark.parametrize(
    ("status", "exit_code", "expected"),
    [
        ("created", 0, ExecutionState(State.PENDING_STARTING, "created")),
        ("configured", 0, ExecutionState(State.PENDING_STARTING, "configured")),
        ("Initialized", 0, ExecutionState(State.PENDING_STARTING, "Initialized")),
        ("running", 0, ExecutionState(State.RUNNING_OK, "")),
        ("RUNNING", 0, ExecutionState(State.RUNNING_OK, "")),
        ("exited", 0, ExecutionState(State.SUCCEEDED_OK, "")),
        ("exited", 3, ExecutionState(State.FAILED_EXEC_FAILED, "Exit code: '3'")),
        ("exited", 256 + 7, ExecutionState(State.FAILED_EXEC_FAILED, "Exit code: '7'")),
        ("exited", 256, ExecutionState(State.SUCCEEDED_OK, "")),
        ("stopping", 0, ExecutionState(State.STOPPING, "stopping")),
        ("stopped", 0, ExecutionState(State.STOPPING, "stopped")),
        ("removing", 0, ExecutionState(State.STOPPING, "removing")),
        ("unknown", 0, ExecutionState(State.FAILED_UNKNOWN, "unknown")),
        ("Paused", 0, ExecutionState(State.FAILED_UNKNOWN, "paused")),
        ("weird", 0, ExecutionState(State.FAILED_UNKNOWN, "weird")),
    ],
)
def test_state_mapping_follows_spec_table(status: str, exit_code: int, expected: ExecutionState) -> None:
    """Case-insensitive State, u8 exit code, Podman's state text as info where the table says so."""
    assert state_of(status, exit_code) == expected


def test_list_entry_of_this_agent_becomes_record() -> None:
    """Name label parsed as instance name; agent label must match."""
    entry = {
        "Id": "c1",
        "State": "exited",
        "ExitCode": 2,
        "Labels": {"name": str(INSTANCE), "agent": AGENT},
    }
    assert record_from_list_entry(entry, AGENT) == ContainerRecord("c1", INSTANCE, "exited", 2)


@pytest.mark.parametrize(
    "labels",
    [
        None,
        {},
        {"agent": AGENT},
        {"agent": "other", "name": str(INSTANCE)},
        {"agent": AGENT, "name": "two.parts"},
        {"agent": AGENT, "name": "wl.abc.other_agent"},
    ],
)
def test_containers_not_owned_by_this_agent_are_skipped(labels: dict[str, str] | None) -> None:
    """Entries without a parsable name label of this agent are skipped."""
    assert owned_instance(labels, AGENT) is None
    assert record_from_list_entry({"Id": "c", "State": "running", "Labels": labels}, AGENT) is None


def test_inspect_data_becomes_record() -> None:
    data = {
        "Id": "c2",
        "Config": {"Labels": {"name": str(INSTANCE), "agent": AGENT}},
        "State": {"Status": "running", "ExitCode": 0},
    }
    assert record_from_inspect(data, AGENT) == ContainerRecord("c2", INSTANCE, "running", 0)
    assert record_from_inspect({"Id": "c2"}, AGENT) is None
