"""The manager with FakeRuntime, fake control interfaces and a recording sink: operations,
dependencies, own states, reconnect without restarts and resume after an agent restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest

from ankaios_agent.agent.fakes import FakeClock, FakeControlInterfaceHost, FakeRuntime
from ankaios_agent.agent.manager import Manager
from ankaios_agent.agent.model import (
    AGENT_REQUEST_PREFIX,
    AddCondition,
    DeleteCondition,
    DeleteRequest,
    DesiredState,
    ExecutionState,
    Response,
    RestartPolicy,
    UpdateWorkload,
    UpdateWorkloadState,
    WorkloadSpec,
    WorkloadState,
)
from ankaios_agent.agent.reconcile import DesiredSnapshot
from ankaios_agent.agent.session import DesiredStateQuery
from ankaios_agent.agent.timings import AgentTimings
from tests.support.lifecycle import WaitingSink, settle
from tests.unit.lifecycle_support import (
    AGENT,
    NO_MORE_RETRIES,
    REMOVED,
    RUNNING,
    STARTING,
    STOPPING_REQUESTED,
    WAITING_TO_START,
    WAITING_TO_STOP,
    delete,
    inst,
    spec,
)


@dataclass
class Agent:
    manager: Manager
    runtime: FakeRuntime
    ci: FakeControlInterfaceHost
    sink: WaitingSink
    clock: FakeClock

    async def update(self, added: Sequence[WorkloadSpec] = (), deleted: Sequence[DeleteRequest] = ()) -> None:
        await self.manager.handle(UpdateWorkload(added=tuple(added), deleted=tuple(deleted)))

    async def others(self, **states: ExecutionState) -> None:
        """States of workloads on another agent."""
        batch = tuple(WorkloadState(inst(name, agent="agent_B"), s) for name, s in states.items())
        await self.manager.handle(UpdateWorkloadState(batch))

    async def reconnect(
        self, hello_update: Sequence[WorkloadSpec] | None, desired: Sequence[WorkloadSpec]
    ) -> None:
        """What the server does after a hello: [UpdateWorkload], then the answer to our request."""
        await self.manager.on_connected()
        request = self.sink.requests()[-1]
        if hello_update:
            await self.update(hello_update)
        await self.manager.handle(DesiredState(request.request_id, tuple(desired)))

    async def running(self, *names: str) -> None:
        for name in names:

            def is_running(n: str = name) -> bool:
                return bool(self.sink.trace(n)) and self.sink.trace(n)[-1][1] == RUNNING

            await self.sink.wait_for(is_running)


@pytest.fixture
async def agent() -> AsyncIterator[Agent]:
    runtime = FakeRuntime()
    ci = FakeControlInterfaceHost()
    sink = WaitingSink()
    clock = FakeClock()
    manager = Manager(AGENT, {"podman": runtime}, ci, sink, AgentTimings(), clock=clock)
    run = asyncio.create_task(manager.run())
    await settle()
    yield Agent(manager, runtime, ci, sink, clock)
    await manager.shutdown()
    await asyncio.wait_for(run, 1)


# --- operations ---------------------------------------------------------------


async def test_added_workload_is_created(agent: Agent) -> None:
    """Create -> Pending(Starting) -> runtime states."""
    await agent.update([spec("a")])
    await agent.running("a")
    assert agent.sink.trace("a") == [("1", STARTING), ("1", RUNNING)]


async def test_delete_plus_add_of_same_name_is_one_update(agent: Agent) -> None:
    """Old instance removed, then the new one created."""
    await agent.update([spec("a", "1")])
    await agent.running("a")
    await agent.update([spec("a", "2")], [delete("a", "1")])
    await agent.sink.wait_for(lambda: agent.sink.trace("a")[-1] == ("2", RUNNING))
    assert agent.sink.trace("a")[2:] == [
        ("1", STOPPING_REQUESTED),
        ("1", REMOVED),
        ("2", STARTING),
        ("2", RUNNING),
    ]
    assert agent.runtime.peak_per_workload["a"] == 1


async def test_delete_of_unmanaged_workload_reports_removed(agent: Agent) -> None:
    """The CLI waits for this Removed."""
    await agent.update(deleted=[delete("ghost", "5")])
    assert agent.sink.states() == [WorkloadState(inst("ghost", "5"), REMOVED)]


async def test_delete_of_managed_workload(agent: Agent) -> None:
    """Stopping(RequestedAtRuntime) -> Removed; FIFOs removed."""
    await agent.update([spec("a")])
    await agent.running("a")
    await agent.update(deleted=[delete("a")])
    await agent.sink.wait_for_state("a", REMOVED)
    assert agent.sink.trace("a")[2:] == [("1", STOPPING_REQUESTED), ("1", REMOVED)]
    assert agent.runtime.containers == {} and "a" in agent.ci.removed


async def test_unknown_runtime_reports_nothing_but_delete_reports_removed(agent: Agent) -> None:
    """Silence on create, Removed on delete."""
    await agent.update([spec("k", runtime="containerd")])
    await settle()
    assert agent.sink.states() == [] and agent.runtime.calls == []
    await agent.update(deleted=[delete("k")])
    assert agent.sink.states() == [WorkloadState(inst("k"), REMOVED)]


async def test_bad_workload_name_fails_alone(agent: Agent) -> None:
    """A name whose FIFO folder cannot exist -> Pending(StartingFailed)/<reason>; others run."""
    await agent.update([spec("bad/name"), spec("good")])
    await agent.running("good")
    await agent.sink.wait_for_state("bad/name", NO_MORE_RETRIES)
    first = agent.sink.trace("bad/name")[0][1]
    assert first.display == "Pending(StartingFailed)" and first.info
    assert agent.runtime.created() == [inst("good")]


async def test_response_goes_to_the_control_interface_router(agent: Agent) -> None:
    """Responses are routed by the control-interface host."""
    response = Response("a@42", b"\x01")
    await agent.manager.handle(response)
    assert agent.ci.routed == [response]


# --- dependencies through the manager ------------------------------------------------------


async def test_create_waits_for_other_agents_workload(agent: Agent) -> None:
    """WaitingToStart until a non-empty UpdateWorkloadState fulfils it."""
    await agent.update([spec("a", deps={"b": AddCondition.RUNNING})])
    assert agent.sink.trace("a") == [("1", WAITING_TO_START)]
    await agent.manager.handle(UpdateWorkloadState(()))
    await agent.others(b=ExecutionState.starting())
    await settle()
    assert agent.runtime.calls == []
    await agent.others(b=RUNNING)
    await agent.running("a")
    assert agent.sink.trace("a") == [("1", WAITING_TO_START), ("1", STARTING), ("1", RUNNING)]


async def test_create_waits_for_own_workload_state(agent: Agent) -> None:
    """Re-evaluation after each own state starts the dependent."""
    await agent.update([spec("a", deps={"b": AddCondition.SUCCEEDED}), spec("b")])
    await agent.running("b")
    assert agent.sink.trace("a") == [("1", WAITING_TO_START)]
    agent.runtime.exit("b", 0)
    await agent.running("a")


async def test_failed_dependency_needs_exec_failed(agent: Agent) -> None:
    """ADD_COND_FAILED is met by Failed(ExecFailed), not by Failed(Lost)."""
    await agent.update([spec("a", deps={"b": AddCondition.FAILED})])
    await agent.others(b=ExecutionState.lost())
    await settle()
    assert agent.runtime.calls == []
    await agent.others(b=ExecutionState.exec_failed(2))
    await agent.running("a")


async def test_pending_delete_waits_to_stop_and_hysteresis_holds_it(agent: Agent) -> None:
    """Stopping(WaitingToStop) stays although the container still runs."""
    await agent.update([spec("a")])
    await agent.running("a")
    await agent.others(b=RUNNING)
    await agent.update(deleted=[delete("a", deps={"b": DeleteCondition.NOT_PENDING_NOR_RUNNING})])
    assert agent.sink.trace("a")[-1] == ("1", WAITING_TO_STOP)
    agent.runtime.set_state("a", ExecutionState.exec_failed(1))
    await agent.sink.wait_for(lambda: len(agent.sink.trace("a")) == 4)
    assert agent.sink.trace("a")[-1] == ("1", WAITING_TO_STOP)  # replaced by the hysteresis
    await agent.others(b=ExecutionState.succeeded())
    await agent.sink.wait_for_state("a", REMOVED)
    assert agent.sink.trace("a")[-2:] == [("1", STOPPING_REQUESTED), ("1", REMOVED)]


async def test_update_with_pending_create(agent: Agent) -> None:
    """WaitingToStart[new], old deleted now, later old reported again."""
    await agent.update([spec("a", "1")])
    await agent.running("a")
    await agent.update([spec("a", "2", deps={"c": AddCondition.RUNNING})], [delete("a", "1")])
    await agent.sink.wait_for_state("a", REMOVED)
    assert agent.sink.trace("a")[2:] == [("2", WAITING_TO_START), ("1", STOPPING_REQUESTED), ("1", REMOVED)]
    await agent.others(c=RUNNING)
    await agent.sink.wait_for(lambda: agent.sink.trace("a")[-1] == ("2", RUNNING))
    assert agent.sink.trace("a")[5:] == [
        ("1", STOPPING_REQUESTED),
        ("1", REMOVED),
        ("2", STARTING),
        ("2", RUNNING),
    ]


async def test_update_delete_becomes_update_create(agent: Agent) -> None:
    """UpdateDelete -> (delete met, add not) -> WaitingToStart[new] + delete old
    -> later create."""
    await agent.update([spec("a", "1")])
    await agent.running("a")
    await agent.others(b=RUNNING)
    new = spec("a", "2", deps={"c": AddCondition.RUNNING})
    await agent.update([new], [delete("a", "1", deps={"b": DeleteCondition.NOT_PENDING_NOR_RUNNING})])
    assert agent.sink.trace("a")[-1] == ("1", WAITING_TO_STOP)
    await agent.others(b=ExecutionState.succeeded())
    await agent.sink.wait_for_state("a", REMOVED)
    assert agent.sink.trace("a")[3:] == [("2", WAITING_TO_START), ("1", STOPPING_REQUESTED), ("1", REMOVED)]
    await agent.others(c=RUNNING)
    await agent.sink.wait_for(lambda: agent.sink.trace("a")[-1] == ("2", RUNNING))


async def test_delete_drops_queued_create(agent: Agent) -> None:
    """A waiting workload that is deleted reports Removed and never starts later."""
    await agent.update([spec("a", deps={"gate": AddCondition.RUNNING})])
    await agent.update(deleted=[delete("a")])
    assert agent.sink.trace("a") == [("1", WAITING_TO_START), ("1", REMOVED)]
    await agent.others(gate=RUNNING)
    await settle()
    assert agent.runtime.calls == []


async def test_fifty_waiting_workloads_in_one_update_do_not_deadlock(agent: Agent) -> None:
    """Many scheduler reports inside one message are processed in place."""
    names = [f"w{i}" for i in range(50)]
    await agent.update([spec(n, deps={"gate": AddCondition.RUNNING}) for n in names])
    assert [s.state for s in agent.sink.states()] == [WAITING_TO_START] * 50
    await agent.others(gate=RUNNING)
    await agent.running(*names)
    assert len(agent.runtime.containers) == 50


async def test_own_states_are_sent_one_per_message_with_exact_instance(agent: Agent) -> None:
    """Every message is one WorkloadState carrying the operation's instance."""
    await agent.update([spec("a", "1")])
    await agent.running("a")
    assert all(isinstance(m, WorkloadState) and m.instance == inst("a", "1") for m in agent.sink.messages)


