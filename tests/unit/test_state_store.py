"""The state store and the stopping hysteresis (behaviour "State reporting and hysteresis", "Scheduler: store
and queue", "States of other agents")."""

from __future__ import annotations

import pytest

from ankaios_agent.agent.model import ExecutionState, State, WorkloadState
from ankaios_agent.agent.state_store import HOLDING, SUPPRESSED, StateStore, next_state
from tests.unit.lifecycle_support import inst

HELD = [ExecutionState.requested_at_runtime(), ExecutionState.waiting_to_stop()]
SUPPRESSED_STATES = [
    ExecutionState.running(),
    ExecutionState.succeeded(),
    ExecutionState.exec_failed(2),
    ExecutionState.lost(),
    ExecutionState.unknown("unknown container state"),
]
PASSING = [
    ExecutionState.removed(),
    ExecutionState.starting(),
    ExecutionState.starting_failed("boom"),
    ExecutionState.waiting_to_start(),
    ExecutionState.stopping("stopping container"),
    ExecutionState.delete_failed("busy"),
    ExecutionState.requested_at_runtime(),
]


def test_hysteresis_tables_match_spec() -> None:
    """behaviour "State reporting and hysteresis": exactly these stored and incoming states take part."""
    assert {State.STOPPING_REQUESTED_AT_RUNTIME, State.STOPPING_WAITING_TO_STOP} == HOLDING
    assert {s.state for s in SUPPRESSED_STATES} == SUPPRESSED


@pytest.mark.parametrize("held", HELD)
@pytest.mark.parametrize("incoming", SUPPRESSED_STATES)
def test_stopping_hysteresis_keeps_stored_state(held: ExecutionState, incoming: ExecutionState) -> None:
    """behaviour "State reporting and hysteresis": while stopping, Running/Succeeded/Failed are replaced by
    the stored state."""
    assert next_state(held, incoming) == held


def test_hysteresis_keeps_stored_additional_info() -> None:
    """behaviour "State reporting and hysteresis": the replacement includes the stored additionalInfo."""
    held = ExecutionState(State.STOPPING_REQUESTED_AT_RUNTIME, "note")
    assert next_state(held, ExecutionState.running()) == held


@pytest.mark.parametrize("held", HELD)
@pytest.mark.parametrize("incoming", PASSING)
def test_hysteresis_lets_other_states_through(held: ExecutionState, incoming: ExecutionState) -> None:
    """behaviour "State reporting and hysteresis": Removed, Pending(*), Stopping(*) pass."""
    assert next_state(held, incoming) == incoming


@pytest.mark.parametrize("stored", [None, ExecutionState.running(), ExecutionState.stopping("x")])
def test_no_hysteresis_unless_stored_state_is_stopping_requested_or_waiting(
    stored: ExecutionState | None,
) -> None:
    """behaviour "State reporting and hysteresis": every other combination lets the incoming state through."""
    assert next_state(stored, ExecutionState.exec_failed(1)) == ExecutionState.exec_failed(1)


def test_own_state_is_stored_after_hysteresis_and_returned_for_sending() -> None:
    """behaviour "State reporting and hysteresis": the replaced state is what gets stored and sent (behaviour
    "State reporting and hysteresis")."""
    store = StateStore()
    store.apply_own(WorkloadState(inst("a"), ExecutionState.waiting_to_stop()))
    sent = store.apply_own(WorkloadState(inst("a"), ExecutionState.running()))
    assert sent == WorkloadState(inst("a"), ExecutionState.waiting_to_stop())
    assert store.get("a") == ExecutionState.waiting_to_stop()


def test_removed_deletes_the_entry() -> None:
    """behaviour "Scheduler: store and queue": Removed deletes the key, for own and other agents'
    workloads."""
    store = StateStore()
    store.apply_own(WorkloadState(inst("a"), ExecutionState.running()))
    store.store_others([WorkloadState(inst("b", agent="other"), ExecutionState.running())])
    store.apply_own(WorkloadState(inst("a"), ExecutionState.removed()))
    store.store_others([WorkloadState(inst("b", agent="other"), ExecutionState.removed())])
    assert "a" not in store and "b" not in store
    assert store.own_states() == []


def test_other_agents_states_skip_hysteresis_and_are_not_own() -> None:
    """behaviour "States of other agents": stored by workload name for conditions only; never sent back."""
    store = StateStore()
    store.store_others([WorkloadState(inst("b", agent="other"), ExecutionState.waiting_to_stop())])
    store.store_others([WorkloadState(inst("b", agent="other"), ExecutionState.running())])
    assert store.get("b") == ExecutionState.running()
    assert store.own_states() == []


def test_own_states_lists_last_state_per_workload() -> None:
    """behaviour "Reconciliation after a hello": what is re-sent after a reconnect."""
    store = StateStore()
    store.apply_own(WorkloadState(inst("b", "1"), ExecutionState.starting()))
    store.apply_own(WorkloadState(inst("a", "1"), ExecutionState.running()))
    store.apply_own(WorkloadState(inst("b", "2"), ExecutionState.running()))
    assert store.own_states() == [
        WorkloadState(inst("a", "1"), ExecutionState.running()),
        WorkloadState(inst("b", "2"), ExecutionState.running()),
    ]


