"""The workload control loop with a FakeRuntime: the exact state sequences the server sees."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from ankaios_agent.agent.errors import RuntimeDeleteFailed, RuntimeUnavailable, WorkloadConfigError
from ankaios_agent.agent.fakes import FakeClock, FakeControlInterfaceHost, FakeRuntime
from ankaios_agent.agent.model import (
    AccessRules,
    ExecutionState,
    Operation,
    RestartPolicy,
    StateRule,
    WorkloadSpec,
    WorkloadState,
)
from ankaios_agent.agent.ports import StateChange
from ankaios_agent.agent.timings import AgentTimings
from ankaios_agent.agent.workload_loop import WorkloadLoop
from ankaios_agent.agent.workload_phase import Phase
from tests.support.lifecycle import WaitingSink, settle
from tests.unit.lifecycle_support import (
    NO_MORE_RETRIES,
    REMOVED,
    RUNNING,
    STARTING,
    STOPPING_REQUESTED,
    inst,
    spec,
)


def failed(reason: str) -> ExecutionState:
    return ExecutionState.starting_failed(reason)


@dataclass
class Harness:
    runtime: FakeRuntime
    ci: FakeControlInterfaceHost
    sink: WaitingSink
    clock: FakeClock
    timings: AgentTimings
    loops: dict[str, WorkloadLoop] = field(default_factory=dict)

    def report(self, state: WorkloadState) -> None:  # StateReporter
        self.sink.send(state)

    def loop(self, name: str) -> WorkloadLoop:
        loop = WorkloadLoop(
            name,
            runtimes={self.runtime.name: self.runtime},
            control_interfaces=self.ci,
            reporter=self,
            timings=self.timings,
            clock=self.clock,
        )
        self.loops[name] = loop
        loop.start()
        return loop

    async def route_events(self) -> None:
        async for change in self.runtime.events():
            loop = self.loops.get(change.instance.workload)
            if loop is not None:
                loop.commands.state_changed(change)


async def make_harness(clock: FakeClock, timings: AgentTimings) -> AsyncIterator[Harness]:
    h = Harness(FakeRuntime(), FakeControlInterfaceHost(), WaitingSink(), clock, timings)
    router = asyncio.create_task(h.route_events())
    await settle()
    yield h
    router.cancel()
    for loop in h.loops.values():
        await loop.stop()


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async for harness in make_harness(FakeClock(), AgentTimings()):
        yield harness


@pytest.fixture
async def manual() -> AsyncIterator[Harness]:
    """A harness whose clock only moves when the test advances it."""
    timings = AgentTimings(restart_backoff_cap=4.0)
    async for harness in make_harness(FakeClock(auto=False), timings):
        yield harness


# --- create and retries ------------------------------------------------------------


async def test_create_reports_triggered_at_runtime_then_runtime_state(h: Harness) -> None:
    """Pending(Starting)/"Triggered at runtime." before the attempt, then the runtime's states."""
    h.loop("a").commands.create(spec("a"))
    await h.sink.wait_for_state("a", RUNNING)
    assert h.sink.trace("a") == [("1", STARTING), ("1", RUNNING)]
    assert h.runtime.container("a").control_dir == h.ci.folders["a"]


async def test_first_retry_is_immediate(h: Harness) -> None:
    """A failed create is retried at once, without a delay."""
    h.runtime.fail_creates("a", "no such image")
    h.loop("a").commands.create(spec("a"))
    await h.sink.wait_for_state("a", RUNNING)
    assert h.sink.trace("a") == [
        ("1", STARTING),
        ("1", failed("no such image")),
        ("1", STARTING),
        ("1", RUNNING),
    ]
    assert h.clock.sleeps == []


