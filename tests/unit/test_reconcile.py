"""Reconciliation planning: keep, update, adopt, remove and delete from a snapshot."""

from __future__ import annotations

import pytest

from ankaios_agent.agent.model import AddCondition, DeleteCondition, DeleteRequest, ExecutionState
from ankaios_agent.agent.ports import OwnedWorkload
from ankaios_agent.agent.reconcile import Leftover, Removal, plan_added, plan_desired
from ankaios_agent.agent.scheduler import (
    Create,
    Delete,
    QueuedCreate,
    QueuedDelete,
    QueueEntry,
    Update,
    UpdateCreate,
    UpdateDelete,
)
from tests.unit.lifecycle_support import delete, inst, spec


def nothing_queued(_name: str) -> QueueEntry | None:
    return None


def leftover(
    name: str, id_: str = "1", state: ExecutionState | None = None, runtime: str = "podman"
) -> Leftover:
    return Leftover(
        runtime, OwnedWorkload(inst(name, id_), f"cid-{name}-{id_}", state or ExecutionState.running())
    )


def test_managed_identical_spec_is_kept() -> None:
    """The hello-time list does not restart an unchanged workload."""
    plan = plan_added([spec("a")], {"a": spec("a")}, nothing_queued, {})
    assert plan.operations == [] and plan.kept == ["a"]


def test_managed_changed_spec_becomes_update_without_delete_conditions() -> None:
    """Update(A, D') with D' = the managed instance, no delete conditions."""
    plan = plan_added([spec("a", "2")], {"a": spec("a", "1")}, nothing_queued, {})
    assert plan.operations == [Update(spec("a", "2"), DeleteRequest(inst("a", "1")))]


def test_identical_queued_spec_is_kept() -> None:
    """A workload still waiting with the same spec is not re-queued (no second WaitingToStart)."""
    waiting = spec("a", deps={"b": AddCondition.RUNNING})
    plan = plan_added([waiting], {}, {"a": QueuedCreate(waiting)}.get, {})
    assert plan.operations == [] and plan.kept == ["a"]


def test_running_leftover_with_same_instance_is_adopted() -> None:
    """Resume, no create."""
    found = leftover("a")
    plan = plan_added([spec("a")], {}, nothing_queued, {"a": [found]})
    assert plan.adopt == [(spec("a"), found)] and plan.operations == [] and plan.remove == []


def test_stopped_leftover_is_removed_silently_then_created() -> None:
    """Same instance but not running -> silent delete, normal create."""
    found = leftover("a", state=ExecutionState.exec_failed(1))
    plan = plan_added([spec("a")], {}, nothing_queued, {"a": [found]})
    assert plan.remove == [Removal(found, report_states=False)]
    assert plan.operations == [Create(spec("a"))]


def test_leftover_with_other_id_is_removed_with_states_then_created() -> None:
    """The old instance gets Stopping/Removed, the new one is created after it."""
    found = leftover("a", "0")
    plan = plan_added([spec("a", "1")], {}, nothing_queued, {"a": [found]})
    assert plan.remove == [Removal(found, report_states=True)]
    assert plan.operations == [Create(spec("a", "1"))]


def test_leftover_on_other_runtime_is_not_adopted() -> None:
    """A match is looked for in the group of the workload's runtime only."""
    found = leftover("a", runtime="podman-kube")
    plan = plan_added([spec("a")], {}, nothing_queued, {"a": [found]})
    assert plan.adopt == [] and plan.operations == [Create(spec("a"))]


def test_unlisted_leftovers_wait_for_the_complete_list() -> None:
    """An UpdateWorkload may be partial: leftovers of other names stay for the DesiredState answer."""
    plan = plan_added([spec("a")], {}, nothing_queued, {"z": [leftover("z")]})
    assert plan.remove == [] and list(plan.leftovers) == ["z"]


def test_desired_state_deletes_managed_workloads_no_longer_desired() -> None:
    """A managed workload missing from the complete list is deleted (the reference keeps it)."""
    plan = plan_desired([spec("a")], {"a": spec("a"), "b": spec("b", "3")}, {}, {})
    assert plan.operations == [Delete(DeleteRequest(inst("b", "3")))]


def test_desired_state_keeps_pending_delete_with_its_conditions() -> None:
    """A queued delete already carries its delete conditions; it is not replaced."""
    request = delete("b", deps={"c": DeleteCondition.NOT_PENDING_NOR_RUNNING})
    plan = plan_desired([], {"b": spec("b")}, {"b": QueuedDelete(request)}, {})
    assert plan.operations == []


