"""The official ankaios-sdk, unmodified, as a workload of this agent in a v1.0.1 session.

A real container (Python plus ``ankaios-sdk`` from a local wheelhouse, built
offline) runs as a workload of the real agent process, which talks to the
v1.0.1 server double. The client connects (handshake), reads the state with a
mask its rules allow, is refused one they do not allow, adds a workload that
then runs, and, after the agent was killed with SIGKILL and started again
(the container keeps running), reconnects by itself and is served again.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ankaios_agent.agent.lifecycle_rules import Dialect
from ankaios_agent.agent.model import (
    AccessRules,
    InstanceName,
    Operation,
    Request,
    Response,
    StateRule,
    WorkloadSpec,
)
from ankaios_agent.control_interface import ControlInterfaceHost
from ankaios_agent.proto import ank_base_pb2 as base
from tests.server_double_v1 import ServerDoubleV1, state_from_yaml
from tests.support.podman_env import IMAGE, PodmanEnv
from tests.support.sdk_image import ensure_sdk_image, missing_reason

pytestmark: list[pytest.MarkDecorator] = [pytest.mark.podman]

SLOW = 120.0
_MISSING = missing_reason()
if _MISSING is not None:
    if os.environ.get("ANK_SDK_TEST_REQUIRED") == "1":
        raise RuntimeError(f"the ankaios-sdk test must run here, but {_MISSING}")
    pytestmark = [pytest.mark.podman, pytest.mark.skip(reason=f"ankaios-sdk client image: {_MISSING}")]


SLEEPER = f"image: {IMAGE}\ncommandArgs: ['sh', '-c', 'trap \"exit 0\" TERM; sleep 1000 & wait']\n"


def manifest(agent: str, image: str, data: Path) -> str:
    client_config = f"image: {image}\ncommandOptions: ['-v', '{data}:/data', '-e', 'AGENT_NAME={agent}']\n"
    return json.dumps(
        {
            "apiVersion": "v1",
            "workloads": {
                "sdk_client": {
                    "agent": agent,
                    "runtime": "podman",
                    "restartPolicy": "NEVER",
                    "runtimeConfig": client_config,
                    "controlInterfaceAccess": {
                        "allowRules": [
                            {
                                "type": "StateRule",
                                "operation": "Read",
                                "filterMasks": ["desiredState.workloads"],
                            },
                            {
                                "type": "StateRule",
                                "operation": "Write",
                                "filterMasks": ["desiredState.workloads.sdk_added"],
                            },
                        ],
                        "denyRules": [
                            {"type": "StateRule", "operation": "Read", "filterMasks": ["agents"]},
                        ],
                    },
                },
                "bystander": {"agent": agent, "runtime": "podman", "runtimeConfig": SLEEPER},
            },
        }
    )


async def step(data: Path, name: str) -> dict[str, Any]:
    """Wait for the client's report of step ``name``; fail at once if it reported a failure."""
    path = data / f"{name}.json"
    failed = data / "failed.json"
    deadline = asyncio.get_running_loop().time() + SLOW
    while not path.exists():
        if failed.exists():
            pytest.fail(f"the SDK client failed before '{name}':\n{json.loads(failed.read_text())['error']}")
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"the SDK client did not report '{name}' within {SLOW:.0f}s")
        await asyncio.sleep(0.2)
    result: dict[str, Any] = json.loads(path.read_text())
    return result