async def test_state_of_unknown_instance_is_ignored(agent: Agent) -> None:
    """Runtime events for workloads without a loop are dropped (logged at debug)."""
    agent.runtime.add_existing(inst("stray"))
    agent.runtime.set_state("stray", ExecutionState.exec_failed(1))
    await settle()
    assert agent.sink.states() == []


# --- reconciliation ------------------------------------------------------


async def test_reconnect_does_not_restart_unchanged_workloads(agent: Agent) -> None:
    """The hello-time UpdateWorkload keeps running workloads untouched,
    and the current states are re-sent after reconciliation."""
    await agent.update([spec("a"), spec("b")])
    await agent.running("a", "b")
    agent.sink.clear()
    await agent.reconnect([spec("a"), spec("b")], [spec("a"), spec("b")])
    await settle()
    assert len(agent.runtime.created()) == 2
    assert agent.runtime.deleted() == []
    request = agent.sink.messages[0]
    assert request == agent.sink.requests()[0]
    assert request.request_id.startswith(AGENT_REQUEST_PREFIX)
    assert agent.sink.states() == [WorkloadState(inst("a"), RUNNING), WorkloadState(inst("b"), RUNNING)]


async def test_states_sent_since_the_hello_are_not_sent_twice(agent: Agent) -> None:
    """The re-send after reconciliation covers only states the new session lacks."""
    await agent.manager.on_connected()
    request = agent.sink.requests()[-1]
    await agent.update([spec("a"), spec("b")])
    await agent.running("a", "b")
    sent = agent.sink.states()
    await agent.manager.handle(DesiredState(request.request_id, (spec("a"), spec("b"))))
    await settle()
    assert agent.sink.states() == sent
    assert sent.count(WorkloadState(inst("a"), RUNNING)) == 1