async def test_create_gives_up_after_20_retries_with_no_more_retries(h: Harness) -> None:
    """21 attempts (first retry immediate, then 1 s apart), then
    "No more retries."."""
    h.runtime.fail_creates_always("a", "pull failed")
    h.loop("a").commands.create(spec("a"))
    await h.sink.wait_for_state("a", NO_MORE_RETRIES)
    await settle()
    assert h.sink.trace("a") == [("1", STARTING), ("1", failed("pull failed"))] * 21 + [
        ("1", NO_MORE_RETRIES)
    ]
    assert len(h.runtime.created("a")) == 21
    assert h.clock.sleeps == [1.0] * 19


async def test_retry_limit_comes_from_timings() -> None:
    """The retry count is a tunable of AgentTimings."""
    async for h in make_harness(FakeClock(), AgentTimings(create_retries=2)):
        h.runtime.fail_creates_always("a", "x")
        h.loop("a").commands.create(spec("a"))
        await h.sink.wait_for_state("a", NO_MORE_RETRIES)
        assert len(h.runtime.created("a")) == 3


async def test_bad_runtime_config_is_not_retried(h: Harness) -> None:
    """A config error gets its reason, then the CLI's final "No more retries."."""
    h.runtime.fail_creates_always("a", WorkloadConfigError(inst("a"), "runtimeConfig: 'image' is missing"))
    h.loop("a").commands.create(spec("a"))
    await h.sink.wait_for_state("a", NO_MORE_RETRIES)
    assert h.sink.trace("a") == [
        ("1", STARTING),
        ("1", failed("runtimeConfig: 'image' is missing")),
        ("1", NO_MORE_RETRIES),
    ]
    assert len(h.runtime.created("a")) == 1


async def test_unusable_control_interface_gives_starting_failed(h: Harness) -> None:
    """A name that cannot be a FIFO folder -> Pending(StartingFailed) with the reason, no create."""
    h.loop("x/y").commands.create(spec("x/y"))
    await h.sink.wait_for_state("x/y", NO_MORE_RETRIES)
    trace = h.sink.trace("x/y")
    assert [s.state for _, s in trace] == [ExecutionState.starting_failed("").state] * 2
    assert "folder" in trace[0][1].info
    assert h.runtime.calls == []


async def test_update_cancels_pending_retries(manual: Harness) -> None:
    """An update cancels the pending retries of the old spec."""
    h = manual
    h.runtime.fail_creates_always("a", "boom")
    loop = h.loop("a")
    loop.commands.create(spec("a", "1"))
    await h.sink.wait_for(lambda: len(h.runtime.created("a")) == 2 and h.clock.sleeps == [1.0])
    h.runtime.stop_failing("a")
    loop.commands.update(spec("a", "2"), inst("a", "1"))
    await h.sink.wait_for_state("a", RUNNING)
    h.clock.advance(5.0)
    await settle()
    assert h.runtime.created("a") == [inst("a", "1"), inst("a", "1"), inst("a", "2")]
    assert h.sink.trace("a")[-4:] == [
        ("1", STOPPING_REQUESTED),
        ("1", REMOVED),
        ("2", STARTING),
        ("2", RUNNING),
    ]


async def test_delete_cancels_pending_retries(manual: Harness) -> None:
    """After a delete no retry runs; no runtime delete without a container."""
    h = manual
    h.runtime.fail_creates_always("a", "boom")
    loop = h.loop("a")
    loop.commands.create(spec("a"))
    await h.sink.wait_for(lambda: h.clock.sleeps == [1.0])
    loop.commands.delete(inst("a"))
    await h.sink.wait_for_state("a", REMOVED)
    h.clock.advance(5.0)
    await settle()
    assert len(h.runtime.created("a")) == 2
    assert h.runtime.deleted("a") == []
    assert h.sink.trace("a")[-2:] == [("1", STOPPING_REQUESTED), ("1", REMOVED)]


# --- update ---------------------------------------------------------------------------


