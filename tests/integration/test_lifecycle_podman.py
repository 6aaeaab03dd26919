"""End to end: the manager with the real podman runtime, control interfaces and the server double.

Dependencies, restart policies, retry limit, reconnect without restarts, agent restart
with adoption, and a lost Removed sent again. What both dialects share runs against both
server doubles (``dialect``), with the agent probing like ``--protocol auto``.
"""

# ruff: noqa: I001  (the skip guard below must run before these imports)
from __future__ import annotations

import asyncio
import hashlib
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

# Needs the podman runtime, the wiring and the server double: skip where one is missing.
for _module in (
    "ankaios_agent.agent.wiring",
    "ankaios_agent.runtimes.podman.runtime",
    "tests.server_double",
    "tests.support.podman_env",
):
    pytest.importorskip(_module)

from ankaios_agent.agent.app import run_agent  # noqa: E402
from ankaios_agent.agent.config import parse_args  # noqa: E402
from ankaios_agent.agent.connection import ConnectionTimings, ServerConnection  # noqa: E402
from ankaios_agent.agent.outbox import Outbox  # noqa: E402
from ankaios_agent.agent.wiring import assemble  # noqa: E402
from ankaios_agent.runtimes.podman.runtime import PodmanRuntime  # noqa: E402
from ankaios_agent.agent.manager import Manager  # noqa: E402
from ankaios_agent.agent.timings import AgentTimings  # noqa: E402
from ankaios_agent.control_interface import ControlInterfaceHost  # noqa: E402
from tests.server_double import ServerDouble  # noqa: E402
from tests.server_double.state import key_of, state_from_yaml  # noqa: E402
from ankaios_agent.proto import ankaios_pb2 as pb  # noqa: E402
from tests.support.podman_env import IMAGE, PodmanEnv  # noqa: E402
from tests.integration.conftest import PROBING  # noqa: E402
from tests.support.doubles import (  # noqa: E402
    DIALECTS,
    Dialect,
    Double,
    make_double,
    replace_desired_quietly,
    set_desired,
)

pytestmark = pytest.mark.podman

SLOW = 60.0


def _state(agent: str, workloads: str) -> str:
    return f"apiVersion: v0.1\nworkloads:\n{workloads.replace('AGENT', agent)}"


def _sleeper(name: str, agent: str, extra: str = "", cmd: str = '["sleep", "1000"]') -> str:
    return (
        f"  {name}:\n    runtime: podman\n    agent: {agent}\n{extra}"
        f"    runtimeConfig: |\n      image: {IMAGE}\n      commandArgs: {cmd}\n"
    )


class RunningAgent:
    def __init__(self, server: Double, name: str, folder: Path, env: PodmanEnv) -> None:
        args = ["-n", name, "-s", server.address, "-r", str(folder), "--podman-socket", env.socket_url]
        self.config = parse_args(args, {})
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(run_agent(self.config, assemble, stop=self.stop))

    async def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 10)


@pytest.fixture
def cleanup(podman_env: PodmanEnv, agent_name: str) -> Iterator[None]:
    yield
    podman_env.remove_by_label(f"agent={agent_name}")


def _ids_by_workload(env: PodmanEnv, agent: str) -> dict[str, str]:
    found = {}
    for container in env.containers(f"agent={agent}"):
        labels = container.get("Labels") or {}
        assert isinstance(labels, dict)
        found[str(labels["name"]).split(".")[0]] = str(container["Id"])
    return found


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_dependencies_restart_and_reconnect_without_restart(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None, dialect: Dialect
) -> None:
    workloads = (
        _sleeper("db", agent_name)
        + _sleeper(
            "job",
            agent_name,
            "    dependencies:\n      db: ADD_COND_RUNNING\n",
            '["sh", "-c", "sleep 1; exit 0"]',
        )
        + _sleeper("web", agent_name, "    dependencies:\n      job: ADD_COND_SUCCEEDED\n")
    )
    (tmp_path / f"{agent_name}_io").mkdir()
    server = make_double(dialect, _state(agent_name, workloads))
    await server.start()
    agent = RunningAgent(server, agent_name, tmp_path, podman_env)
    try:
        await server.wait_for_state("web", "Running(Ok)", timeout=SLOW)
        await server.wait_for_state("job", "Succeeded(Ok)", timeout=SLOW)
        ids = _ids_by_workload(podman_env, agent_name)
        assert set(ids) == {"db", "job", "web"}
        # server restart: nothing restarted, states known again
        await server.restart(down_for=0.5)
        await server.wait_for_state("web", "Running(Ok)", timeout=SLOW)
        await server.wait_for_state("db", "Running(Ok)", timeout=SLOW)
        assert _ids_by_workload(podman_env, agent_name) == ids
        # delete: Removed and gone
        await server.delete_workload("web")
        await server.wait_until(lambda: not server.state_of("web"), timeout=SLOW)
        assert set(_ids_by_workload(podman_env, agent_name)) == {"db", "job"}
        await agent.close()
        # agent restart: adopted, container ids unchanged
        agent = RunningAgent(server, agent_name, tmp_path, podman_env)
        await server.wait_for_agent(agent_name, timeout=SLOW)
        await server.wait_for_state("db", "Running(Ok)", timeout=SLOW)
        await server.wait_for_state("job", "Succeeded(Ok)", timeout=SLOW)
        assert _ids_by_workload(podman_env, agent_name)["db"] == ids["db"]
    finally:
        await agent.close()
        await server.stop()


