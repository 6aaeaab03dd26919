"""The manager under the v1.0.1 rules: unsupported runtimes get a loop, ended containers of the
desired instance are started again, and the rules follow the session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ankaios_agent.agent.fakes import FakeClock, FakeControlInterfaceHost, FakeRuntime
from ankaios_agent.agent.lifecycle_rules import V0_3_RULES, V1_RULES, RulesHolder
from ankaios_agent.agent.manager import Manager
from ankaios_agent.agent.model import (
    AddCondition,
    ExecutionState,
    UpdateWorkload,
    UpdateWorkloadState,
    WorkloadState,
)
from ankaios_agent.agent.reconcile import DesiredSnapshot
from ankaios_agent.agent.timings import AgentTimings
from tests.support.lifecycle import WaitingSink, settle
from tests.unit.lifecycle_support import (
    AGENT,
    REMOVED,
    RUNNING,
    STARTING,
    STOPPING_REQUESTED,
    WAITING_TO_START,
    delete,
    inst,
    spec,
)

UNSUPPORTED = ExecutionState.unsupported_runtime()


@dataclass
class Agent:
    manager: Manager
    runtime: FakeRuntime
    kube: FakeRuntime
    sink: WaitingSink
    rules: RulesHolder


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[Agent]:
    runtime = FakeRuntime()
    kube = FakeRuntime(name="podman-kube", reuses_containers=False)
    sink = WaitingSink()
    rules = RulesHolder(V1_RULES)
    manager = Manager(
        AGENT,
        {"podman": runtime, "podman-kube": kube},
        FakeControlInterfaceHost(),
        sink,
        AgentTimings(),
        clock=FakeClock(),
        rules=rules,
        run_folder=tmp_path,
    )
    run = asyncio.create_task(manager.run())
    await settle()
    yield Agent(manager, runtime, kube, sink, rules)
    await manager.shutdown()
    await asyncio.wait_for(run, 1)


async def test_unsupported_runtime_is_reported_then_updated_and_deleted(agent: Agent) -> None:
    handle = agent.manager.handle
    await handle(UpdateWorkload(added=(spec("k", "1", runtime="containerd"),), deleted=()))
    await agent.sink.wait_for_state("k", UNSUPPORTED)
    await handle(UpdateWorkload(added=(spec("k", "2", runtime="containerd"),), deleted=(delete("k", "1"),)))
    await agent.sink.wait_for(lambda: agent.sink.trace("k")[-1] == ("2", UNSUPPORTED))
    await handle(UpdateWorkload(added=(), deleted=(delete("k", "2"),)))
    await agent.sink.wait_for(lambda: agent.sink.trace("k")[-1] == ("2", REMOVED))
    assert agent.sink.trace("k") == [
        ("1", STARTING),
        ("1", UNSUPPORTED),
        ("1", STOPPING_REQUESTED),
        ("1", REMOVED),
        ("2", STARTING),
        ("2", UNSUPPORTED),
        ("2", STOPPING_REQUESTED),
        ("2", REMOVED),
    ]


async def test_under_v0_3_rules_an_unknown_runtime_stays_silent(agent: Agent) -> None:
    agent.rules.use(V0_3_RULES)
    await agent.manager.handle(UpdateWorkload(added=(spec("k", runtime="containerd"),), deleted=()))
    await settle()
    assert agent.sink.states() == []
    assert agent.manager.table.loop("k") is None


async def test_an_ended_container_of_the_desired_instance_is_started_again(agent: Agent) -> None:
    runtime_id = agent.runtime.add_existing(inst("a"), ExecutionState.succeeded())
    await agent.manager.reconcile(DesiredSnapshot((spec("a"),)))
    await agent.sink.wait_for_state("a", RUNNING)
    assert agent.runtime.reused("a") == [runtime_id]
    assert agent.runtime.deleted() == []
    assert agent.sink.trace("a") == [("1", STARTING), ("1", RUNNING)]
    assert agent.runtime.container("a").runtime_id == runtime_id


@pytest.mark.parametrize("v1", [True, False], ids=["kube under v1.0.1", "podman under v0.3.1"])
async def test_otherwise_an_ended_container_is_replaced(agent: Agent, v1: bool) -> None:
    runtime = agent.kube if v1 else agent.runtime
    if not v1:
        agent.rules.use(V0_3_RULES)
    old_id = runtime.add_existing(inst("a"), ExecutionState.succeeded())
    await agent.manager.reconcile(DesiredSnapshot((spec("a", runtime=runtime.name),)))
    await agent.sink.wait_for_state("a", RUNNING)
    assert runtime.reused() == []
    assert runtime.deleted() == [inst("a")]
    assert runtime.container("a").runtime_id != old_id
    assert WorkloadState(inst("a"), RUNNING) in agent.sink.states("a")


@pytest.mark.parametrize("v1", [True, False], ids=["v1.0.1: per instance", "v0.3.1: per name"])
async def test_during_an_update_of_a_dependency_its_old_instance_still_counts(agent: Agent, v1: bool) -> None:
    """behaviour "v1.0.1: store keys": the old instance's Running(Ok) meets an add condition until
    its Removed comes in; v0.3.1 keeps only the newest state under the name."""
    if not v1:
        agent.rules.use(V0_3_RULES)
    old, new = inst("b", "1", agent="agent_B"), inst("b", "2", agent="agent_B")
    await agent.manager.handle(UpdateWorkloadState((WorkloadState(old, RUNNING),)))
    await agent.manager.handle(UpdateWorkloadState((WorkloadState(new, STARTING),)))
    await agent.manager.handle(
        UpdateWorkload(added=(spec("a", deps={"b": AddCondition.RUNNING}),), deleted=())
    )
    if v1:
        await agent.sink.wait_for_state("a", RUNNING)  # while the new instance of b only starts
    else:
        await agent.sink.wait_for_state("a", WAITING_TO_START)
        await settle()
        assert agent.runtime.created("a") == []
        await agent.manager.handle(UpdateWorkloadState((WorkloadState(new, RUNNING),)))
        await agent.sink.wait_for_state("a", RUNNING)
    assert agent.runtime.created("a") == [inst("a")]