async def test_update_deletes_old_before_creating_new(h: Harness) -> None:
    """Stopping[old] -> Removed[old] -> Starting[new], never both at once."""
    loop = h.loop("a")
    loop.commands.create(spec("a", "1"))
    await h.sink.wait_for_state("a", RUNNING)
    loop.commands.update(spec("a", "2"), inst("a", "1"))
    await h.sink.wait_for(lambda: h.sink.trace("a")[-1] == ("2", RUNNING))
    assert h.sink.trace("a") == [
        ("1", STARTING),
        ("1", RUNNING),
        ("1", STOPPING_REQUESTED),
        ("1", REMOVED),
        ("2", STARTING),
        ("2", RUNNING),
    ]
    assert h.runtime.peak_per_workload["a"] == 1
    assert h.ci.removed == ["a"]  # the id changed, so the FIFO folder moved


async def test_update_with_same_folder_keeps_control_interface(h: Harness) -> None:
    """A config-identical update keeps the FIFOs."""
    loop = h.loop("a")
    loop.commands.create(spec("a", "1"))
    await h.sink.wait_for_state("a", RUNNING)
    loop.commands.update(spec("a", "1", restart=RestartPolicy.ALWAYS), inst("a", "1"))
    await h.sink.wait_for(lambda: len(h.sink.trace("a")) == 6)
    assert h.ci.removed == []


async def test_update_with_other_access_rules_replaces_control_interface(h: Harness) -> None:
    """Same instance, other rules: the old control interface goes before the old container,
    and the new instance asks for one again with its own rules."""
    loop = h.loop("a")
    loop.commands.create(spec("a", "1"))
    await h.sink.wait_for_state("a", RUNNING)
    rules = AccessRules(allow=(StateRule(Operation.READ, ("*",)),))
    loop.commands.update(dataclasses.replace(spec("a", "1"), control_interface_access=rules), inst("a", "1"))
    await h.sink.wait_for(lambda: len(h.sink.trace("a")) == 6)
    assert h.ci.removed == ["a"]
    assert h.ci.ensured == [inst("a", "1"), inst("a", "1")]


async def test_update_delete_only_then_update_reports_old_name_twice(h: Harness) -> None:
    """UpdateDeleteOnly deletes now; the later update reports the old name again."""
    loop = h.loop("a")
    loop.commands.create(spec("a", "1"))
    await h.sink.wait_for_state("a", RUNNING)
    loop.commands.update_delete_only(inst("a", "1"))
    await h.sink.wait_for_state("a", REMOVED)
    assert h.runtime.containers == {}
    loop.commands.update(spec("a", "2"), inst("a", "1"))
    await h.sink.wait_for(lambda: h.sink.trace("a")[-1] == ("2", RUNNING))
    assert h.sink.trace("a")[2:] == [
        ("1", STOPPING_REQUESTED),
        ("1", REMOVED),
        ("1", STOPPING_REQUESTED),
        ("1", REMOVED),
        ("2", STARTING),
        ("2", RUNNING),
    ]
    assert h.runtime.deleted("a") == [inst("a", "1")]


async def test_update_whose_old_delete_fails_keeps_old_instance(h: Harness) -> None:
    """Stopping(DeleteFailed)/<error>, the new spec is not applied."""
    loop = h.loop("a")
    loop.commands.create(spec("a", "1"))
    await h.sink.wait_for_state("a", RUNNING)
    h.runtime.fail_deletes("a", "container is busy")
    loop.commands.update(spec("a", "2"), inst("a", "1"))
    await h.sink.wait_for_state("a", ExecutionState.delete_failed("container is busy"))
    await settle()
    assert h.sink.trace("a")[2:] == [
        ("1", STOPPING_REQUESTED),
        ("1", ExecutionState.delete_failed("container is busy")),
    ]
    assert h.runtime.created("a") == [inst("a", "1")]


# --- delete -----------------------------------------------------------------------------


