"""The workload table: one entry per name with its managed loop, its spec and its retiring loops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection

import pytest

from ankaios_agent.agent.fakes import FakeClock, FakeControlInterfaceHost, FakeRuntime
from ankaios_agent.agent.model import ExecutionState, WorkloadState
from ankaios_agent.agent.ports import OwnedWorkload, StateChange
from ankaios_agent.agent.timings import AgentTimings
from ankaios_agent.agent.workload_loop import WorkloadLoop
from ankaios_agent.agent.workload_table import WorkloadTable
from tests.support.lifecycle import WaitingSink, settle
from tests.unit.lifecycle_support import REMOVED, RUNNING, STOPPING_REQUESTED, delete, inst, spec


class Setup:
    """A table whose loops run on a FakeRuntime and report into a sink."""

    def __init__(self) -> None:
        self.runtime = FakeRuntime()
        self.ci = FakeControlInterfaceHost()
        self.sink = WaitingSink()
        self.table = WorkloadTable(self._new_loop)

    def report(self, state: WorkloadState) -> None:  # StateReporter of the loops
        self.sink.send(state)

    def _new_loop(self, name: str, after: Collection[asyncio.Task[None]]) -> WorkloadLoop:
        return WorkloadLoop(
            name,
            runtimes={"podman": self.runtime},
            control_interfaces=self.ci,
            reporter=self,
            timings=AgentTimings(),
            clock=FakeClock(),
            after=after,
        )

    async def route_events(self) -> None:
        async for change in self.runtime.events():
            self.table.route(change)


@pytest.fixture
async def s() -> AsyncIterator[Setup]:
    setup = Setup()
    router = asyncio.create_task(setup.route_events())
    await settle()
    yield setup
    router.cancel()
    await setup.table.stop()


async def test_start_makes_the_loop_addressable_with_its_spec(s: Setup) -> None:
    loop = s.table.start(spec("a"))
    assert s.table.loop("a") is loop
    assert s.table.specs() == {"a": spec("a")}
    assert s.table.is_busy("a") and "a" in s.table and len(s.table) == 1
    assert s.table.loop("b") is None and not s.table.is_busy("b")


async def test_a_name_has_at_most_one_managed_loop(s: Setup) -> None:
    s.table.start(spec("a"))
    with pytest.raises(ValueError, match="already has a managed loop"):
        s.table.start(spec("a", "2"))


async def test_set_spec_records_what_the_managed_loop_was_told(s: Setup) -> None:
    s.table.start(spec("a", "1"))
    s.table.set_spec(spec("a", "2"))
    assert s.table.specs() == {"a": spec("a", "2")}
    with pytest.raises(KeyError):
        s.table.set_spec(spec("b"))


async def test_route_reaches_only_the_managed_loop(s: Setup) -> None:
    s.table.start(spec("a")).commands.create(spec("a"))
    await s.sink.wait_for_state("a", RUNNING)
    assert not s.table.route(StateChange(inst("b"), "x", RUNNING))
    assert s.table.route(StateChange(inst("a"), s.runtime.container("a").runtime_id, RUNNING))


async def test_delete_retires_the_loop_until_it_ends_then_forgets_the_name(s: Setup) -> None:
    loop = s.table.start(spec("a"))
    loop.commands.create(spec("a"))
    await s.sink.wait_for_state("a", RUNNING)
    assert s.table.delete(delete("a"))
    assert s.table.loop("a") is None and s.table.specs() == {}
    assert s.table.is_busy("a")  # still deleting: a container of that name is no leftover
    assert inst("a") in s.table.held_instances()
    assert loop.task is not None
    await loop.task
    await settle()
    assert not s.table.is_busy("a") and len(s.table) == 0
    assert s.sink.trace("a")[-2:] == [("1", STOPPING_REQUESTED), ("1", REMOVED)]


async def test_delete_of_an_unmanaged_name_is_refused(s: Setup) -> None:
    assert not s.table.delete(delete("a"))
    assert len(s.table) == 0


async def test_a_new_loop_waits_for_the_retiring_loop_of_its_name(s: Setup) -> None:
    s.table.start(spec("a")).commands.create(spec("a"))
    await s.sink.wait_for_state("a", RUNNING)
    s.runtime.fail_deletes("a", "busy")
    s.table.delete(delete("a"))
    s.table.start(spec("a")).commands.create(spec("a"))
    await s.sink.wait_for(lambda: s.sink.trace("a")[-1] == ("1", RUNNING) and len(s.runtime.created()) == 2)
    assert [op for op, _ in s.runtime.calls] == ["create", "delete", "delete", "create"]
    assert s.runtime.peak_per_workload["a"] == 1


@pytest.mark.parametrize("report_states", [True, False])
async def test_leftover_removal_is_a_retiring_loop(s: Setup, report_states: bool) -> None:
    runtime_id = s.runtime.add_existing(inst("old", "9"))
    s.runtime.fail_deletes("old", "cannot reach Podman")
    owned = OwnedWorkload(inst("old", "9"), runtime_id, RUNNING)
    s.table.remove_leftover("podman", owned, report_states=report_states)
    assert s.table.is_busy("old") and s.table.loop("old") is None
    await s.sink.wait_for(lambda: inst("old", "9") not in s.runtime.containers)
    await settle()
    assert len(s.table) == 0
    assert s.runtime.deleted("old") == [inst("old", "9")] * 2
    with_states = [
        ("9", STOPPING_REQUESTED),
        ("9", ExecutionState.delete_failed("cannot reach Podman")),
        ("9", REMOVED),
    ]
    assert s.sink.trace("old") == (with_states if report_states else [])


async def test_stop_leaves_every_container_running(s: Setup) -> None:
    for name in ("a", "b"):
        s.table.start(spec(name)).commands.create(spec(name))
        await s.sink.wait_for_state(name, RUNNING)
    assert await s.table.stop() == 2
    assert s.runtime.deleted() == []
    assert set(s.runtime.containers) == {inst("a"), inst("b")}


async def test_held_instances_are_known_before_any_loop_ran_its_command(s: Setup) -> None:
    """Managed specs, the instances a retiring loop deletes and leftovers being removed count at once."""
    s.table.start(spec("a", "1"))
    s.table.start(spec("b", "1"))
    s.table.set_spec(spec("b", "2"))
    s.table.delete(delete("a", "0"))
    runtime_id = s.runtime.add_existing(inst("old", "9"))
    s.table.remove_leftover(
        "podman", OwnedWorkload(inst("old", "9"), runtime_id, RUNNING), report_states=True
    )
    assert s.table.held_instances() == {inst("a", "0"), inst("a", "1"), inst("b", "2"), inst("old", "9")}
