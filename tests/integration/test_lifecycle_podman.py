"""End to end: the manager with the real podman runtime, control interfaces and the server double.

Issue 4 item 6: dependencies, restart policies, retry limit, reconnect without restarts,
agent restart with adoption. Needs branches conn, podman and ctl merged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

# Lives on branch lifecycle before the other parts are merged: skip until they are there.
for _module in ("agent.wiring", "runtimes.podman.runtime", "tests.server_double", "tests.support.podman_env"):
    pytest.importorskip(_module)

from agent.app import run_agent  # noqa: E402
from agent.config import parse_args  # noqa: E402
from agent.wiring import assemble  # noqa: E402

from tests.server_double import ServerDouble  # noqa: E402
from tests.server_double.state import state_from_yaml  # noqa: E402
from tests.support.podman_env import IMAGE, PodmanEnv  # noqa: E402

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
    def __init__(self, server: ServerDouble, name: str, folder: Path, env: PodmanEnv) -> None:
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


async def test_dependencies_restart_and_reconnect_without_restart(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None
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
    server = ServerDouble(state_from_yaml(_state(agent_name, workloads)))
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