def test_desired_state_turns_waiting_update_into_delete() -> None:
    """UpdateDelete of an undesired workload -> Delete with the update's delete request."""
    request = delete("b", deps={"c": DeleteCondition.NOT_PENDING_NOR_RUNNING})
    plan = plan_desired([], {"b": spec("b")}, {"b": UpdateDelete(spec("b", "2"), request)}, {})
    assert plan.operations == [Delete(request)]


def test_desired_state_deletes_queued_new_instance_of_waiting_update_create() -> None:
    """UpdateCreate of an undesired workload -> Delete naming the queued instance (it gets Removed)."""
    plan = plan_desired([], {"b": spec("b")}, {"b": UpdateCreate(spec("b", "2"), delete("b"))}, {})
    assert plan.operations == [Delete(DeleteRequest(inst("b", "2")))]


def test_desired_state_drops_queued_create_no_longer_desired() -> None:
    """The stale queued create is dropped and its instance reported Removed."""
    plan = plan_desired([], {}, {"q": QueuedCreate(spec("q", "4"))}, {})
    assert plan.operations == [Delete(DeleteRequest(inst("q", "4")))]


def test_desired_state_removes_leftovers_of_undesired_workloads_with_states() -> None:
    """Works when nothing is assigned."""
    found = leftover("z", "7")
    plan = plan_desired([], {}, {}, {"z": [found]})
    assert plan.remove == [Removal(found, report_states=True)] and plan.operations == []


def test_managed_identical_spec_with_queued_delete_becomes_update() -> None:
    """An add for a workload whose delete waits must not leave that delete queued."""
    queue = {"a": QueuedDelete(delete("a"))}
    plan = plan_added([spec("a")], {"a": spec("a")}, queue.get, {})
    assert plan.operations == [Update(spec("a"), DeleteRequest(inst("a")))] and plan.kept == []


def test_managed_identical_spec_with_other_queued_spec_becomes_update_of_the_queued_instance() -> None:
    """A reverted change that still waits is replaced, and the
    queued instance is the one the server may still show."""
    queue = {"a": UpdateCreate(spec("a", "2"), delete("a", "1"))}
    plan = plan_added([spec("a", "1")], {"a": spec("a", "1")}, queue.get, {})
    assert plan.operations == [Update(spec("a", "1"), DeleteRequest(inst("a", "2")))]


# --- ended containers started again (only for the runtimes the caller names) ---------------

SUCCEEDED = ExecutionState.succeeded()
FAILED = ExecutionState.exec_failed(1)

REUSE_CASES = [
    # case, leftover, reusable runtimes, reused?, removal (report_states) or None
    ("succeeded, same instance, reusable runtime", leftover("a", state=SUCCEEDED), {"podman"}, True, None),
    ("succeeded but the runtime cannot start it again", leftover("a", state=SUCCEEDED), set(), False, False),
    ("failed, same instance", leftover("a", state=FAILED), {"podman"}, False, False),
    ("succeeded, other id", leftover("a", "0", state=SUCCEEDED), {"podman"}, False, True),
    (
        "succeeded on another runtime",
        leftover("a", state=SUCCEEDED, runtime="podman-kube"),
        {"podman", "podman-kube"},
        False,
        False,
    ),
]


@pytest.mark.parametrize(
    ("case", "found", "reusable", "reused", "removal"), REUSE_CASES, ids=[c[0] for c in REUSE_CASES]
)
def test_an_ended_leftover_is_reused_only_when_everything_matches(
    case: str, found: Leftover, reusable: set[str], reused: bool, removal: bool | None
) -> None:
    plan = plan_added([spec("a")], {}, nothing_queued, {"a": [found]}, reusable)
    assert plan.operations == [Create(spec("a"))]
    assert plan.adopt == []
    assert plan.reuse == ([(spec("a"), found)] if reused else [])
    assert plan.remove == ([] if removal is None else [Removal(found, report_states=removal)])


def test_desired_state_passes_the_reusable_runtimes_on() -> None:
    found = leftover("a", state=SUCCEEDED)
    plan = plan_desired([spec("a")], {}, {}, {"a": [found]}, {"podman"})
    assert plan.reuse == [(spec("a"), found)] and plan.remove == []
    assert plan_desired([spec("a")], {}, {}, {"a": [found]}).reuse == []
