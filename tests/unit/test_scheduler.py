"""The dependency scheduler, rule by rule (behaviour "Scheduler: store and queue", "Scheduler: conditions",
"Scheduler: new operations", "Scheduler: re-evaluation", "Scheduler: waiting states", "Instance names")."""

from __future__ import annotations

import pytest

from ankaios_agent.agent.model import AddCondition, DeleteCondition, ExecutionState, State, WorkloadState
from ankaios_agent.agent.scheduler import (
    Create,
    Delete,
    QueuedCreate,
    QueuedDelete,
    Scheduler,
    StateLookup,
    Update,
    UpdateCreate,
    UpdateDelete,
    UpdateDeleteOnly,
    add_condition_met,
    add_conditions_met,
    delete_condition_met,
    delete_conditions_met,
)
from tests.unit.lifecycle_support import WAITING_TO_START, WAITING_TO_STOP, delete, inst, spec

ALL_STATES = list(State)


def lookup(**states: ExecutionState) -> StateLookup:
    """One known state per named workload, none for the others (as the v0.3.1 store answers)."""
    return lambda workload: [states[workload]] if workload in states else []


# --- behaviour "Scheduler: conditions" AddCondition


@pytest.mark.parametrize("condition", list(AddCondition))
def test_add_condition_missing_dependency_is_not_fulfilled(condition: AddCondition) -> None:
    """behaviour "Scheduler: conditions": a dependency that is not in the store does not fulfil an add
    condition."""
    assert not add_condition_met(condition, None)


@pytest.mark.parametrize(
    ("condition", "fulfilling"),
    [
        (AddCondition.RUNNING, State.RUNNING_OK),
        (AddCondition.SUCCEEDED, State.SUCCEEDED_OK),
        (AddCondition.FAILED, State.FAILED_EXEC_FAILED),
    ],
)
@pytest.mark.parametrize("state", ALL_STATES)
def test_add_condition_needs_exactly_its_substate(
    condition: AddCondition, fulfilling: State, state: State
) -> None:
    """behaviour "Scheduler: conditions": RUNNING=Running(Ok), SUCCEEDED=Succeeded(Ok),
    FAILED=Failed(ExecFailed) only."""
    assert add_condition_met(condition, ExecutionState(state)) is (state is fulfilling)


def test_add_condition_failed_is_not_met_by_lost_or_unknown() -> None:
    """behaviour "Scheduler: conditions": only Failed(ExecFailed) counts as FAILED."""
    assert not add_condition_met(AddCondition.FAILED, ExecutionState.lost())
    assert not add_condition_met(AddCondition.FAILED, ExecutionState.unknown("x"))
    assert add_condition_met(AddCondition.FAILED, ExecutionState.exec_failed(3))


def test_add_condition_ignores_additional_info() -> None:
    """behaviour "Scheduler: conditions": substates are compared exactly, additionalInfo is ignored."""
    assert add_condition_met(AddCondition.RUNNING, ExecutionState(State.RUNNING_OK, "whatever"))


# --- behaviour "Scheduler: conditions" DeleteCondition

_DELETE_TABLE = {
    # state: (DEL_COND_RUNNING, DEL_COND_NOT_PENDING_NOR_RUNNING)
    State.PENDING_WAITING_TO_START: (True, True),
    State.RUNNING_OK: (True, False),
    State.PENDING_INITIAL: (False, False),
    State.PENDING_STARTING: (False, False),
    State.PENDING_STARTING_FAILED: (False, False),
    State.SUCCEEDED_OK: (False, True),
    State.FAILED_EXEC_FAILED: (False, True),
    State.FAILED_LOST: (False, True),
    State.FAILED_UNKNOWN: (False, True),
    State.STOPPING: (False, True),
    State.STOPPING_WAITING_TO_STOP: (False, True),
    State.STOPPING_REQUESTED_AT_RUNTIME: (False, True),
    State.STOPPING_DELETE_FAILED: (False, True),
    State.AGENT_DISCONNECTED: (False, True),
    State.NOT_SCHEDULED: (False, True),
}


def test_delete_table_covers_every_state() -> None:
    """behaviour "Scheduler: conditions": the table below names every state except Removed (which deletes the
    entry)."""
    assert set(_DELETE_TABLE) == set(State) - {State.REMOVED}


@pytest.mark.parametrize("condition", list(DeleteCondition))
def test_delete_condition_missing_dependent_is_fulfilled(condition: DeleteCondition) -> None:
    """behaviour "Scheduler: conditions": a dependent that is not in the store fulfils every delete
    condition."""
    assert delete_condition_met(condition, None)