async def test_delete_reports_requested_at_runtime_then_removed(h: Harness) -> None:
    """Stopping(RequestedAtRuntime) -> Removed, the loop ends, the FIFOs go."""
    loop = h.loop("a")
    loop.commands.create(spec("a"))
    await h.sink.wait_for_state("a", RUNNING)
    loop.commands.delete(inst("a"))
    await h.sink.wait_for_state("a", REMOVED)
    assert loop.task is not None
    await asyncio.wait_for(loop.task, 1)
    assert h.sink.trace("a")[2:] == [("1", STOPPING_REQUESTED), ("1", REMOVED)]
    assert h.runtime.containers == {}
    assert h.ci.removed == ["a"]


async def test_failed_delete_reports_delete_failed_then_retries_until_removed(h: Harness) -> None:
    """A failed runtime delete -> Stopping(DeleteFailed)/<error>. The
    reference (and this loop before) then gave up, leaving the container running with no owner
    (e.g. deleted while Podman was down); now it retries with capped back-off until Removed."""
    loop = h.loop("a")
    loop.commands.create(spec("a"))
    await h.sink.wait_for_state("a", RUNNING)
    h.runtime.fail_deletes("a", "permission denied", "cannot reach Podman", "cannot reach Podman")
    loop.commands.delete(inst("a"))
    await h.sink.wait_for_state("a", REMOVED)
    assert h.sink.trace("a")[2:] == [
        ("1", STOPPING_REQUESTED),
        ("1", ExecutionState.delete_failed("permission denied")),
        ("1", REMOVED),
    ]
    assert h.runtime.deleted("a") == [inst("a")] * 4  # first attempt, two failed retries, success
    assert h.clock.sleeps[-3:] == [1.0, 2.0, 4.0]  # restart back-off, capped by delete_retry_cap
    assert loop.task is not None
    await loop.task  # the loop ends once the container is gone


async def test_delete_of_instance_the_loop_never_ran_also_reports_it_removed(h: Harness) -> None:
    """The server's instance gets its Removed even when a newer update replaced it."""
    loop = h.loop("a")
    loop.commands.create(spec("a", "1"))
    await h.sink.wait_for_state("a", RUNNING)
    loop.commands.delete(inst("a", "9"))
    await h.sink.wait_for(lambda: ("9", REMOVED) in h.sink.trace("a"))
    assert h.sink.trace("a")[2:] == [("1", STOPPING_REQUESTED), ("1", REMOVED), ("9", REMOVED)]


# --- restart policy and back-off ---------------------------------------------

RESTART_CASES = [
    (RestartPolicy.NEVER, 0, False),
    (RestartPolicy.NEVER, 1, False),
    (RestartPolicy.ON_FAILURE, 0, False),
    (RestartPolicy.ON_FAILURE, 3, True),
    (RestartPolicy.ALWAYS, 0, True),
    (RestartPolicy.ALWAYS, 3, True),
]


@pytest.mark.parametrize(("policy", "exit_code", "restarts"), RESTART_CASES)
async def test_restart_policy(h: Harness, policy: RestartPolicy, exit_code: int, restarts: bool) -> None:
    """NEVER never; ON_FAILURE on Failed(ExecFailed); ALWAYS on ExecFailed or Succeeded."""
    h.loop("a").commands.create(spec("a", restart=policy))
    await h.sink.wait_for_state("a", RUNNING)
    h.runtime.exit("a", exit_code)
    exited = ExecutionState.succeeded() if exit_code == 0 else ExecutionState.exec_failed(exit_code)
    if restarts:
        await h.sink.wait_for(lambda: h.sink.trace("a").count(("1", RUNNING)) == 2)
        assert h.sink.trace("a") == [
            ("1", STARTING),
            ("1", RUNNING),
            ("1", exited),
            ("1", STOPPING_REQUESTED),
            ("1", REMOVED),
            ("1", STARTING),
            ("1", RUNNING),
        ]
        assert h.runtime.peak_per_workload["a"] == 1
    else:
        await h.sink.wait_for_state("a", exited)
        await settle()
        assert h.sink.trace("a") == [("1", STARTING), ("1", RUNNING), ("1", exited)]
        assert len(h.runtime.created("a")) == 1


