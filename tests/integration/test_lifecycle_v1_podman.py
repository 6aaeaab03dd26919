"""The manager under the v1.0.1 rules with the real podman runtime and control interfaces:
restarts that keep or replace the container, workload files seen by the container, the
instance's folder removed with it, and an ended container started again at reconciliation."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ankaios_agent.agent.fakes import RecordingSink
from ankaios_agent.agent.lifecycle_rules import V1_RULES, RulesHolder
from ankaios_agent.agent.manager import Manager
from ankaios_agent.agent.model import (
    DeleteRequest,
    ExecutionState,
    InstanceName,
    RestartPolicy,
    TextContent,
    UpdateWorkload,
    WorkloadFile,
    WorkloadSpec,
)
from ankaios_agent.agent.reconcile import DesiredSnapshot
from ankaios_agent.agent.timings import AgentTimings
from ankaios_agent.control_interface import ControlInterfaceHost
from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman.runtime import PodmanRuntime
from tests.integration.podman.conftest import busybox_spec, fast_timings
from tests.support.podman_env import PodmanEnv

pytestmark = pytest.mark.podman

WAIT_S = 60.0  # bounds a hung test only


@dataclass
class Agent:
    name: str
    env: PodmanEnv
    run: Path
    runtime: PodmanRuntime
    manager: Manager
    sink: RecordingSink

    def spec(
        self, workload: str, args: list[str], options: list[str] | None = None, **changes: object
    ) -> WorkloadSpec:
        instance = InstanceName(workload, self.name, uuid.uuid4().hex[:8])
        spec = busybox_spec(self.env, instance, args, options)
        return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]

    def ids(self, instance: InstanceName) -> list[str]:
        return [str(c["Id"]) for c in self.env.containers(f"name={instance}")]

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT_S):
            while not predicate():
                self.sink.changed.clear()
                await asyncio.wait({asyncio.ensure_future(self.sink.changed.wait())}, timeout=0.2)

    def states(self, instance: InstanceName) -> list[ExecutionState]:
        return [s.state for s in self.sink.states(instance.workload) if s.instance == instance]


@contextlib.asynccontextmanager
async def running_agent(env: PodmanEnv, run: Path, name: str | None = None) -> AsyncIterator[Agent]:
    name = name or f"itest{uuid.uuid4().hex[:8]}"
    runtime = PodmanRuntime(PodmanConnection(env.socket_url), name, fast_timings())
    sink = RecordingSink()
    manager = Manager(
        name,
        {runtime.name: runtime},
        ControlInterfaceHost(run, forward=sink.send),
        sink,
        AgentTimings(),
        rules=RulesHolder(V1_RULES),
        run_folder=run,
    )
    task = asyncio.create_task(manager.run())
    try:
        yield Agent(name, env, run, runtime, manager, sink)
    finally:
        await manager.shutdown()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await runtime.close()


@pytest.fixture
async def agent(podman_env: PodmanEnv, tmp_path: Path) -> AsyncIterator[Agent]:
    async with running_agent(podman_env, tmp_path / "run") as started:
        try:
            yield started
        finally:
            podman_env.remove_by_label(f"agent={started.name}")


async def test_always_restart_after_success_keeps_the_container(agent: Agent, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    script = "echo run >> /out/log; sleep 0.5"
    spec = agent.spec(
        "always", ["sh", "-c", script], ["-v", f"{out}:/out"], restart_policy=RestartPolicy.ALWAYS
    )
    await agent.manager.handle(UpdateWorkload(added=(spec,), deleted=()))
    log = out / "log"
    await agent.until(lambda: log.exists() and log.read_text().count("run") >= 3)
    assert len(agent.ids(spec.instance)) == 1
    first_id = agent.ids(spec.instance)[0]
    await agent.until(lambda: log.read_text().count("run") >= 4)
    assert agent.ids(spec.instance) == [first_id]
    states = agent.states(spec.instance)
    assert ExecutionState.requested_at_runtime() not in states
    assert ExecutionState.removed() not in states


async def test_on_failure_restart_gets_a_new_container(agent: Agent) -> None:
    spec = agent.spec("onfail", ["sh", "-c", "sleep 0.5; exit 1"], restart_policy=RestartPolicy.ON_FAILURE)
    await agent.manager.handle(UpdateWorkload(added=(spec,), deleted=()))
    seen: set[str] = set()

    def two_containers_seen() -> bool:
        seen.update(agent.ids(spec.instance))
        return len(seen) >= 2

    await agent.until(two_containers_seen)
    assert ExecutionState.requested_at_runtime() in agent.states(spec.instance)
    await agent.manager.handle(UpdateWorkload(added=(), deleted=(DeleteRequest(spec.instance),)))


async def test_files_are_seen_read_only_and_the_folder_goes_with_the_workload(agent: Agent) -> None:
    script = (
        "grep -qx hello /etc/app/config.json || exit 3; if echo x > /etc/app/config.json; then exit 4; fi"
    )
    spec = agent.spec(
        "files", ["sh", "-c", script], files=(WorkloadFile("/etc/app/config.json", TextContent("hello\n")),)
    )
    await agent.manager.handle(UpdateWorkload(added=(spec,), deleted=()))
    ended = {ExecutionState.succeeded(), ExecutionState.exec_failed(3), ExecutionState.exec_failed(4)}
    await agent.until(lambda: bool(ended.intersection(agent.states(spec.instance))))
    assert ExecutionState.succeeded() in agent.states(spec.instance)  # read it, could not change it
    folder = agent.run / spec.instance.folder_name
    assert (folder / "files/etc/app/config.json").read_text() == "hello\n"
    await agent.manager.handle(UpdateWorkload(added=(), deleted=(DeleteRequest(spec.instance),)))
    await agent.until(lambda: ExecutionState.removed() in agent.states(spec.instance))
    assert not folder.exists()
    assert agent.ids(spec.instance) == []


async def test_a_bad_file_fails_the_workload_without_a_container(agent: Agent) -> None:
    spec = agent.spec("badfile", ["true"], files=(WorkloadFile("/etc/../../x", TextContent("x")),))
    await agent.manager.handle(UpdateWorkload(added=(spec,), deleted=()))
    reason = "invalid mount point '/etc/../../x': 'path '/etc/../../x' contains invalid path components'"
    await agent.until(lambda: ExecutionState.files_failed(reason) in agent.states(spec.instance))
    assert agent.ids(spec.instance) == []
    assert not (agent.run.parent / "x").exists()


async def test_an_ended_container_is_started_again_after_an_agent_restart(
    podman_env: PodmanEnv, tmp_path: Path
) -> None:
    name = f"itest{uuid.uuid4().hex[:8]}"
    run = tmp_path / "run"
    try:
        async with running_agent(podman_env, run, name) as first:
            spec = first.spec("done", ["true"])
            await first.manager.handle(UpdateWorkload(added=(spec,), deleted=()))
            await first.until(lambda: ExecutionState.succeeded() in first.states(spec.instance))
            [container_id] = first.ids(spec.instance)
        async with running_agent(podman_env, run, name) as second:
            await second.manager.reconcile(DesiredSnapshot((spec,)))
            await second.until(lambda: ExecutionState.succeeded() in second.states(spec.instance))
            assert second.ids(spec.instance) == [container_id]
            assert ExecutionState.requested_at_runtime() not in second.states(spec.instance)
    finally:
        podman_env.remove_by_label(f"agent={name}")