async def test_reconnect_deletes_workload_removed_while_away(agent: Agent) -> None:
    """Absent from the snapshot -> deleted with the normal states."""
    await agent.update([spec("a"), spec("b")])
    await agent.running("a", "b")
    await agent.reconnect([spec("a")], [spec("a")])
    await agent.sink.wait_for_state("b", REMOVED)
    assert agent.sink.trace("b")[2:] == [("1", RUNNING), ("1", STOPPING_REQUESTED), ("1", REMOVED)]
    assert list(agent.runtime.containers) == [inst("a")]


async def test_reconnect_with_nothing_assigned_deletes_everything(agent: Agent) -> None:
    """No UpdateWorkload arrives when nothing is assigned; the snapshot still works."""
    await agent.update([spec("a")])
    await agent.running("a")
    await agent.reconnect(None, [])
    await agent.sink.wait_for_state("a", REMOVED)
    assert agent.runtime.containers == {}


async def test_reconnect_updates_changed_workload(agent: Agent) -> None:
    """A different id after the reconnect -> update (old removed before new)."""
    await agent.update([spec("a", "1")])
    await agent.running("a")
    await agent.reconnect([spec("a", "2")], [spec("a", "2")])
    await agent.sink.wait_for(lambda: agent.sink.trace("a")[-1] == ("2", RUNNING))
    assert ("1", REMOVED) in agent.sink.trace("a")
    assert agent.runtime.peak_per_workload["a"] == 1


