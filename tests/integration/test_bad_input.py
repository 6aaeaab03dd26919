"""Bad input never kills the agent nor disturbs other workloads (review: robustness of ank-agent).

The real agent (``run_agent`` with the production wiring), the server double and real Podman:
malformed runtimeConfigs, unusable workload names, an unknown runtime, workloads abusing their
control interface, and a Podman service that goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ankaios_agent.agent.app import run_agent
from ankaios_agent.agent.config import parse_args
from ankaios_agent.agent.conversion import execution_state_from_proto
from ankaios_agent.agent.errors import RuntimeCreateFailed, RuntimeDeleteFailed
from ankaios_agent.agent.model import AGENT_REQUEST_PREFIX, InstanceName, WorkloadSpec
from ankaios_agent.agent.ports import CreateRequest
from ankaios_agent.agent.wiring import assemble
from ankaios_agent.control_interface.framing import frame
from ankaios_agent.proto import ankaios_pb2 as pb
from ankaios_agent.runtimes.podman.runtime import PodmanRuntime
from tests.server_double import ServerDouble
from tests.support.podman_env import IMAGE, PodmanEnv

pytestmark = pytest.mark.podman

SLOW = 60.0
GOOD = f"image: {IMAGE}\ncommandArgs: ['sh', '-c', 'trap \"exit 0\" TERM; sleep 1000 & wait']\n"
CI = "/run/ankaios/control_interface"
FINAL = "Pending(StartingFailed)/No more retries."


@pytest.fixture
def cleanup(podman_env: PodmanEnv, agent_name: str) -> Iterator[None]:
    yield
    podman_env.remove_by_label(f"agent={agent_name}")


@contextlib.asynccontextmanager
async def running_agent(
    env: PodmanEnv, agent: str, folder: Path, workloads: dict[str, pb.Workload]
) -> AsyncIterator[ServerDouble]:
    server = ServerDouble(pb.State(apiVersion="v0.1", workloads=workloads))
    await server.start()
    args = ["-n", agent, "-s", server.address, "-r", str(folder), "--podman-socket", env.socket_url]
    stop = asyncio.Event()
    task = asyncio.create_task(run_agent(parse_args(args, {}), assemble, stop=stop))
    try:
        yield server
        assert not task.done(), "the agent stopped by itself"
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await server.stop()


def podman(agent: str, config: str, runtime: str = "podman") -> pb.Workload:
    return pb.Workload(agent=agent, runtime=runtime, runtimeConfig=config)


def reported(server: ServerDouble, agent: str, workload: str) -> list[str]:
    """Every state the agent sent for ``workload``, in order, as ``display/info``."""
    found = []
    for msg in server.received.get(agent, []):
        for state in msg.updateWorkloadState.workloadStates:
            if state.instanceName.workloadName == workload:
                decoded = execution_state_from_proto(state.executionState)
                found.append(f"{decoded.display}/{decoded.info}")
    return found


def display_of(server: ServerDouble, workload: str) -> list[str]:
    return [f"{s.display}/{s.info}" for s in server.state_of(workload)]


BAD_CONFIGS = {
    "not-yaml": ("image: [unclosed\n  : :", "not valid YAML"),
    "yaml-list": ("- a\n- b\n", "must be a YAML mapping, got a list"),
    "no-image": ("commandArgs: [sleep, '1']\n", "missing the required key 'image'"),
    "image-list": ("image: [1, 2]\n", "'image' must be a non-empty string"),
    "unknown-option": (f"image: {IMAGE}\ncommandOptions: ['--frobnicate']\n", "'--frobnicate'"),
    "restart-option": (
        f"image: {IMAGE}\ncommandOptions: ['--restart=always']\n",
        "'--restart' is not allowed",
    ),
}
BAD_NAMES = {
    "a/b": "contains '/'",
    "..": "'..'",
    "L" * 300: "File name too long",
    "at@name": "is not accepted by Podman",
}


async def test_bad_configs_and_names_fail_once_with_a_clear_message_and_others_keep_running(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None
) -> None:
    """behaviour "Workload loop: create and retry" and README "Bad input": StartingFailed naming the problem,
    then final."""
    workloads = {"good": podman(agent_name, GOOD), "odd-runtime": podman(agent_name, GOOD, "dockerx")}
    workloads |= {name: podman(agent_name, config) for name, (config, _) in BAD_CONFIGS.items()}
    workloads |= {name: podman(agent_name, GOOD) for name in BAD_NAMES}
    async with running_agent(podman_env, agent_name, tmp_path, workloads) as server:
        await server.wait_for_state("good", "Running(Ok)", timeout=SLOW)
        expected = {name: text for name, (_, text) in BAD_CONFIGS.items()} | BAD_NAMES
        for name, text in expected.items():

            def is_final(n: str = name) -> bool:
                return FINAL in display_of(server, n)

            await server.wait_until(is_final, timeout=SLOW)
            states = reported(server, agent_name, name)
            failures = [s for s in states if s.startswith("Pending(StartingFailed)/")]
            assert len(failures) == 2, (name, states)  # reported once, then final: never retried
            assert text in failures[0], (name, states)
            assert failures[1].endswith("/No more retries."), (name, states)
        # An unknown runtime: the agent reports nothing for it (the server keeps its Pending(Initial)).
        assert reported(server, agent_name, "odd-runtime") == []
        assert display_of(server, "good") == ["Running(Ok)/"]
        containers = podman_env.containers(f"agent={agent_name}")
        assert [str(c["Labels"]["name"]).split(".")[0] for c in containers] == ["good"]  # type: ignore[index]


def _to_server(**kwargs: object) -> bytes:
    return frame(pb.ToServer(**kwargs).SerializeToString())  # type: ignore[arg-type]


def _request(request_id: str) -> bytes:
    request = pb.Request(requestId=request_id, completeStateRequest=pb.CompleteStateRequest())
    return _to_server(request=request)


async def test_workloads_abusing_the_control_interface_are_contained(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None
) -> None:
    """Garbage, an absurd length, a cut frame, agent-only messages and a
    flood of requests that are never read; only valid requests are forwarded, the agent lives on."""
    blobs = tmp_path / "blobs"
    blobs.mkdir(mode=0o755)
    state = pb.WorkloadState(
        instanceName=pb.WorkloadInstanceName(workloadName="good", agentName=agent_name, id="x"),
        executionState=pb.ExecutionState(additionalInfo="spoofed", failed=pb.FAILED_UNKNOWN),
    )
    contents = {
        "garbage": os.urandom(4096),
        "huge-length": b"\xff" * 9 + b"\x01" + b"a" * 100,
        "cut-frame": _request("cut" * 20)[:30],
        "hello": _to_server(agentHello=pb.AgentHello(agentName="evil")) + _request("after-hello"),
        "goodbye": _to_server(goodbye=pb.Goodbye()) + _request("after-goodbye"),
        "state": _to_server(updateWorkloadState=pb.UpdateWorkloadState(workloadStates=[state]))
        + _request("after-state"),
        "flood": _request("flood") * 3000,
    }
    for name, data in contents.items():
        (blobs / name).write_bytes(data)
        (blobs / name).chmod(0o644)

    def writer(name: str, then: str = "sleep 1000") -> pb.Workload:
        script = f"trap 'exit 0' TERM; cat /b/{name} > {CI}/output; {then} & wait"
        options = f"commandOptions: ['-v', '{blobs}:/b:ro']"
        config = f"image: {IMAGE}\n{options}\ncommandArgs: ['sh', '-c', {script!r}]\n"
        return podman(agent_name, config)

    workloads = {name: writer(name) for name in contents}
    workloads["cut-frame"] = writer("cut-frame", then="true")
    workloads["good"] = podman(agent_name, GOOD)
    async with running_agent(podman_env, agent_name, tmp_path, workloads) as server:

        def request_ids() -> list[str]:
            received = server.received.get(agent_name, [])
            ids = [m.request.requestId for m in received if m.HasField("request")]
            return [i for i in ids if not i.startswith(AGENT_REQUEST_PREFIX)]

        expected = {"hello@after-hello", "goodbye@after-goodbye", "state@after-state"}
        await server.wait_until(
            lambda: expected <= set(request_ids()) and request_ids().count("flood@flood") == 3000,
            timeout=SLOW,
        )
        await server.wait_for_state("cut-frame", "Succeeded(Ok)", timeout=SLOW)
        for name in workloads.keys() - {"cut-frame"}:
            await server.wait_for_state(name, "Running(Ok)", timeout=SLOW)
        assert set(request_ids()) == expected | {"flood@flood"}
        kinds = [m.WhichOneof("ToServerEnum") for m in server.received[agent_name]]
        assert kinds.count("agentHello") == 1 and "goodbye" not in kinds
        assert "spoofed" not in str(server.received[agent_name])
        # the agent still works for everyone: a new workload starts
        added = pb.CompleteState(
            desiredState=pb.State(apiVersion="v0.1", workloads={"late": podman(agent_name, GOOD)})
        )
        await server.set_state(added, ["desiredState.workloads.late"])
        await server.wait_for_state("late", "Running(Ok)", timeout=SLOW)


async def test_request_the_server_cannot_convert_never_leaves_the_agent(
    podman_env: PodmanEnv,
    agent_name: str,
    tmp_path: Path,
    cleanup: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An UpdateStateRequest with restartPolicy 7 would make the v0.3.1 server drop the whole agent
    (the server double does the same): it is answered in the agent, and the valid request behind
    it goes on to the server over the same, still open connection."""
    blobs = tmp_path / "blobs"
    blobs.mkdir(mode=0o755)
    bad = pb.Workload(agent=agent_name, runtime="podman", restartPolicy=7)  # type: ignore[arg-type]
    update = pb.UpdateStateRequest(
        newState=pb.CompleteState(desiredState=pb.State(apiVersion="v0.1", workloads={"bad": bad})),
        updateMask=["desiredState.workloads.bad"],
    )
    data = _to_server(request=pb.Request(requestId="u1", updateStateRequest=update)) + _request("after")
    (blobs / "invalid").write_bytes(data)
    (blobs / "invalid").chmod(0o644)
    script = f"trap 'exit 0' TERM; cat /b/invalid > {CI}/output; sleep 1000 & wait"
    options = f"commandOptions: ['-v', '{blobs}:/b:ro']"
    config = f"image: {IMAGE}\n{options}\ncommandArgs: ['sh', '-c', {script!r}]\n"
    async with running_agent(
        podman_env, agent_name, tmp_path, {"invalid": podman(agent_name, config)}
    ) as server:

        def request_ids() -> list[str]:
            received = server.received.get(agent_name, [])
            return [m.request.requestId for m in received if m.HasField("request")]

        await server.wait_until(lambda: "invalid@after" in request_ids(), timeout=SLOW)
        assert "invalid@u1" not in request_ids()
        assert server.disconnects.get(agent_name, 0) == 0
        assert agent_name in server.connected_agents
        assert "workload invalid: request 'u1' not sent to the server" in caplog.text