@pytest.mark.parametrize("gone", ["lost", "unknown"])
async def test_lost_and_unknown_never_restart(h: Harness, gone: str) -> None:
    """Failed(Lost) and Failed(Unknown) never cause a restart, even with ALWAYS."""
    h.loop("a").commands.create(spec("a", restart=RestartPolicy.ALWAYS))
    await h.sink.wait_for_state("a", RUNNING)
    if gone == "lost":
        h.runtime.vanish("a")
        expected = ExecutionState.lost()
    else:
        expected = ExecutionState.unknown("unknown container state")
        h.runtime.set_state("a", expected)
    await h.sink.wait_for_state("a", expected)
    await settle()
    assert len(h.runtime.created("a")) == 1


async def test_states_of_former_instances_and_repeats_are_ignored(h: Harness) -> None:
    """Only states of the current instance (and runtime id) count; level-triggered repeats
    do not report or restart twice."""
    loop = h.loop("a")
    loop.commands.create(spec("a", restart=RestartPolicy.ALWAYS))
    await h.sink.wait_for_state("a", RUNNING)
    current = h.runtime.container("a")
    loop.commands.state_changed(StateChange(inst("a"), "stale-id", ExecutionState.exec_failed(1)))
    loop.commands.state_changed(
        StateChange(inst("a", "0"), current.runtime_id, ExecutionState.exec_failed(1))
    )
    loop.commands.state_changed(StateChange(inst("a"), current.runtime_id, RUNNING))
    await settle()
    assert h.sink.trace("a") == [("1", STARTING), ("1", RUNNING)]
    assert len(h.runtime.created("a")) == 1


async def test_restart_back_off_doubles_from_one_second_up_to_the_cap(manual: Harness) -> None:
    """First restart immediate, then 1 s doubling, capped (cap 4 s here)."""
    h = manual
    h.loop("a").commands.create(spec("a", restart=RestartPolicy.ON_FAILURE))
    for expected_delay in (None, 1.0, 2.0, 4.0, 4.0):
        runs = len(h.runtime.created("a"))

        def created_again(runs: int = runs) -> bool:
            return len(h.runtime.created("a")) == runs + 1

        def slept(delay: float | None = expected_delay) -> bool:
            return h.clock.sleeps[-1:] == [delay]

        await h.sink.wait_for(lambda: h.sink.trace("a")[-1] == ("1", RUNNING))
        h.runtime.exit("a", 1)
        if expected_delay is None:
            await h.sink.wait_for(created_again)
            assert h.clock.sleeps == []
            continue
        await h.sink.wait_for(slept)
        await settle()
        assert len(h.runtime.created("a")) == runs  # still waiting, exit state still shown
        assert h.sink.trace("a")[-1] == ("1", ExecutionState.exec_failed(1))
        h.clock.advance(expected_delay)
        await h.sink.wait_for(created_again)
    assert h.clock.sleeps == [1.0, 2.0, 4.0, 4.0]


async def test_restart_back_off_resets_after_a_stable_run(manual: Harness) -> None:
    """After restart_backoff_reset_after of uninterrupted running, restart at once."""
    h = manual
    h.loop("a").commands.create(spec("a", restart=RestartPolicy.ALWAYS))
    await h.sink.wait_for_state("a", RUNNING)
    h.runtime.exit("a", 0)  # first restart: immediate
    await h.sink.wait_for(lambda: len(h.runtime.created("a")) == 2)
    await h.sink.wait_for(lambda: h.sink.trace("a")[-1] == ("1", RUNNING))
    h.clock.advance(h.timings.restart_backoff_reset_after)
    h.runtime.exit("a", 0)
    await h.sink.wait_for(lambda: len(h.runtime.created("a")) == 3)
    assert h.clock.sleeps == []