@pytest.mark.parametrize(("state", "expected"), _DELETE_TABLE.items())
def test_delete_condition_running_table(state: State, expected: tuple[bool, bool]) -> None:
    """behaviour "Scheduler: conditions": DEL_COND_RUNNING column."""
    assert delete_condition_met(DeleteCondition.RUNNING, ExecutionState(state)) is expected[0]


@pytest.mark.parametrize(("state", "expected"), _DELETE_TABLE.items())
def test_delete_condition_not_pending_nor_running_table(state: State, expected: tuple[bool, bool]) -> None:
    """behaviour "Scheduler: conditions": DEL_COND_NOT_PENDING_NOR_RUNNING column."""
    assert delete_condition_met(DeleteCondition.NOT_PENDING_NOR_RUNNING, ExecutionState(state)) is expected[1]


@pytest.mark.parametrize("condition", list(DeleteCondition))
def test_waiting_to_start_fulfils_every_delete_condition(condition: DeleteCondition) -> None:
    """behaviour "Scheduler: conditions": the special case that prevents deadlocks."""
    assert delete_condition_met(condition, WAITING_TO_START)


# --- behaviour "Scheduler: new operations" new operations


def test_create_without_dependencies_is_ready() -> None:
    """behaviour "Scheduler: new operations": an empty condition map means ready."""
    scheduler = Scheduler()
    decision = scheduler.schedule([Create(spec("a"))], lookup())
    assert decision.ready == [Create(spec("a"))]
    assert decision.report == []
    assert len(scheduler) == 0


def test_create_with_met_dependency_is_ready() -> None:
    """behaviour "Scheduler: new operations": add fulfilled -> ready Create."""
    a = spec("a", deps={"b": AddCondition.RUNNING})
    decision = Scheduler().schedule([Create(a)], lookup(b=ExecutionState.running()))
    assert decision.ready == [Create(a)]


def test_create_with_unmet_dependency_waits_to_start() -> None:
    """behaviour "Scheduler: new operations", "Scheduler: waiting states": queue Create and report
    Pending(WaitingToStart) for the new instance."""
    scheduler = Scheduler()
    a = spec("a", "7", deps={"b": AddCondition.RUNNING})
    decision = scheduler.schedule([Create(a)], lookup())
    assert decision.ready == []
    assert decision.report == [WorkloadState(inst("a", "7"), WAITING_TO_START)]
    assert scheduler.queued("a") == QueuedCreate(a)


def test_update_with_both_conditions_met_is_ready() -> None:
    """behaviour "Scheduler: new operations": add and delete fulfilled -> ready Update."""
    op = Update(spec("a", "2"), delete("a", "1"))
    assert Scheduler().schedule([op], lookup()).ready == [op]


def test_update_with_pending_create_deletes_old_now() -> None:
    """behaviour "Scheduler: new operations": delete fulfilled, add not -> WaitingToStart[new], queue
    UpdateCreate,
    ready UpdateDeleteOnly."""
    scheduler = Scheduler()
    new = spec("a", "2", deps={"b": AddCondition.SUCCEEDED})
    old = delete("a", "1")
    decision = scheduler.schedule([Update(new, old)], lookup())
    assert decision.ready == [UpdateDeleteOnly(old)]
    assert decision.report == [WorkloadState(inst("a", "2"), WAITING_TO_START)]
    assert scheduler.queued("a") == UpdateCreate(new, old)


@pytest.mark.parametrize("add_met", [True, False])
def test_update_with_pending_delete_waits_to_stop_under_old_name(add_met: bool) -> None:
    """behaviour "Scheduler: new operations": delete not fulfilled (add either way) -> queue UpdateDelete,
    Stopping(WaitingToStop)[old]."""
    scheduler = Scheduler()
    new = spec("a", "2", deps={"b": AddCondition.RUNNING})
    old = delete("a", "1", deps={"c": DeleteCondition.NOT_PENDING_NOR_RUNNING})
    states = {"c": ExecutionState.running()}
    if add_met:
        states["b"] = ExecutionState.running()
    decision = scheduler.schedule([Update(new, old)], lookup(**states))
    assert decision.ready == []
    assert decision.report == [WorkloadState(inst("a", "1"), WAITING_TO_STOP)]
    assert scheduler.queued("a") == UpdateDelete(new, old)


def test_delete_with_met_conditions_is_ready() -> None:
    """behaviour "Scheduler: new operations": delete fulfilled -> ready Delete."""
    op = Delete(delete("a", deps={"c": DeleteCondition.NOT_PENDING_NOR_RUNNING}))
    assert Scheduler().schedule([op], lookup(c=ExecutionState.succeeded())).ready == [op]