async def test_reconnect_drops_waiting_workload_no_longer_desired(agent: Agent) -> None:
    """A queued create that the server no longer lists is dropped and reported Removed."""
    await agent.update([spec("a", deps={"gate": AddCondition.RUNNING})])
    await agent.reconnect(None, [])
    assert agent.sink.trace("a")[-1] == ("1", REMOVED)
    await agent.others(gate=RUNNING)
    await settle()
    assert agent.runtime.calls == []


async def test_startup_adopts_running_container(agent: Agent) -> None:
    """Same instance and Running(Ok) -> adopted, no create, no Pending."""
    runtime_id = agent.runtime.add_existing(inst("a"))
    await agent.reconnect([spec("a")], [spec("a")])
    await agent.running("a")
    await settle()
    assert agent.runtime.calls == []
    assert agent.runtime.container("a").runtime_id == runtime_id
    assert all(state == RUNNING for _, state in agent.sink.trace("a"))
    assert agent.ci.folders["a"].name == inst("a").folder_name


async def test_startup_replaces_container_with_other_id_before_creating(agent: Agent) -> None:
    """The old container is fully deleted before its replacement is created."""
    agent.runtime.add_existing(inst("a", "0"))
    await agent.reconnect([spec("a", "1")], [spec("a", "1")])
    await agent.sink.wait_for(lambda: agent.sink.trace("a")[-1:] == [("1", RUNNING)])
    assert agent.runtime.calls == [("delete", inst("a", "0")), ("create", inst("a", "1"))]
    assert agent.sink.trace("a")[:2] == [("0", STOPPING_REQUESTED), ("0", REMOVED)]
    assert agent.runtime.peak_per_workload["a"] == 1