async def test_update_during_back_off_cancels_the_restart(manual: Harness) -> None:
    """A newer command supersedes a pending restart."""
    h = manual
    loop = h.loop("a")
    loop.commands.create(spec("a", "1", restart=RestartPolicy.ALWAYS))
    await h.sink.wait_for_state("a", RUNNING)
    h.runtime.exit("a", 0)
    await h.sink.wait_for(lambda: len(h.runtime.created("a")) == 2)
    await h.sink.wait_for(lambda: h.sink.trace("a")[-1] == ("1", RUNNING))
    h.runtime.exit("a", 0)
    await h.sink.wait_for(lambda: h.clock.sleeps == [1.0])
    loop.commands.update(spec("a", "2"), inst("a", "1"))
    await h.sink.wait_for(lambda: h.sink.trace("a")[-1] == ("2", RUNNING))
    h.clock.advance(10.0)
    await settle()
    assert h.runtime.created("a") == [inst("a", "1"), inst("a", "1"), inst("a", "2")]


# --- resume --------------------------------------------------------------------------------


async def test_resume_reports_observed_state_only_and_keeps_control_dir(h: Harness) -> None:
    """No create, no Pending; a later policy restart keeps the FIFO mount."""
    existing = spec("a", restart=RestartPolicy.ALWAYS)
    runtime_id = h.runtime.add_existing(existing.instance)
    loop = h.loop("a")
    loop.commands.resume(existing, runtime_id, RUNNING)
    await h.sink.wait_for_state("a", RUNNING)
    assert h.sink.trace("a") == [("1", RUNNING)]
    assert h.runtime.calls == []
    h.runtime.exit("a", 0)
    await h.sink.wait_for(lambda: h.sink.trace("a")[-1] == ("1", RUNNING) and len(h.sink.trace("a")) > 2)
    assert h.runtime.container("a").control_dir == h.ci.folders["a"]
    assert h.runtime.created("a") == [inst("a")]


async def test_stop_leaves_the_container_running(h: Harness) -> None:
    """Stopping a loop (agent shutdown) never deletes its workload."""
    loop = h.loop("a")
    loop.commands.create(spec("a"))
    await h.sink.wait_for_state("a", RUNNING)
    await loop.stop()
    assert h.runtime.deleted() == []
    assert inst("a") in h.runtime.containers


def test_workload_spec_helper_is_hashable() -> None:
    """The loop compares specs by value; WorkloadSpec must stay a frozen value type."""
    assert spec("a") == spec("a") and isinstance(spec("a"), WorkloadSpec)


# --- typed errors: engine failures are retried, bugs are not ------------------------------------


async def test_runtime_unavailable_is_retried_like_any_engine_failure(h: Harness) -> None:
    """The engine could not be reached: a RuntimeFailure, so the create is retried."""
    h.runtime.fail_creates_always("a", RuntimeUnavailable("podman", "socket refused"))
    h.loop("a").commands.create(spec("a"))
    await h.sink.wait_for_state("a", NO_MORE_RETRIES)
    assert len(h.runtime.created("a")) == 21
    assert h.sink.trace("a")[1] == ("1", failed("podman: socket refused"))