def test_pending_delete_waits_to_stop() -> None:
    """behaviour "Scheduler: new operations", "Scheduler: waiting states": delete not fulfilled -> queue
    Delete, report Stopping(WaitingToStop)."""
    scheduler = Scheduler()
    request = delete("a", deps={"c": DeleteCondition.NOT_PENDING_NOR_RUNNING})
    decision = scheduler.schedule([Delete(request)], lookup(c=ExecutionState.running()))
    assert decision.report == [WorkloadState(inst("a"), WAITING_TO_STOP)]
    assert scheduler.queued("a") == QueuedDelete(request)


def test_update_delete_only_is_never_queued() -> None:
    """behaviour "Scheduler: new operations": UpdateDeleteOnly from outside is ignored with a warning."""
    scheduler = Scheduler()
    decision = scheduler.schedule([UpdateDeleteOnly(delete("a"))], lookup())
    assert decision.ready == [] and decision.report == [] and len(scheduler) == 0


def test_new_queued_entry_replaces_older_entry_of_same_name() -> None:
    """behaviour "Scheduler: store and queue", "Instance names": the queue is keyed by workload name."""
    scheduler = Scheduler()
    scheduler.schedule([Create(spec("a", "1", deps={"b": AddCondition.RUNNING}))], lookup())
    newer = spec("a", "2", deps={"b": AddCondition.RUNNING})
    scheduler.schedule([Create(newer)], lookup())
    assert scheduler.queued("a") == QueuedCreate(newer)
    assert len(scheduler) == 1


def test_new_operation_drops_queued_entry_for_that_name() -> None:
    """behaviour "Scheduler: new operations": a ready Delete removes the stale queued Create, so it can never
    run later."""
    scheduler = Scheduler()
    scheduler.schedule([Create(spec("a", deps={"b": AddCondition.RUNNING}))], lookup())
    decision = scheduler.schedule([Delete(delete("a"))], lookup())
    assert decision.ready == [Delete(delete("a"))]
    assert scheduler.queued("a") is None
    later = scheduler.reevaluate(lookup(b=ExecutionState.running()))
    assert later.ready == []


def test_immediate_update_drops_queued_create() -> None:
    """behaviour "Scheduler: new operations": an immediately executed Update also drops the queued entry."""
    scheduler = Scheduler()
    scheduler.schedule([Create(spec("a", "1", deps={"b": AddCondition.RUNNING}))], lookup())
    op = Update(spec("a", "2"), delete("a", "1"))
    assert scheduler.schedule([op], lookup()).ready == [op]
    assert len(scheduler) == 0


# --- behaviour "Scheduler: re-evaluation" re-evaluation


def test_queued_create_becomes_ready_without_report() -> None:
    """behaviour "Scheduler: re-evaluation": Create, add now fulfilled -> ready Create, no state."""
    scheduler = Scheduler()
    a = spec("a", deps={"b": AddCondition.RUNNING})
    scheduler.schedule([Create(a)], lookup())
    decision = scheduler.reevaluate(lookup(b=ExecutionState.running()))
    assert decision.ready == [Create(a)] and decision.report == []
    assert len(scheduler) == 0


def test_still_waiting_entries_stay_silently() -> None:
    """behaviour "Scheduler: re-evaluation": WaitingToStart / WaitingToStop are reported only when an entry is
    first queued."""
    scheduler = Scheduler()
    scheduler.schedule(
        [
            Create(spec("a", deps={"b": AddCondition.RUNNING})),
            Delete(delete("c", deps={"d": DeleteCondition.NOT_PENDING_NOR_RUNNING})),
        ],
        lookup(d=ExecutionState.running()),
    )
    decision = scheduler.reevaluate(lookup(b=ExecutionState.succeeded(), d=ExecutionState.running()))
    assert decision.ready == [] and decision.report == []
    assert len(scheduler) == 2


def test_update_create_becomes_update_when_add_met() -> None:
    """behaviour "Scheduler: re-evaluation": UpdateCreate, add fulfilled -> ready Update(spec, D), no
    state."""
    scheduler = Scheduler()
    new, old = spec("a", "2", deps={"b": AddCondition.RUNNING}), delete("a", "1")
    scheduler.schedule([Update(new, old)], lookup())
    decision = scheduler.reevaluate(lookup(b=ExecutionState.running()))
    assert decision.ready == [Update(new, old)] and decision.report == []


def test_update_delete_becomes_update_when_both_met() -> None:
    """behaviour "Scheduler: re-evaluation": UpdateDelete, add and delete fulfilled -> ready Update."""
    scheduler = Scheduler()
    new = spec("a", "2")
    old = delete("a", "1", deps={"c": DeleteCondition.NOT_PENDING_NOR_RUNNING})
    scheduler.schedule([Update(new, old)], lookup(c=ExecutionState.running()))
    decision = scheduler.reevaluate(lookup(c=ExecutionState.succeeded()))
    assert decision.ready == [Update(new, old)] and decision.report == []