# --- an agent assembled by hand, with fast retry and back-off timings -----------------------


class FastAgent:
    """Manager + real PodmanRuntime + real ControlInterfaceHost + real connection, fast timings."""

    runtime: Any
    manager: Any

    def __init__(self, name: str) -> None:
        self.name = name
        self.tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def start(cls, server: Double, name: str, folder: Path, env: PodmanEnv) -> FastAgent:
        agent = cls(name)
        io_folder = folder / f"{name}_io"
        io_folder.mkdir(exist_ok=True)
        agent.runtime = await PodmanRuntime.open(name, io_folder, env.socket_url)
        outbox = Outbox()
        timings = AgentTimings(create_retry_interval=0.05, restart_backoff_initial=0.2)
        ci = ControlInterfaceHost(io_folder, forward=outbox.send)
        agent.manager = Manager(name, {"podman": agent.runtime}, ci, outbox, timings)
        connection = ServerConnection(
            server.address,
            name,
            outbox,
            agent.manager.handle,
            agent.manager.on_connected,
            ConnectionTimings(connect_timeout=5.0),
            dialects=PROBING,
        )
        agent.tasks = [asyncio.create_task(agent.manager.run()), asyncio.create_task(connection.run())]
        return agent

    async def close(self) -> None:
        await self.manager.shutdown()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.runtime.close()


@contextlib.asynccontextmanager
async def _fast_setup(
    env: PodmanEnv, agent_name: str, folder: Path, workloads: str, dialect: Dialect = "v0.3.1"
) -> AsyncIterator[tuple[Any, FastAgent]]:
    server = make_double(dialect, _state(agent_name, workloads))
    await server.start()
    agent = await FastAgent.start(server, agent_name, folder, env)
    try:
        yield server, agent
    finally:
        await agent.close()
        await server.stop()


def _info_of(server: Double, workload: str) -> list[str]:
    return [f"{s.display}/{s.info}" for s in server.state_of(workload)]


async def test_retry_limit_then_fixed_by_update(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None
) -> None:
    """Missing image (--pull=never) -> 21 attempts -> "No more retries."; an update fixes it."""
    broken = (
        f"  app:\n    runtime: podman\n    agent: {agent_name}\n    runtimeConfig: |\n"
        f'      image: localhost/ank-missing-image:0\n      commandOptions: ["--pull=never"]\n'
    )
    async with _fast_setup(podman_env, agent_name, tmp_path, broken) as (server, _agent):
        await server.wait_until(
            lambda: "Pending(StartingFailed)/No more retries." in _info_of(server, "app"), timeout=SLOW
        )
        fixed = state_from_yaml(_state(agent_name, _sleeper("app", agent_name)))
        await server.set_desired(fixed)
        await server.wait_for_state("app", "Running(Ok)", timeout=SLOW)
        await server.wait_until(lambda: len(server.state_of("app")) == 1, timeout=SLOW)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_restart_policy_on_failure_keeps_one_container(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None, dialect: Dialect
) -> None:
    """A crashing ON_FAILURE workload is restarted, one container at a time."""
    crash = _sleeper(
        "crash", agent_name, "    restartPolicy: ON_FAILURE\n", '["sh", "-c", "sleep 0.3; exit 3"]'
    )
    async with _fast_setup(podman_env, agent_name, tmp_path, crash, dialect) as (server, _agent):

        def restarts() -> int:
            return sum(
                1
                for msg in server.received.get(agent_name, [])
                for ws in msg.updateWorkloadState.workloadStates
                if ws.instanceName.workloadName == "crash"
                and ws.executionState.WhichOneof("ExecutionStateEnum") == "stopping"
            )

        # Sampled throughout the restarts rather than once: between a restart's delete and its
        # create there is no container at all, so a single look may land in that gap.
        counts: list[int] = []

        async def sample() -> None:
            while restarts() < 6:
                ids = await asyncio.to_thread(podman_env.container_ids, f"agent={agent_name}")
                counts.append(len(ids))

        sampler = asyncio.create_task(sample())
        await server.wait_until(lambda: restarts() >= 6, timeout=SLOW)
        await sampler
        assert max(counts) == 1, counts


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_pending_delete_and_update_with_pending_create(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None, dialect: Dialect
) -> None:
    """Stopping(WaitingToStop) while a dependent runs; WaitingToStart for an update whose
    new dependency is missing, with the old instance removed at once."""
    workloads = _sleeper("backend", agent_name) + _sleeper(
        "frontend", agent_name, "    dependencies:\n      backend: ADD_COND_RUNNING\n"
    )
    async with _fast_setup(podman_env, agent_name, tmp_path, workloads, dialect) as (server, _agent):
        await server.wait_for_state("frontend", "Running(Ok)", timeout=SLOW)
        await server.delete_workload("backend")
        await server.wait_for_state("backend", "Stopping(WaitingToStop)", timeout=SLOW)
        changed = _state(
            agent_name,
            _sleeper(
                "frontend",
                agent_name,
                "    dependencies:\n      gate: ADD_COND_RUNNING\n",
                '["sleep", "999"]',
            ),
        )
        await set_desired(server, changed)
        await server.wait_until(lambda: not server.state_of("backend"), timeout=SLOW)
        await server.wait_until(
            lambda: [s.display for s in server.state_of("frontend")] == ["Pending(WaitingToStart)"],
            timeout=SLOW,
        )
        assert podman_env.container_ids(f"agent={agent_name}") == []


