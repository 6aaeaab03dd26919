"""End to end: the agent IMAGE against the host's Podman and the server double (README.md "Two commands on a
fresh Debian 12 machine").

Runs only when ``ANK_E2E_IMAGE`` names a built agent image (``.ci/run`` builds
``localhost/ank-agent:ci`` and sets it). The deployment is the documented one
(deploy/README.md): the agent container uses the host network, the host Podman socket is
bind-mounted at /run/podman/podman.sock, and the run folder is bind-mounted at the same
path inside and outside, so host Podman can mount each workload's FIFO folder. The
container runs as the image's unprivileged user; the socket is made group-accessible to
that user's group, which is the documented way to run it non-root.

One workload probes the control interface from inside its container (behaviour "Control interface:
layout"): it writes
a length-delimited ``ToServer{request{completeStateRequest}}`` to ``output`` and dumps the
``FromServer`` it reads back from ``input`` as hex on its stdout, which the test decodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from ankaios_agent.control_interface.framing import frame
from ankaios_agent.proto import ankaios_pb2 as pb
from tests.server_double.server import ServerDouble
from tests.support.podman_env import IMAGE as BUSYBOX_IMAGE
from tests.support.podman_env import ensure_image, start_service, write_containers_conf

IMAGE = os.environ.get("ANK_E2E_IMAGE", "")

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not IMAGE, reason="ANK_E2E_IMAGE is not set (.ci/run builds the image and sets it)"),
]

WORKLOAD = "ci_probe"
REQUEST_ID = "e2e-probe"
MARKER = "CI-RESPONSE"
# Generous: the first start pulls nothing but creates the agent's venv-backed process,
# the connection back-off and the workload create all happen in sequence.
RUNNING_TIMEOUT_S = 90.0


def _podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check, timeout=timeout)


async def _apodman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    # The server double lives on this event loop: never block it with a subprocess.
    return await asyncio.to_thread(_podman, *args, check=check)


def _probe_script() -> str:
    """busybox sh: send one request, read one length-delimited reply, print it as hex, idle."""
    request = pb.ToServer(
        request=pb.Request(
            requestId=REQUEST_ID,
            completeStateRequest=pb.CompleteStateRequest(fieldMask=["desiredState.workloads"]),
        )
    )
    octal = "".join(f"\\{b:03o}" for b in frame(request.SerializeToString()))
    return (
        "set -e; ci=/run/ankaios/control_interface; "
        # read-write open never blocks on a FIFO, whenever the agent opens its end
        'exec 3<> "$ci/input"; '
        f"printf '{octal}' > \"$ci/output\"; "
        "len=0; shift=0; "
        "while :; do "
        "b=$(dd bs=1 count=1 <&3 2>/dev/null | od -An -tu1 | tr -d ' \\n'); "
        "len=$((len | ((b & 127) << shift))); "
        "[ $((b & 128)) -eq 0 ] && break; "
        "shift=$((shift + 7)); "
        "done; "
        f"echo \"{MARKER} $(dd bs=1 count=$len <&3 2>/dev/null | od -An -v -tx1 | tr -d ' \\n')\"; "
        # PID 1 gets no default SIGTERM action: trap it so a delete needs no stop timeout.
        "trap 'exit 0' TERM; while :; do sleep 1; done"
    )


@dataclass
class HostPodman:
    """A private rootful Podman service whose socket the agent container gets."""

    socket_path: Path
    run_folder: Path


def _image_user(image: str) -> tuple[int, int]:
    user = _podman("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()
    uid, _, gid = user.partition(":")
    if not uid.isdigit():
        raise AssertionError(f"{image} must set a numeric USER uid:gid, has {user!r}")
    return int(uid), int(gid or uid)


@pytest.fixture
def host_podman() -> Iterator[HostPodman]:
    # Short path: unix socket paths are limited to 108 bytes. Also the run folder: it is
    # bind-mounted at the same path in the agent container and the workloads.
    tmp = Path(tempfile.mkdtemp(prefix="ank-e2e-"))
    tmp.chmod(0o755)
    old_conf = os.environ.get("CONTAINERS_CONF")
    os.environ["CONTAINERS_CONF"] = str(write_containers_conf(tmp))
    uid, gid = _image_user(IMAGE)
    run_folder = tmp / "run"
    run_folder.mkdir(mode=0o700)
    os.chown(run_folder, uid, gid)
    service = start_service(tmp)
    socket_path = service.socket_path
    try:
        # The documented non-root set-up: the socket group-accessible to the agent's group.
        os.chown(socket_path, 0, gid)
        socket_path.chmod(0o660)
        ensure_image()
        yield HostPodman(socket_path=socket_path, run_folder=run_folder)
    finally:
        service.stop()
        if old_conf is None:
            os.environ.pop("CONTAINERS_CONF", None)
        else:
            os.environ["CONTAINERS_CONF"] = old_conf
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
async def server(agent_name: str) -> AsyncIterator[ServerDouble]:
    runtime_config = yaml.safe_dump(
        {"image": BUSYBOX_IMAGE, "commandArgs": ["sh", "-c", _probe_script()]}, width=10_000
    )
    desired = pb.State(
        apiVersion="v0.1",
        workloads={
            WORKLOAD: pb.Workload(
                agent=agent_name, runtime="podman", restartPolicy=pb.NEVER, runtimeConfig=runtime_config
            )
        },
    )
    double = ServerDouble(desired)
    await double.start()
    try:
        yield double
    finally:
        await double.stop()


@pytest.fixture
def agent_name() -> str:
    return f"e2e_{uuid.uuid4().hex[:10]}"


async def _logs(container: str) -> str:
    result = await _apodman("logs", container, check=False)
    return result.stdout + result.stderr


async def _workload_containers(agent_name: str) -> list[str]:
    out = (await _apodman("ps", "-a", "-q", "--filter", f"label=agent={agent_name}")).stdout
    return out.split()


async def _probe_reply(agent_name: str) -> pb.FromServer:
    """The probe's decoded reply, polled from the workload's log (callers bound the wait)."""
    while True:
        for container in await _workload_containers(agent_name):
            for line in (await _logs(container)).splitlines():
                if line.startswith(MARKER + " "):
                    reply = pb.FromServer()
                    reply.ParseFromString(bytes.fromhex(line.split(" ", 1)[1]))
                    return reply
        await asyncio.sleep(0.2)


async def _containers_gone(agent_name: str) -> None:
    while True:
        if not await _workload_containers(agent_name):
            return
        await asyncio.sleep(0.2)


class AgentExited(Exception):
    """The agent container stopped before its workload was running."""


async def _agent_exited(container: str) -> None:
    while True:
        state = await _apodman("inspect", "--format", "{{.State.Running}}", container, check=False)
        if state.stdout.strip() != "true":
            return
        await asyncio.sleep(0.5)


async def _running_while_agent_lives(server: ServerDouble, agent_name: str, container: str) -> None:
    """Wait for Running(Ok), but fail at once (not after the timeout) when the agent dies."""
    running = asyncio.create_task(
        server.wait_for_state(WORKLOAD, "Running(Ok)", agent_name, timeout=RUNNING_TIMEOUT_S)
    )
    exited = asyncio.create_task(_agent_exited(container))
    try:
        done, _ = await asyncio.wait({running, exited}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        running.cancel()
        exited.cancel()
    if running in done:
        running.result()  # TimeoutError when the state never came
        return
    raise AgentExited(container)


async def test_agent_image_runs_workload_and_relays_control_interface(
    host_podman: HostPodman, server: ServerDouble, agent_name: str
) -> None:
    """README.md "Two commands on a fresh Debian 12 machine": image + host Podman + server double →
    Running(Ok) and a control-interface round trip."""
    agent_container = f"ank-e2e-agent-{agent_name}"
    run = str(host_podman.run_folder)
    try:
        await _apodman(
            "run", "--detach", "--name", agent_container, "--label", f"ank-e2e={agent_name}",
            "--network", "host",
            "--volume", f"{host_podman.socket_path}:/run/podman/podman.sock",
            "--volume", f"{run}:{run}",
            IMAGE, "--name", agent_name, "--server", server.address, "--run-folder", run,
        )  # fmt: skip
        try:
            await _running_while_agent_lives(server, agent_name, agent_container)
            async with asyncio.timeout(30):
                reply = await _probe_reply(agent_name)
        except (TimeoutError, AgentExited):
            workload_logs = [await _logs(c) for c in await _workload_containers(agent_name)]
            pytest.fail(
                f"server states: {server.states}\nagent container logs:\n{await _logs(agent_container)}\n"
                f"workload logs:\n{workload_logs}"
            )

        # The agent strips its "<workload>@" prefix on the way back (behaviour "Control interface: requests
        # and responses").
        assert reply.WhichOneof("FromServerEnum") == "response"
        assert reply.response.requestId == REQUEST_ID
        assert WORKLOAD in reply.response.completeState.desiredState.workloads

        # Deleting the workload removes its container; SIGTERM ends the agent with 0.
        await server.delete_workload(WORKLOAD)
        async with asyncio.timeout(60):
            await _containers_gone(agent_name)
        await _apodman("stop", "--time", "10", agent_container)
        exit_code = (await _apodman("inspect", "--format", "{{.State.ExitCode}}", agent_container)).stdout
        assert exit_code.strip() == "0", await _logs(agent_container)
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            await _apodman("rm", "--force", "--time", "0", agent_container, check=False)
            leftovers = await _workload_containers(agent_name)
            if leftovers:
                await _apodman("rm", "--force", "--time", "0", *leftovers, check=False)