async def test_startup_replaces_stopped_container_of_same_instance_silently(agent: Agent) -> None:
    """Matched but not running -> silent delete, then the normal create."""
    agent.runtime.add_existing(inst("a"), ExecutionState.succeeded())
    await agent.reconnect([spec("a")], [spec("a")])
    await agent.sink.wait_for(lambda: agent.sink.trace("a")[-1:] == [("1", RUNNING)])
    assert agent.runtime.calls == [("delete", inst("a")), ("create", inst("a"))]
    assert agent.sink.trace("a")[0] == ("1", STARTING)


async def test_startup_with_nothing_assigned_removes_leftovers(agent: Agent) -> None:
    """Leftovers of undesired workloads are deleted with states."""
    agent.runtime.add_existing(inst("old", "9"))
    await agent.reconnect(None, [])
    await agent.sink.wait_for_state("old", REMOVED)
    assert agent.sink.trace("old") == [("9", STOPPING_REQUESTED), ("9", REMOVED)]
    assert agent.runtime.containers == {}


async def test_failed_leftover_removal_is_retried_until_removed(agent: Agent) -> None:
    """A leftover whose delete failed (Podman down) was left running until the next
    reconnect; now DeleteFailed is reported once and the delete retried with back-off until Removed."""
    agent.runtime.add_existing(inst("old", "9"))
    agent.runtime.fail_deletes("old", "cannot reach Podman", "cannot reach Podman")
    await agent.reconnect(None, [])
    await agent.sink.wait_for_state("old", REMOVED)
    assert agent.sink.trace("old") == [
        ("9", STOPPING_REQUESTED),
        ("9", ExecutionState.delete_failed("cannot reach Podman")),
        ("9", REMOVED),
    ]
    assert agent.runtime.containers == {}


async def test_leftover_listing_failure_creates_as_new(agent: Agent) -> None:
    """A runtime that cannot be listed counts as empty."""
    agent.runtime.list_error = RuntimeError("socket gone")
    await agent.reconnect([spec("a")], [spec("a")])
    await agent.running("a")


async def test_error_answer_changes_nothing(agent: Agent) -> None:
    """A failed reconciliation request deletes nothing."""
    await agent.update([spec("a")])
    await agent.running("a")
    await agent.manager.on_connected()
    request = agent.sink.requests()[-1]
    await agent.manager.handle(DesiredState(request.request_id, (), error="not allowed"))
    await settle()
    assert agent.runtime.deleted() == []


async def test_stale_reconciliation_answer_is_ignored(agent: Agent) -> None:
    """Only the answer to the latest request counts (a reconnect may overtake an answer)."""
    await agent.update([spec("a")])
    await agent.running("a")
    await agent.manager.on_connected()
    stale = agent.sink.requests()[-1]
    await agent.manager.on_connected()
    await agent.manager.handle(DesiredState(stale.request_id, ()))
    await settle()
    assert agent.runtime.deleted() == []


# --- shutdown ----------------------------------------------------------------------------------------


async def test_shutdown_keeps_workloads_running_and_is_idempotent(agent: Agent) -> None:
    """Loops stop, containers stay, control interfaces close."""
    await agent.update([spec("a")])
    await agent.running("a")
    await agent.manager.shutdown()
    await agent.manager.shutdown()
    assert agent.ci.closed
    assert inst("a") in agent.runtime.containers and agent.runtime.deleted() == []
    await agent.update(deleted=[delete("a")])
    assert agent.sink.trace("a")[-1] == ("1", RUNNING)


