"""The manager under both dialects' session rules, and adoption without lost exits.

v0.3.1 sessions reconcile with the answer to the agent's own request; v1.0.1
sessions with every ServerHello and send no request. Loops and containers are
shared, so a session of the other dialect adopts what runs. A container that
exits while the manager lists the runtimes is not adopted as running.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from ankaios_agent.agent.fakes import FakeClock, FakeControlInterfaceHost, FakeRuntime
from ankaios_agent.agent.lifecycle_rules import V0_3_RULES, V1_RULES, Dialect, RulesHolder
from ankaios_agent.agent.manager import Manager
from ankaios_agent.agent.model import (
    DesiredState,
    DesiredStateRequest,
    ExecutionState,
    LogsCancelRequest,
    LogsRequest,
    ServerHello,
    UpdateWorkload,
    WorkloadSpec,
)
from ankaios_agent.agent.ports import OwnedWorkload
from ankaios_agent.agent.timings import AgentTimings
from tests.support.lifecycle import WaitingSink, settle
from tests.unit.lifecycle_support import AGENT, REMOVED, RUNNING, STOPPING_REQUESTED, inst, spec

EXITED = ExecutionState.exec_failed(1)


@dataclass
class ExitDuringListing(FakeRuntime):
    """A runtime whose container exits right after the listing was taken, before the manager goes on."""

    exits: list[str] = field(default_factory=list)

    async def list_owned(self) -> list[OwnedWorkload]:
        owned = await super().list_owned()
        for workload in self.exits:
            self.exit(workload, 1)
        self.exits.clear()
        await settle()  # the manager's dispatcher sees the change before the listing returns
        return owned


@dataclass
class Agent:
    manager: Manager
    runtime: ExitDuringListing
    sink: WaitingSink
    rules: RulesHolder

    async def v0_3_session(self, desired: Sequence[WorkloadSpec]) -> None:
        await self.manager.on_connected(Dialect.V0_3)
        request = self.sink.requests()[-1]
        await self.manager.handle(DesiredState(request.request_id, tuple(desired)))

    async def v1_session(self, hello: Sequence[WorkloadSpec]) -> None:
        await self.manager.on_connected(Dialect.V1)
        await self.manager.handle(ServerHello(tuple(hello)))


@pytest.fixture
async def agent() -> AsyncIterator[Agent]:
    runtime = ExitDuringListing()
    sink = WaitingSink()
    rules = RulesHolder()
    ci = FakeControlInterfaceHost()
    manager = Manager(AGENT, {"podman": runtime}, ci, sink, AgentTimings(), clock=FakeClock(), rules=rules)
    run = asyncio.create_task(manager.run())
    await settle()
    yield Agent(manager, runtime, sink, rules)
    await manager.shutdown()
    await asyncio.wait_for(run, 1)


# --- session rules -----------------------------------------------------------------


async def test_v1_session_sends_no_request_and_switches_the_rules(agent: Agent) -> None:
    await agent.manager.on_connected(Dialect.V1)
    assert agent.rules.current == V1_RULES
    assert [m for m in agent.sink.messages if isinstance(m, DesiredStateRequest)] == []
    await agent.manager.on_connected(Dialect.V0_3)
    assert agent.rules.current == V0_3_RULES
    assert len(agent.sink.requests()) == 1


async def test_server_hello_creates_the_listed_workloads(agent: Agent) -> None:
    await agent.v1_session([spec("a"), spec("b")])
    await agent.sink.wait_for_state("a", RUNNING)
    await agent.sink.wait_for_state("b", RUNNING)
    assert sorted(i.workload for i in agent.runtime.created()) == ["a", "b"]


async def test_every_server_hello_reconciles(agent: Agent) -> None:
    """Unchanged: kept; changed: replaced; not listed: deleted."""
    await agent.v1_session([spec("keep"), spec("change", "1"), spec("drop")])
    for name in ("keep", "change", "drop"):
        await agent.sink.wait_for_state(name, RUNNING)
    agent.runtime.calls.clear()
    await agent.v1_session([spec("keep"), spec("change", "2")])
    await agent.sink.wait_for(lambda: agent.sink.trace("change")[-1:] == [("2", RUNNING)])
    await agent.sink.wait_for_state("drop", REMOVED)
    assert sorted(agent.runtime.calls) == sorted(
        [("delete", inst("change", "1")), ("create", inst("change", "2")), ("delete", inst("drop"))]
    )


async def test_empty_server_hello_deletes_everything(agent: Agent) -> None:
    await agent.v1_session([spec("a")])
    await agent.sink.wait_for_state("a", RUNNING)
    await agent.v1_session([])
    await agent.sink.wait_for_state("a", REMOVED)
    assert agent.sink.trace("a")[-2:] == [("1", STOPPING_REQUESTED), ("1", REMOVED)]
    assert agent.runtime.containers == {}


async def test_empty_server_hello_after_an_agent_restart_removes_leftovers(agent: Agent) -> None:
    agent.runtime.add_existing(inst("old"))
    await agent.v1_session([])
    await agent.sink.wait_for_state("old", REMOVED)
    assert agent.runtime.calls == [("delete", inst("old"))]


async def test_server_hello_adopts_running_containers_after_an_agent_restart(agent: Agent) -> None:
    runtime_id = agent.runtime.add_existing(inst("a"))
    await agent.v1_session([spec("a")])
    await agent.sink.wait_for_state("a", RUNNING)
    await settle()
    assert agent.runtime.calls == []
    assert agent.runtime.container("a").runtime_id == runtime_id


async def test_answer_to_a_request_is_ignored_on_a_v1_session(agent: Agent) -> None:
    await agent.v0_3_session([spec("a")])
    await agent.sink.wait_for_state("a", RUNNING)
    request = agent.sink.requests()[-1]
    await agent.manager.on_connected(Dialect.V1)
    # A late answer must not delete what the ServerHello is about to say.
    await agent.manager.handle(DesiredState(request.request_id, ()))
    await settle()
    assert agent.runtime.deleted() == []


async def test_server_swap_adopts_workloads_without_restarting(agent: Agent) -> None:
    """v0.3.1 session, then a v1.0.1 one with the same workloads, then v0.3.1 again."""
    await agent.v0_3_session([spec("a"), spec("b")])
    await agent.sink.wait_for_state("a", RUNNING)
    await agent.sink.wait_for_state("b", RUNNING)
    created = list(agent.runtime.calls)
    await agent.v1_session([spec("a"), spec("b")])
    await settle()
    await agent.v0_3_session([spec("a"), spec("b")])
    await settle()
    assert agent.runtime.calls == created
    assert agent.rules.current == V0_3_RULES


# --- adoption without lost exits --------------------------------------------------


@pytest.mark.parametrize("dialect", [Dialect.V0_3, Dialect.V1])
async def test_exit_during_the_listing_reaches_the_adopting_loop(agent: Agent, dialect: Dialect) -> None:
    agent.runtime.add_existing(inst("a"))
    agent.runtime.exits.append("a")
    if dialect is Dialect.V1:
        await agent.v1_session([spec("a")])
    else:
        await agent.v0_3_session([spec("a")])
    await agent.sink.wait_for_state("a", EXITED)
    assert agent.runtime.created() == []  # adopted (restart policy NEVER), then seen exiting


async def test_exit_during_the_listing_of_an_update_reaches_the_adopting_loop(agent: Agent) -> None:
    """v0.3.1: the hello's UpdateWorkload adopts before the answer to the request comes."""
    agent.runtime.add_existing(inst("a"))
    agent.runtime.exits.append("a")
    await agent.manager.on_connected(Dialect.V0_3)
    await agent.manager.handle(UpdateWorkload(added=(spec("a"),)))
    await agent.sink.wait_for_state("a", EXITED)