async def test_podman_outage_errors_say_podman_is_unreachable(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None
) -> None:
    """Review finding: podman-py wraps socket errors as "GET operation failed", which was all the
    operator (and the server's additionalInfo) got; the text now names the cause."""
    runtime = await PodmanRuntime.open(agent_name, tmp_path, podman_env.socket_url)
    instance = InstanceName("outage", agent_name, "1")
    spec = WorkloadSpec(instance=instance, runtime="podman", runtime_config=f"image: {IMAGE}\n")
    podman_env.stop_service()
    try:
        with pytest.raises(RuntimeCreateFailed, match="cannot reach Podman"):
            await runtime.create(CreateRequest(spec))
        with pytest.raises(RuntimeDeleteFailed, match="cannot reach Podman"):
            await runtime.delete(instance)
    finally:
        podman_env.start_service()
        await runtime.close()


async def test_sigkilled_agent_adopts_its_running_workloads(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None
) -> None:
    """behaviour "Resume and adoption": the real process killed with SIGKILL (no clean-up at all) and started
    again
    adopts the running container (same id, never restarted) and reports it Running again."""
    state = pb.State(apiVersion="v0.1", workloads={"keep": podman(agent_name, GOOD)})
    server = ServerDouble(state)
    await server.start()
    command = [
        sys.executable, "-m", "ankaios_agent", "--name", agent_name, "--server", server.address,
        "--run-folder", str(tmp_path), "--podman-socket", podman_env.socket_url,
    ]  # fmt: skip
    log_file = (tmp_path / "agent.log").open("wb")
    process = await asyncio.create_subprocess_exec(*command, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        await server.wait_for_state("keep", "Running(Ok)", timeout=SLOW)
        before = podman_env.container_ids(f"agent={agent_name}")
        process.kill()
        await process.wait()
        await server.wait_for_state("keep", "AgentDisconnected", timeout=SLOW)
        process = await asyncio.create_subprocess_exec(*command, stdout=log_file, stderr=subprocess.STDOUT)
        await server.wait_for_state("keep", "Running(Ok)", timeout=SLOW)
        assert podman_env.container_ids(f"agent={agent_name}") == before
        container = podman_env.inspect(before[0])
        assert container["RestartCount"] == 0
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        log_file.close()
        await server.stop()
    assert b"Traceback" not in (tmp_path / "agent.log").read_bytes()


async def test_workload_deleted_while_podman_is_down_is_removed_once_it_is_back(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None
) -> None:
    """Review finding: a delete that failed because Podman was unreachable was never retried, so the
    container kept running with no owner until the next server reconnect; DeleteFailed is still
    reported (behaviour "Workload loop: delete"), then the delete is retried until the container is
    gone (Removed)."""
    workloads = {"gone": podman(agent_name, GOOD), "stay": podman(agent_name, GOOD)}
    async with running_agent(podman_env, agent_name, tmp_path, workloads) as server:
        for name in workloads:
            await server.wait_for_state(name, "Running(Ok)", timeout=SLOW)
        podman_env.stop_service()
        try:
            await server.delete_workload("gone")
            await server.wait_for_state("gone", "Stopping(DeleteFailed)", timeout=SLOW)
            assert "cannot reach Podman" in display_of(server, "gone")[0]
        finally:
            podman_env.start_service()
        await server.wait_until(lambda: not server.state_of("gone"), timeout=SLOW)
        containers = podman_env.containers(f"agent={agent_name}")
        assert [str(c["Labels"]["name"]).split(".")[0] for c in containers] == ["stay"]  # type: ignore[index]
        await server.wait_for_state("stay", "Running(Ok)", timeout=SLOW)


async def test_env_file_naming_a_fifo_fails_that_workload_and_blocks_nothing(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None
) -> None:
    """An --env-file that is a FIFO nobody writes to would hang a blocking open for ever; it is
    refused as not a regular file while the other workload starts and the server stream lives
    (the server double shares the agent's event loop, so a blocked loop would stall both)."""
    fifo = tmp_path / "env.fifo"
    os.mkfifo(fifo)
    trap = f"image: {IMAGE}\ncommandOptions: ['--env-file', '{fifo}']\ncommandArgs: ['true']\n"
    workloads = {"fifo-env": podman(agent_name, trap), "good": podman(agent_name, GOOD)}
    async with running_agent(podman_env, agent_name, tmp_path / "run", workloads) as server:
        await server.wait_for_state("good", "Running(Ok)", timeout=SLOW)
        await server.wait_until(lambda: FINAL in display_of(server, "fifo-env"), timeout=SLOW)
        failures = [s for s in reported(server, agent_name, "fifo-env") if "StartingFailed" in s]
        assert failures[0] == (
            f"Pending(StartingFailed)/podman option '--env-file': env file '{fifo}' is not a regular file"
        )
        assert display_of(server, "good") == ["Running(Ok)/"]


@pytest.mark.root  # rootless Podman on cgroup v1 cannot pause (no freezer delegation)
async def test_deleting_a_paused_workload_reports_removed(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, cleanup: None
) -> None:
    """Podman refuses to stop a paused container; the delete still completes (forced removal), the
    server gets Removed and no container is left."""
    workloads = {"frozen": podman(agent_name, GOOD)}
    async with running_agent(podman_env, agent_name, tmp_path, workloads) as server:
        await server.wait_for_state("frozen", "Running(Ok)", timeout=SLOW)
        podman_env.podman("pause", *podman_env.container_ids(f"agent={agent_name}"))
        await server.delete_workload("frozen")
        await server.wait_until(lambda: not server.state_of("frozen"), timeout=SLOW)
        assert not any(s.startswith("Stopping(DeleteFailed)") for s in reported(server, agent_name, "frozen"))
        assert podman_env.containers(f"agent={agent_name}") == []