async def test_readded_workload_waits_for_its_deleting_loop(agent: Agent) -> None:
    """A delete followed at once by an add of the same name never overlaps."""
    await agent.update([spec("a")])
    await agent.running("a")
    await agent.update(deleted=[delete("a")])
    await agent.update([spec("a")])
    await agent.sink.wait_for(lambda: agent.sink.trace("a").count(("1", RUNNING)) == 2)
    assert agent.runtime.calls == [("create", inst("a")), ("delete", inst("a")), ("create", inst("a"))]
    assert all(s.display != "Pending(StartingFailed)" for _, s in agent.sink.trace("a"))


async def test_own_states_from_the_server_do_not_enter_the_store(agent: Agent) -> None:
    """The server never sends an agent its own states; one that comes is ignored."""
    await agent.update([spec("a", deps={"b": AddCondition.RUNNING})])
    await agent.manager.handle(UpdateWorkloadState((WorkloadState(inst("b"), RUNNING),)))
    await settle()
    assert agent.runtime.calls == []


async def test_broken_event_stream_is_subscribed_again(agent: Agent) -> None:
    """A runtime's event stream that fails is re-subscribed after event_resubscribe_delay."""
    await agent.update([spec("a", restart=RestartPolicy.ON_FAILURE)])
    await agent.running("a")
    agent.runtime.break_event_streams()
    await agent.sink.wait_for(lambda: agent.runtime.subscribers == 1 and agent.clock.sleeps == [1.0])
    agent.runtime.exit("a", 1)
    await agent.sink.wait_for(lambda: len(agent.runtime.created("a")) == 2)


async def test_run_returns_after_shutdown() -> None:
    """Shutdown ends run() normally, so a supervising TaskGroup sees no error."""
    manager = Manager(
        AGENT, {"podman": FakeRuntime()}, FakeControlInterfaceHost(), WaitingSink(), AgentTimings()
    )
    run = asyncio.create_task(manager.run())
    await settle()
    await manager.shutdown()
    await asyncio.wait_for(run, 1)
    assert run.result() is None


async def test_run_without_runtimes_lasts_until_shutdown() -> None:
    """run() is supervised with FIRST_COMPLETED: it must not end early, even with no runtime."""
    manager = Manager(AGENT, {}, FakeControlInterfaceHost(), WaitingSink(), AgentTimings())
    run = asyncio.create_task(manager.run())
    await settle()
    assert not run.done()
    await manager.shutdown()
    await asyncio.wait_for(run, 1)
    assert run.result() is None


async def test_readd_of_workload_waiting_to_stop_cancels_the_queued_delete(agent: Agent) -> None:
    """An add for a workload whose delete still waits is a new operation
    for that name; the queued delete must not run later and remove the re-added workload."""
    await agent.update([spec("a")])
    await agent.running("a")
    await agent.others(b=RUNNING)
    await agent.update(deleted=[delete("a", deps={"b": DeleteCondition.NOT_PENDING_NOR_RUNNING})])
    assert agent.sink.trace("a")[-1] == ("1", WAITING_TO_STOP)
    await agent.update([spec("a")])
    await agent.sink.wait_for(lambda: agent.sink.trace("a")[-1] == ("1", RUNNING))
    await agent.others(b=ExecutionState.succeeded())
    await settle()
    assert agent.sink.trace("a")[-1] == ("1", RUNNING)
    assert inst("a") in agent.runtime.containers


async def test_reconnect_reverting_a_waiting_update_cancels_it(agent: Agent) -> None:
    """The server lists the running spec again after a reconnect
    (the user reverted a change that still waited for its create); the queued new spec must not
    run later, and the running spec's workload must run again."""
    await agent.update([spec("a", "1")])
    await agent.running("a")
    await agent.update([spec("a", "2", deps={"c": AddCondition.RUNNING})], [delete("a", "1")])
    await agent.sink.wait_for_state("a", REMOVED)
    await agent.reconnect([spec("a", "1")], [spec("a", "1")])
    await agent.sink.wait_for(lambda: agent.sink.trace("a")[-1] == ("1", RUNNING))
    await agent.others(c=RUNNING)
    await settle()
    assert agent.sink.trace("a")[-1] == ("1", RUNNING)
    assert list(agent.runtime.containers) == [inst("a", "1")]
    assert ("2", REMOVED) in agent.sink.trace("a")  # the server's row of the dropped spec goes too