def test_update_delete_to_update_create_transition_reports_waiting_to_start() -> None:
    """behaviour "Scheduler: re-evaluation": UpdateDelete with delete met but add not -> UpdateCreate + ready
    UpdateDeleteOnly,
    and Pending(WaitingToStart) for the new instance even during re-evaluation."""
    scheduler = Scheduler()
    new = spec("a", "2", deps={"b": AddCondition.RUNNING})
    old = delete("a", "1", deps={"c": DeleteCondition.NOT_PENDING_NOR_RUNNING})
    scheduler.schedule([Update(new, old)], lookup(c=ExecutionState.running()))
    decision = scheduler.reevaluate(lookup(c=ExecutionState.exec_failed(1)))
    assert decision.ready == [UpdateDeleteOnly(old)]
    assert decision.report == [WorkloadState(inst("a", "2"), WAITING_TO_START)]
    assert scheduler.queued("a") == UpdateCreate(new, old)


def test_queued_delete_becomes_ready() -> None:
    """behaviour "Scheduler: re-evaluation": Delete, delete now fulfilled -> ready Delete, no state."""
    scheduler = Scheduler()
    request = delete("a", deps={"c": DeleteCondition.NOT_PENDING_NOR_RUNNING})
    scheduler.schedule([Delete(request)], lookup(c=ExecutionState.running()))
    decision = scheduler.reevaluate(lookup())
    assert decision.ready == [Delete(request)] and decision.report == []


def test_ready_list_is_new_operations_then_reevaluated_ones() -> None:
    """behaviour "Scheduler: new operations": the ready list is the new ready operations followed by the re-
    evaluated ones."""
    scheduler = Scheduler()
    waiting = spec("w", deps={"b": AddCondition.RUNNING})
    scheduler.schedule([Create(waiting)], lookup())
    fresh = spec("f")
    decision = scheduler.schedule([Create(fresh)], lookup(b=ExecutionState.running()))
    assert decision.ready == [Create(fresh), Create(waiting)]


def test_dependency_on_unknown_workload_waits_forever() -> None:
    """behaviour "States of other agents": a dependency on a workload that exists nowhere is never
    fulfilled."""
    scheduler = Scheduler()
    scheduler.schedule([Create(spec("a", deps={"ghost": AddCondition.RUNNING}))], lookup())
    for _ in range(3):
        assert scheduler.reevaluate(lookup(other=ExecutionState.running())).ready == []
    assert scheduler.queued("a") is not None


# --- behaviour "v1.0.1: store keys": several known instances under one name


def instances(**states: list[ExecutionState]) -> StateLookup:
    return lambda workload: states.get(workload, [])


@pytest.mark.parametrize(
    ("known", "met"),
    [
        ([], False),
        ([ExecutionState.running()], True),
        ([ExecutionState.stopping("x")], False),
        ([ExecutionState.running(), ExecutionState.starting()], True),  # the old instance still runs
        ([ExecutionState.starting(), ExecutionState.running()], True),
        ([ExecutionState.succeeded(), ExecutionState.starting()], False),
    ],
)
def test_an_add_condition_is_met_by_any_known_instance(known: list[ExecutionState], met: bool) -> None:
    a = spec("a", deps={"b": AddCondition.RUNNING})
    assert add_conditions_met(a, instances(b=known)) is met


@pytest.mark.parametrize(
    ("known", "met"),
    [
        ([], True),
        ([ExecutionState.succeeded()], True),
        ([ExecutionState.succeeded(), ExecutionState.removed()], True),
        ([ExecutionState.succeeded(), ExecutionState.running()], False),  # one instance still runs
        ([ExecutionState.running(), ExecutionState.succeeded()], False),
        ([ExecutionState.waiting_to_start(), ExecutionState.exec_failed(1)], True),
        ([ExecutionState.starting(), ExecutionState.succeeded()], False),
    ],
)
def test_a_delete_condition_needs_every_known_instance(known: list[ExecutionState], met: bool) -> None:
    request = delete("a", deps={"c": DeleteCondition.NOT_PENDING_NOR_RUNNING})
    assert delete_conditions_met(request, instances(c=known)) is met


def test_a_queued_create_starts_once_one_instance_of_its_dependency_runs() -> None:
    scheduler = Scheduler()
    a = spec("a", deps={"b": AddCondition.RUNNING})
    scheduler.schedule([Create(a)], instances(b=[ExecutionState.starting()]))
    decision = scheduler.reevaluate(instances(b=[ExecutionState.starting(), ExecutionState.running()]))
    assert decision.ready == [Create(a)]