async def test_a_later_message_lists_the_runtimes_afresh(agent: Agent) -> None:
    """An exit after one listing is seen by the next one: the container is replaced, not adopted."""
    agent.runtime.add_existing(inst("a"))
    agent.runtime.add_existing(inst("b"))
    await agent.manager.on_connected(Dialect.V0_3)
    await agent.manager.handle(UpdateWorkload(added=(spec("a"),)))
    await agent.sink.wait_for_state("a", RUNNING)
    agent.runtime.exit("b", 1)  # no loop owns b yet
    await settle()
    request = agent.sink.requests()[-1]
    await agent.manager.handle(DesiredState(request.request_id, (spec("a"), spec("b"))))
    await agent.sink.wait_for(lambda: ("create", inst("b")) in agent.runtime.calls)
    assert agent.runtime.calls == [("delete", inst("b")), ("create", inst("b"))]


async def test_logs_requests_get_nothing_and_change_nothing(agent: Agent) -> None:
    """This agent does not collect logs: nothing is sent for such requests, nothing else is touched."""
    await agent.v1_session([spec("a")])
    await agent.sink.wait_for_state("a", RUNNING)
    sent = len(agent.sink.messages)
    await agent.manager.handle(LogsRequest("agent_B@reader@1", (inst("a"),), follow=True))
    await agent.manager.handle(LogsCancelRequest("agent_B@reader@1"))
    await settle()
    assert len(agent.sink.messages) == sent
    assert agent.runtime.calls == [("create", inst("a"))]