async def test_workload_moving_here_is_not_held_by_the_old_agents_stopping_state(agent: Agent) -> None:
    """The old agent's Stopping(RequestedAtRuntime) for a workload that moves here
    must not replace this agent's Running(Ok) (it would stay at the server until the next change)."""
    agent.runtime.start_state = ExecutionState.starting("created")
    await agent.update([spec("a")])
    await agent.sink.wait_for(lambda: len(agent.sink.trace("a")) == 2)
    await agent.manager.handle(
        UpdateWorkloadState((WorkloadState(inst("a", agent="agent_B"), STOPPING_REQUESTED),))
    )
    agent.runtime.set_state("a", RUNNING)
    await agent.sink.wait_for(lambda: len(agent.sink.trace("a")) == 3)
    assert agent.sink.trace("a")[-1] == ("1", RUNNING)


async def test_update_of_waiting_workload_reports_old_instance_removed(agent: Agent) -> None:
    """A workload still waiting in the queue is not managed; when the server
    replaces it (delete old + add new), the old instance must be reported Removed, or its row stays
    and `ank apply` waits for it."""
    await agent.update([spec("a", "1", deps={"gate": AddCondition.RUNNING})])
    await agent.update([spec("a", "2", deps={"gate": AddCondition.RUNNING})], [delete("a", "1")])
    assert agent.sink.trace("a") == [("1", WAITING_TO_START), ("1", REMOVED), ("2", WAITING_TO_START)]
    await agent.others(gate=RUNNING)
    await agent.sink.wait_for(lambda: agent.sink.trace("a")[-1] == ("2", RUNNING))
    # Like an update whose create waited, the old instance is named again.
    assert agent.sink.trace("a")[3:] == [("1", REMOVED), ("2", STARTING), ("2", RUNNING)]


async def test_ready_update_of_waiting_workload_reports_old_instance_removed(agent: Agent) -> None:
    """The replacement of a waiting workload may start at once; the old
    instance the server knows is reported Removed first."""
    await agent.update([spec("a", "1", deps={"gate": AddCondition.RUNNING})])
    await agent.update([spec("a", "2")], [delete("a", "1")])
    await agent.sink.wait_for(lambda: agent.sink.trace("a")[-1] == ("2", RUNNING))
    assert agent.sink.trace("a") == [("1", WAITING_TO_START), ("1", REMOVED), ("2", STARTING), ("2", RUNNING)]


async def test_removed_workloads_leave_no_per_workload_bookkeeping(agent: Agent) -> None:
    """A long session with ever new workload names must not grow without bound: once a workload is
    Removed and its leftover clean-up is over, the manager holds nothing for its name."""
    agent.runtime.add_existing(inst("old", "9"))
    await agent.reconnect(None, [])
    await agent.sink.wait_for_state("old", REMOVED)
    for n in range(3):
        await agent.update([spec(f"job{n}")])
        await agent.running(f"job{n}")
        await agent.update(deleted=[delete(f"job{n}")])
        await agent.sink.wait_for_state(f"job{n}", REMOVED)
    await settle()
    assert agent.manager._sent_this_session == {}
    # The leftover's removal loop and the deleted jobs' loops have all left the table.
    assert len(agent.manager.table) == 0
    assert not any(agent.manager.table.is_busy(name) for name in ("old", "job0", "job1", "job2"))


# --- reconciliation from a snapshot, however it was obtained -------------------------------------