def test_hysteresis_ignores_another_agents_state_of_the_same_name() -> None:
    """behaviour "States of other agents", "State reporting and hysteresis": other agents' states are used
    only for conditions, never for the hysteresis.
    A workload moving here from agent B: B's Stopping(RequestedAtRuntime) must not turn this agent's
    Running(Ok) into a Stopping state."""
    store = StateStore()
    store.apply_own(WorkloadState(inst("a"), ExecutionState.starting()))
    store.store_others([WorkloadState(inst("a", agent="agent_B"), ExecutionState.requested_at_runtime())])
    sent = store.apply_own(WorkloadState(inst("a"), ExecutionState.running()))
    assert sent == WorkloadState(inst("a"), ExecutionState.running())
    assert store.get("a") == ExecutionState.running()


# --- behaviour "v1.0.1: store keys": one state per instance


def v1_store() -> StateStore:
    return StateStore(per_instance=lambda: True)


def test_per_instance_the_old_and_the_new_instance_are_both_known() -> None:
    store = v1_store()
    store.store_others([WorkloadState(inst("b", "1", agent="other"), ExecutionState.running())])
    store.store_others([WorkloadState(inst("b", "2", agent="other"), ExecutionState.starting())])
    assert store.states("b") == [ExecutionState.running(), ExecutionState.starting()]
    assert store.get("b") == ExecutionState.starting()  # the newest


def test_by_name_a_new_instance_replaces_the_old_one() -> None:
    store = StateStore()
    store.store_others([WorkloadState(inst("b", "1", agent="other"), ExecutionState.running())])
    store.store_others([WorkloadState(inst("b", "2", agent="other"), ExecutionState.starting())])
    assert store.states("b") == [ExecutionState.starting()]


@pytest.mark.parametrize(("per_instance", "left"), [(True, [ExecutionState.starting()]), (False, [])])
def test_removed_clears_that_instance_or_the_name(per_instance: bool, left: list[ExecutionState]) -> None:
    store = StateStore(per_instance=lambda: per_instance)
    store.store_others([WorkloadState(inst("b", "2", agent="other"), ExecutionState.starting())])
    store.store_others([WorkloadState(inst("b", "1", agent="other"), ExecutionState.removed())])
    assert store.states("b") == left
    assert ("b" in store) is bool(left)


def test_per_instance_the_hysteresis_holds_only_for_the_same_instance() -> None:
    store = v1_store()
    store.apply_own(WorkloadState(inst("a", "1"), ExecutionState.waiting_to_stop()))
    sent_new = store.apply_own(WorkloadState(inst("a", "2"), ExecutionState.running()))
    sent_old = store.apply_own(WorkloadState(inst("a", "1"), ExecutionState.running()))
    assert sent_new == WorkloadState(inst("a", "2"), ExecutionState.running())
    assert sent_old == WorkloadState(inst("a", "1"), ExecutionState.waiting_to_stop())
    assert store.own_states() == [sent_new, sent_old]  # the instance stored last comes last


def test_by_name_the_hysteresis_holds_across_instances_of_the_name() -> None:
    store = StateStore()
    store.apply_own(WorkloadState(inst("a", "1"), ExecutionState.waiting_to_stop()))
    sent = store.apply_own(WorkloadState(inst("a", "2"), ExecutionState.running()))
    assert sent == WorkloadState(inst("a", "2"), ExecutionState.waiting_to_stop())


def test_per_instance_own_states_lists_every_instance_not_removed() -> None:
    store = v1_store()
    store.apply_own(WorkloadState(inst("b", "1"), ExecutionState.running()))
    store.apply_own(WorkloadState(inst("a", "1"), ExecutionState.running()))
    store.apply_own(WorkloadState(inst("b", "2"), ExecutionState.starting()))
    store.apply_own(WorkloadState(inst("a", "1"), ExecutionState.removed()))
    assert store.own_states() == [
        WorkloadState(inst("b", "1"), ExecutionState.running()),
        WorkloadState(inst("b", "2"), ExecutionState.starting()),
    ]


def test_switching_keying_keeps_what_is_known() -> None:
    """A server of the other version: what is stored stays known; a name then stored by name keeps
    just its new state, and the hysteresis by name holds the newest own instance's state."""
    rule = {"per_instance": True}
    store = StateStore(per_instance=lambda: rule["per_instance"])
    store.store_others([WorkloadState(inst("b", "1", agent="other"), ExecutionState.running())])
    store.store_others([WorkloadState(inst("b", "2", agent="other"), ExecutionState.starting())])
    store.apply_own(WorkloadState(inst("a", "1"), ExecutionState.running()))
    store.apply_own(WorkloadState(inst("a", "2"), ExecutionState.waiting_to_stop()))
    rule["per_instance"] = False
    assert store.states("b") == [ExecutionState.running(), ExecutionState.starting()]
    store.store_others([WorkloadState(inst("b", "3", agent="other"), ExecutionState.running())])
    assert store.states("b") == [ExecutionState.running()]
    sent = store.apply_own(WorkloadState(inst("a", "3"), ExecutionState.running()))
    assert sent == WorkloadState(inst("a", "3"), ExecutionState.waiting_to_stop())
    assert store.own_states() == [sent]