async def test_internal_error_in_create_is_reported_once_and_not_retried(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception that is no RuntimeFailure is a bug of the agent: logged with its traceback,
    reported as an internal error, then final; never 21 create attempts."""
    h.runtime.fail_creates_always("a", KeyError("image"))
    loop = h.loop("a")
    loop.commands.create(spec("a"))
    await h.sink.wait_for_state("a", NO_MORE_RETRIES)
    await settle()
    trace = h.sink.trace("a")
    assert [state for _, state in trace[1:]] == [
        failed("internal error of the agent (KeyError: 'image'); see the agent's log"),
        NO_MORE_RETRIES,
    ]
    assert len(h.runtime.created("a")) == 1
    assert loop.phase is Phase.GAVE_UP
    records = [r for r in caplog.records if "internal error of the agent" in r.getMessage()]
    assert records and records[0].exc_info is not None


async def test_a_loop_that_gave_up_starts_over_on_update(h: Harness) -> None:
    h.runtime.fail_creates_always("a", KeyError("image"))
    loop = h.loop("a")
    loop.commands.create(spec("a", "1"))
    await h.sink.wait_for_state("a", NO_MORE_RETRIES)
    h.runtime.stop_failing("a")
    loop.commands.update(spec("a", "2"), inst("a", "1"))
    await h.sink.wait_for(lambda: h.sink.trace("a")[-1] == ("2", RUNNING))
    assert loop.phase is Phase.RUNNING


async def test_internal_error_in_delete_is_reported_and_the_delete_retried(h: Harness) -> None:
    """A bug while deleting must not orphan the container: DeleteFailed once, retries until Removed."""
    loop = h.loop("a")
    loop.commands.create(spec("a"))
    await h.sink.wait_for_state("a", RUNNING)
    h.runtime.fail_deletes("a", TypeError("bad argument"), RuntimeDeleteFailed(inst("a"), "busy"))
    loop.commands.delete(inst("a"))
    await h.sink.wait_for_state("a", REMOVED)
    assert h.sink.trace("a")[2:] == [
        ("1", STOPPING_REQUESTED),
        (
            "1",
            ExecutionState.delete_failed(
                "internal error of the agent (TypeError: bad argument); see the agent's log"
            ),
        ),
        ("1", REMOVED),
    ]
    assert h.runtime.deleted("a") == [inst("a")] * 3
    assert loop.task is not None
    await loop.task
    assert loop.phase is Phase.DONE


# --- phases -----------------------------------------------------------------------------------------


async def test_phase_follows_create_retry_restart_and_delete(manual: Harness) -> None:
    """The loop's phase is what its transition table says after each step."""
    h = manual
    h.runtime.fail_creates("a", "busy")
    loop = h.loop("a")
    phase_before_create = loop.phase
    assert phase_before_create is Phase.IDLE
    loop.commands.create(spec("a", restart=RestartPolicy.ALWAYS))
    await h.sink.wait_for_state("a", RUNNING)  # the immediate retry worked
    phase_after_retry = loop.phase
    assert phase_after_retry is Phase.RUNNING
    h.clock.advance(1)
    h.runtime.exit("a", 0)
    await h.sink.wait_for_state("a", ExecutionState.succeeded())
    await h.sink.wait_for(lambda: loop.phase is Phase.RESTART_WAIT or len(h.runtime.created("a")) > 2)
    loop.commands.delete(inst("a"))
    assert loop.task is not None
    await asyncio.wait_for(loop.task, 5)
    assert loop.phase is Phase.DONE
    assert inst("a") not in h.runtime.containers


async def test_restart_back_off_stays_at_its_cap_after_a_million_restarts(manual: Harness) -> None:
    """Days of crash loop: the restart still fires, with the capped delay."""
    h = manual
    loop = h.loop("a")
    loop.commands.create(spec("a", restart=RestartPolicy.ALWAYS))
    await h.sink.wait_for_state("a", RUNNING)
    loop._restarts = 10**6  # as if it had crash-looped that often
    h.runtime.exit("a", 1)
    # The timer task records its sleep when it first runs, just after the phase changed.
    await h.sink.wait_for(lambda: loop.phase is Phase.RESTART_WAIT and bool(h.clock.sleeps))
    assert h.clock.sleeps == [4.0]  # the harness's restart_backoff_cap
    h.clock.advance(4.0)
    await h.sink.wait_for(lambda: len(h.runtime.created("a")) == 2)