async def test_removed_lost_with_the_stream_is_sent_again(agent: Agent) -> None:
    """The server still lists an instance the agent already removed (its Removed went into a
    broken stream): after the reconnect it gets its Removed again; instances the agent holds,
    and other agents' instances, get nothing."""
    await agent.update([spec("a"), spec("b")])
    await agent.running("a", "b")
    await agent.update(deleted=[delete("a")])
    await agent.sink.wait_for_state("a", REMOVED)
    agent.sink.clear()
    await agent.manager.on_connected()
    request = agent.sink.requests()[-1]
    known = frozenset({inst("a"), inst("b"), inst("gone", "7"), inst("x", agent="agent_B")})
    await agent.manager.handle(DesiredState(request.request_id, (spec("b"),), known_instances=known))
    await settle()
    assert agent.sink.trace("a") == [("1", REMOVED)]
    assert agent.sink.trace("gone") == [("7", REMOVED)]
    assert agent.sink.trace("x") == []
    assert agent.sink.trace("b") == [("1", RUNNING)]  # the current state of the new session, no Removed
    assert agent.runtime.deleted() == [inst("a")]


async def test_an_instance_replaced_by_an_update_gets_its_lost_removed_again(agent: Agent) -> None:
    await agent.update([spec("a", "1")])
    await agent.running("a")
    await agent.update([spec("a", "2")], [delete("a", "1")])
    await agent.sink.wait_for(lambda: agent.sink.trace("a")[-1] == ("2", RUNNING))
    agent.sink.clear()
    await agent.manager.on_connected()
    request = agent.sink.requests()[-1]
    known = frozenset({inst("a", "1"), inst("a", "2")})
    await agent.manager.handle(DesiredState(request.request_id, (spec("a", "2"),), known_instances=known))
    await settle()
    assert agent.sink.trace("a") == [("2", RUNNING), ("1", REMOVED)]  # current state first, then the lost one
    assert agent.runtime.created("a") == [inst("a", "1"), inst("a", "2")]


async def test_queued_and_deleting_instances_are_not_reported_removed_twice(agent: Agent) -> None:
    """What still waits in the queue, or is being deleted, sends its own states later."""
    await agent.update([spec("w", deps={"gate": AddCondition.RUNNING})])
    agent.runtime.add_existing(inst("old", "9"))
    agent.runtime.fail_deletes("old", *["down"] * 3)
    await agent.manager.on_connected()
    request = agent.sink.requests()[-1]
    agent.sink.clear()
    known = frozenset({inst("w"), inst("old", "9")})
    await agent.manager.handle(
        DesiredState(
            request.request_id, (spec("w", deps={"gate": AddCondition.RUNNING}),), known_instances=known
        )
    )
    await agent.sink.wait_for_state("old", REMOVED)
    assert agent.sink.trace("old").count(("9", REMOVED)) == 1
    assert ("1", REMOVED) not in agent.sink.trace("w")


async def test_reconcile_takes_a_snapshot_directly(agent: Agent) -> None:
    """A session whose server sends the authoritative list itself: no request, same rules."""
    await agent.update([spec("a"), spec("b", "1")])
    await agent.running("a", "b")
    await agent.manager.reconcile(DesiredSnapshot((spec("b", "2"), spec("c"))))
    await agent.running("b", "c")
    await agent.sink.wait_for_state("a", REMOVED)
    assert agent.sink.requests() == []
    assert sorted(agent.runtime.created()) == [inst("a"), inst("b", "1"), inst("b", "2"), inst("c")]
    await agent.manager.reconcile(DesiredSnapshot(()))
    await agent.sink.wait_for(lambda: agent.runtime.containers == {})
    await settle()
    assert len(agent.manager.table) == 0


async def test_the_v031_query_matches_only_the_latest_answer_and_filters_the_agent() -> None:
    sink = WaitingSink()
    query = DesiredStateQuery(sink, AGENT)
    query.ask()
    first = sink.requests()[-1].request_id
    query.ask()
    latest = sink.requests()[-1].request_id
    assert first != latest and latest.startswith(AGENT_REQUEST_PREFIX)
    assert query.answer(DesiredState(first, (spec("a"),))) is None
    known = frozenset({inst("a"), inst("a", agent="agent_B")})
    assert query.answer(DesiredState(latest, (spec("a"),), known_instances=known)) == DesiredSnapshot(
        (spec("a"),), frozenset({inst("a")})
    )
    assert query.answer(DesiredState(latest, (spec("a"),))) is None  # answered once only
    query.ask()
    assert query.answer(DesiredState(sink.requests()[-1].request_id, (), error="denied")) is None