async def test_hundred_workloads_reach_running(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None
) -> None:
    """100 workloads on one agent all reach Running(Ok)."""
    names = [f"w{i:03d}" for i in range(100)]
    workloads = "".join(_sleeper(name, agent_name) for name in names)
    async with _fast_setup(podman_env, agent_name, tmp_path, workloads) as (server, _agent):
        await server.wait_until(
            lambda: all([s.display for s in server.state_of(name)] == ["Running(Ok)"] for name in names),
            timeout=600,
        )
        assert len(podman_env.container_ids(f"agent={agent_name}")) == 100


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_dependency_across_two_agents(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None, dialect: Dialect
) -> None:
    """A workload waits for ADD_COND_FAILED of a workload on another agent."""
    other = f"{agent_name}x"
    workloads = _sleeper("fails", other, cmd='["sh", "-c", "sleep 0.5; exit 1"]') + _sleeper(
        "after", agent_name, "    dependencies:\n      fails: ADD_COND_FAILED\n"
    )
    async with _fast_setup(podman_env, agent_name, tmp_path, workloads, dialect) as (server, _agent):
        await server.wait_for_state("after", "Pending(WaitingToStart)", timeout=SLOW)
        second = await FastAgent.start(server, other, tmp_path, podman_env)
        try:
            await server.wait_for_state("fails", "Failed(ExecFailed)", timeout=SLOW)
            await server.wait_for_state("after", "Running(Ok)", timeout=SLOW)
        finally:
            await second.close()
            podman_env.remove_by_label(f"agent={other}")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_server_restarted_with_changed_state_reconciles_without_restarting_the_rest(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None, dialect: Dialect
) -> None:
    """While the agent was away one workload was deleted,
    one changed and one added; after the reconnect exactly those change, the unchanged one keeps
    its container."""
    workloads = "".join(_sleeper(name, agent_name) for name in ("keep", "gone", "changed"))
    async with _fast_setup(podman_env, agent_name, tmp_path, workloads, dialect) as (server, _agent):
        for name in ("keep", "gone", "changed"):
            await server.wait_for_state(name, "Running(Ok)", timeout=SLOW)
        before = _ids_by_workload(podman_env, agent_name)

        after_restart = _state(
            agent_name,
            _sleeper("keep", agent_name)
            + _sleeper("changed", agent_name, cmd='["sleep", "999"]')
            + _sleeper("added", agent_name),
        )
        changed = state_from_yaml(after_restart)
        replace_desired_quietly(server, after_restart)
        await server.restart(down_for=1.0)

        new_id = hashlib.sha256(changed.workloads["changed"].runtimeConfig.encode()).hexdigest()
        await server.wait_until(
            lambda: (
                {i.id for i in server.states if i.workload == "changed"} == {new_id}
                and any(s.display == "Running(Ok)" for s in server.state_of("changed"))
            ),
            timeout=SLOW,
        )
        await server.wait_for_state("added", "Running(Ok)", timeout=SLOW)
        await server.wait_until(lambda: not server.state_of("gone"), timeout=SLOW)
        after = _ids_by_workload(podman_env, agent_name)
        assert set(after) == {"keep", "changed", "added"}
        assert after["keep"] == before["keep"]
        assert after["changed"] != before["changed"]


async def test_a_row_whose_removed_was_lost_goes_after_the_reconnect(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None
) -> None:
    """The server still holds a state row of this agent for an instance the agent no longer has
    (its Removed went into a broken stream): the agent's reconciliation sends Removed again, and
    the row of a workload it runs stays."""
    (tmp_path / f"{agent_name}_io").mkdir()
    server = ServerDouble(state_from_yaml(_state(agent_name, _sleeper("db", agent_name))))
    ghost = pb.WorkloadState(
        instanceName=pb.WorkloadInstanceName(workloadName="ghost", agentName=agent_name, id="7"),
        executionState=pb.ExecutionState(agentDisconnected=pb.AGENT_DISCONNECTED),
    )
    server._states[key_of(ghost.instanceName)] = ghost  # a row left from before the stream broke
    await server.start()
    agent = RunningAgent(server, agent_name, tmp_path, podman_env)
    try:
        await server.wait_for_state("db", "Running(Ok)", timeout=SLOW)
        await server.wait_until(lambda: not server.state_of("ghost"), timeout=SLOW)
        assert server.state_of("db")
    finally:
        await agent.close()
        await server.stop()