async def start_agent(command: list[str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(*command, stdout=out, stderr=subprocess.STDOUT)


async def test_sdk_connects_reads_is_refused_updates_and_reconnects_after_agent_restart(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path
) -> None:
    image = ensure_sdk_image()
    data = tmp_path / "data"
    data.mkdir()
    (data / "new_workload_config").write_text(SLEEPER)
    run = tmp_path / "run"
    run.mkdir()
    server = ServerDoubleV1(state_from_yaml(manifest(agent_name, image, data)))
    await server.start()
    command = [
        sys.executable, "-m", "ankaios_agent", "--name", agent_name, "--server-url", server.url,
        "--protocol", "v1", "--insecure", "--run-folder", str(run), "--podman-socket", podman_env.socket_url,
    ]  # fmt: skip
    log = tmp_path / "agent.log"
    process = await start_agent(command, log)
    try:
        await server.wait_for_state("sdk_client", "Running(Ok)", timeout=SLOW)
        await step(data, "connected")
        allowed = await step(data, "allowed")
        assert set(allowed["workloads"]) == {"sdk_client", "bystander"}
        refused = await step(data, "refused")
        assert refused["error"] is not None and "Access denied" in refused["error"]
        applied = await step(data, "applied")
        assert len(applied["added"]) == 1 and "sdk_added" in applied["added"][0]
        await server.wait_for_state("sdk_added", "Running(Ok)", timeout=SLOW)

        client_ids = podman_env.container_ids(f"agent={agent_name}")
        process.kill()
        await process.wait()
        process = await start_agent(command, log)
        (data / "agent-restarted").touch()
        reconnected = await step(data, "reconnected")
        assert set(reconnected["workloads"]) == {"sdk_client", "bystander", "sdk_added"}
        # The client's container was never restarted: the same process reconnected.
        assert podman_env.container_ids(f"agent={agent_name}") == client_ids
        await server.wait_for_state("sdk_client", "Succeeded(Ok)", timeout=SLOW)
        await server.wait_for_state("bystander", "Running(Ok)", timeout=SLOW)
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        await server.stop()
        podman_env.remove_by_label(f"agent={agent_name}")
    assert b"Traceback" not in log.read_bytes()


class AnsweringServer:
    """Stands in for the server behind the host: answers reads and updates like the double."""

    def __init__(self) -> None:
        self.workloads = ["sdk_client", "bystander"]
        self.host: ControlInterfaceHost | None = None
        self.requests: list[Request] = []

    def __call__(self, request: Request) -> None:
        self.requests.append(request)
        wire = base.Request.FromString(request.body)
        kind = wire.WhichOneof("RequestContent")
        if kind == "completeStateRequest":
            state = base.CompleteState(
                desiredState=base.State(
                    apiVersion="v1",
                    workloads=base.WorkloadMap(
                        workloads={
                            name: base.Workload(agent="agent_A", runtime="podman", runtimeConfig="image: x")
                            for name in self.workloads
                        }
                    ),
                )
            )
            body = base.Response(completeStateResponse=base.CompleteStateResponse(completeState=state))
        else:
            name = next(iter(wire.updateStateRequest.newState.desiredState.workloads.workloads))
            self.workloads.append(name)
            body = base.Response(
                UpdateStateSuccess=base.UpdateStateSuccess(addedWorkloads=[f"{name}.1.agent_A"])
            )
        assert self.host is not None
        self.host.route(Response(request.request_id, body.SerializeToString()))


async def test_sdk_against_the_relay_across_an_agent_restart(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path
) -> None:
    """The same client in a real container, served by the control-interface host of this agent
    with the workload's real rules; the "agent restart" drops the host and makes a new one on
    the same FIFOs while the container keeps running."""
    image = ensure_sdk_image()
    data = tmp_path / "data"
    data.mkdir()
    (data / "new_workload_config").write_text(SLEEPER)
    # The rules exactly as the manifest of the agent test gives them.
    access = AccessRules(
        allow=(
            StateRule(Operation.READ, ("desiredState.workloads",)),
            StateRule(Operation.WRITE, ("desiredState.workloads.sdk_added",)),
        ),
        deny=(StateRule(Operation.READ, ("agents",)),),
    )
    spec = WorkloadSpec(
        InstanceName("sdk_client", agent_name, "1" * 64), "podman", "", control_interface_access=access
    )
    server = AnsweringServer()
    host = ControlInterfaceHost(tmp_path / "io", server, dialect=Dialect.V1)
    server.host = host
    folder = await host.ensure_for(spec)
    assert folder is not None
    podman_env.podman(
        "run", "-d", "--label", f"agent={agent_name}", "-v", f"{data}:/data",
        "-v", f"{folder}:/run/ankaios/control_interface", "-e", f"AGENT_NAME={agent_name}", image,
    )  # fmt: skip
    try:
        await step(data, "connected")
        assert set((await step(data, "allowed"))["workloads"]) == {"sdk_client", "bystander"}
        assert "Access denied" in (await step(data, "refused"))["error"]
        assert len(server.requests) == 2  # the refused read never reached the server
        assert len((await step(data, "applied"))["added"]) == 1
        await host.close()
        host = ControlInterfaceHost(tmp_path / "io", server, dialect=Dialect.V1)
        server.host = host
        assert await host.ensure_for(spec) == folder
        (data / "agent-restarted").touch()
        reconnected = await step(data, "reconnected")
        assert set(reconnected["workloads"]) == {"sdk_client", "bystander", "sdk_added"}
        counters = host.counters("sdk_client")
        assert counters is not None and counters.handshakes_accepted == 1
        assert counters.handshakes_refused == 0
    finally:
        await host.close()
        podman_env.remove_by_label(f"agent={agent_name}")
