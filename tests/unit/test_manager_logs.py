"""The manager's log handling: requests and cancels reach the collector, workloads it cannot
serve get nothing, a broken server stream and shutdown stop every collection, a clean end
keeps them, and event responses are routed like any response."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ankaios_agent.agent.dialect_v1 import conversion
from ankaios_agent.agent.fakes import FakeClock, FakeControlInterfaceHost, FakeRuntime
from ankaios_agent.agent.lifecycle_rules import V1_RULES, RulesHolder
from ankaios_agent.agent.manager import Manager
from ankaios_agent.agent.model import (
    InstanceName,
    LogEntries,
    LogsCancelRequest,
    LogsRequest,
    LogsStopped,
    Response,
    UpdateWorkload,
)
from ankaios_agent.agent.ports import LogBatch, LogOptions
from ankaios_agent.agent.timings import AgentTimings
from ankaios_agent.proto import ank_base_pb2 as base
from ankaios_agent.proto import grpc_api_pb2 as api
from tests.support.lifecycle import WaitingSink, settle
from tests.unit.lifecycle_support import AGENT, RUNNING, inst, spec


@dataclass
class LoggingRuntime(FakeRuntime):
    """A fake runtime whose logs are fed by the test; a log ends when ``end`` is called."""

    feeds: dict[InstanceName, asyncio.Queue[LogBatch | None]] = field(default_factory=dict)
    closed: list[InstanceName] = field(default_factory=list)

    def feed(self, instance: InstanceName) -> asyncio.Queue[LogBatch | None]:
        return self.feeds.setdefault(instance, asyncio.Queue())

    async def logs(self, instance: InstanceName, options: LogOptions) -> AsyncGenerator[LogBatch, None]:
        queue = self.feed(instance)
        try:
            while (batch := await queue.get()) is not None:
                yield batch
        finally:
            self.closed.append(instance)


@dataclass
class Agent:
    manager: Manager
    runtime: LoggingRuntime
    sink: WaitingSink
    ci: FakeControlInterfaceHost


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[Agent]:
    runtime = LoggingRuntime()
    sink = WaitingSink()
    ci = FakeControlInterfaceHost()
    manager = Manager(
        AGENT,
        {"podman": runtime, "nologs": FakeRuntime(name="nologs")},
        ci,
        sink,
        AgentTimings(),
        clock=FakeClock(),
        rules=RulesHolder(V1_RULES),
        run_folder=tmp_path,
    )
    run = asyncio.create_task(manager.run())
    await settle()
    yield Agent(manager, runtime, sink, ci)
    await manager.shutdown()
    await asyncio.wait_for(run, 1)


def logs_of(sink: WaitingSink) -> list[LogEntries | LogsStopped]:
    return [m for m in sink.messages if isinstance(m, LogEntries | LogsStopped)]


async def running(agent: Agent, name: str, runtime: str = "podman") -> InstanceName:
    await agent.manager.handle(UpdateWorkload(added=(spec(name, runtime=runtime),), deleted=()))
    await agent.sink.wait_for_state(name, RUNNING)
    return inst(name)


async def test_a_request_is_served_until_the_log_ends(agent: Agent) -> None:
    wl = await running(agent, "web")
    # The request names the instance as the server knows it; the agent compares the name only.
    asked = InstanceName("web", AGENT, "other-id")
    await agent.manager.handle(LogsRequest("cli@1", (asked,), follow=True))
    await settle()
    agent.runtime.feed(wl).put_nowait(("a", "b"))
    agent.runtime.feed(wl).put_nowait(None)
    await agent.sink.wait_for(lambda: any(isinstance(m, LogsStopped) for m in logs_of(agent.sink)))
    assert [type(m) for m in logs_of(agent.sink)] == [LogEntries, LogsStopped]
    entries = logs_of(agent.sink)[0]
    assert isinstance(entries, LogEntries)
    assert [(e.instance, e.message) for e in entries.entries] == [(asked, "a"), (asked, "b")]
    assert agent.manager.logs.active == {}


@pytest.mark.parametrize(
    "workload",
    ["ghost", "unsupported"],  # no such workload; its runtime cannot read logs
)
async def test_workloads_that_cannot_be_served_get_nothing(agent: Agent, workload: str) -> None:
    await running(agent, "unsupported", runtime="nologs")
    await agent.manager.handle(LogsRequest("cli@1", (inst(workload),)))
    await settle()
    assert logs_of(agent.sink) == []
    assert agent.manager.logs.active == {}


async def test_a_cancel_stops_the_collection_and_sends_nothing(agent: Agent) -> None:
    wl = await running(agent, "web")
    await agent.manager.handle(LogsRequest("cli@1", (wl,), follow=True))
    await settle()
    await agent.manager.handle(LogsCancelRequest("someone-else@2"))  # unknown ids are ignored
    assert "cli@1" in agent.manager.logs.active
    await agent.manager.handle(LogsCancelRequest("cli@1"))
    await agent.sink.wait_for(lambda: wl in agent.runtime.closed)
    assert agent.manager.logs.active == {}
    assert logs_of(agent.sink) == []


@pytest.mark.parametrize(("clean", "kept"), [(True, True), (False, False)])
async def test_only_a_broken_server_stream_stops_the_collections(
    agent: Agent, clean: bool, kept: bool
) -> None:
    wl = await running(agent, "web")
    await agent.manager.handle(LogsRequest("cli@1", (wl,), follow=True))
    await settle()
    await agent.manager.on_session_ended(clean)
    assert ("cli@1" in agent.manager.logs.active) is kept
    assert (wl in agent.runtime.closed) is not kept
    assert logs_of(agent.sink) == []  # stopping sends nothing


async def test_shutdown_stops_every_collection(agent: Agent) -> None:
    wl = await running(agent, "web")
    await agent.manager.handle(LogsRequest("cli@1", (wl,), follow=True))
    await agent.manager.handle(LogsRequest("cli@2", (wl,), follow=True))
    await settle()
    await asyncio.wait_for(agent.manager.shutdown(), 1)
    assert agent.manager.logs.active == {}
    assert agent.runtime.closed == [wl, wl]


async def test_an_event_of_a_subscription_is_routed_to_its_workload(agent: Agent) -> None:
    """A CompleteState with alteredFields, as the server sends for every event, reaches the router."""
    event = base.Response(requestId="reader@sub-1")
    event.completeStateResponse.completeState.desiredState.apiVersion = "v1"
    event.completeStateResponse.alteredFields.updatedFields.append("desiredState.workloads.web")
    decoded = conversion.from_server(api.FromServer(response=event), AGENT)
    assert isinstance(decoded, Response)
    await agent.manager.handle(decoded)
    assert agent.ci.routed == [decoded]
    body = base.Response.FromString(decoded.body)
    assert list(body.completeStateResponse.alteredFields.updatedFields) == ["desiredState.workloads.web"]
