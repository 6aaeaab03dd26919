"""End to end: a real busybox container talks through the FIFOs that ControlInterfaceHost made."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

import pytest

from ankaios_agent.agent.model import CompleteStateRequest, InstanceName, Request, Response
from ankaios_agent.control_interface import ControlInterfaceHost
from ankaios_agent.control_interface.framing import FrameDecoder, frame
from ankaios_agent.proto import ankaios_pb2 as pb
from tests.support.podman_env import PodmanEnv

pytestmark = pytest.mark.podman

MOUNT = "/run/ankaios/control_interface"
LABEL = "ank-test=control-interface"


def octal_escaped(data: bytes) -> str:
    """Bytes as a busybox ``printf`` format that reproduces them exactly."""
    return "".join(f"\\{byte:03o}" for byte in data)


async def test_container_request_reaches_server_and_response_reaches_container(
    podman_env: PodmanEnv, tmp_path: Path
) -> None:
    """A workload writes a CompleteStateRequest into output and reads its answer from input."""
    suffix = secrets.token_hex(4)
    workload = f"ci-e2e-{suffix}"
    instance = InstanceName(workload=workload, agent=f"agent-{suffix}", id=secrets.token_hex(32))
    forwarded: asyncio.Queue[Request] = asyncio.Queue()
    cis = ControlInterfaceHost(tmp_path / f"agent-{suffix}_io", forwarded.put_nowait)
    folder = await cis.ensure(instance)

    request = pb.Request(
        requestId="req-1", completeStateRequest=pb.CompleteStateRequest(fieldMask=["desiredState"])
    )
    request_frame = frame(pb.ToServer(request=request).SerializeToString())
    answer = pb.Response(
        completeState=pb.CompleteState(
            desiredState=pb.State(apiVersion="v0.1", workloads={"seen": pb.Workload()})
        )
    )
    expected = pb.FromServer(response=pb.Response(requestId="req-1", completeState=answer.completeState))
    expected_len = len(frame(expected.SerializeToString()))
    # Start the reader of input first (as SDKs do), then write the request, then wait for the answer.
    script = (
        f"cd {MOUNT} && "
        f"(head -c {expected_len} input | od -An -v -tx1 > /tmp/answer) & "
        f"printf '{octal_escaped(request_frame)}' > {MOUNT}/output && wait && cat /tmp/answer"
    )
    name = f"ank-ctl-e2e-{suffix}"
    try:
        await asyncio.to_thread(
            podman_env.podman,
            "run", "--detach", "--name", name, "--label", LABEL, "--label", f"ank-test-run={suffix}",
            "--network", "none", "--volume", f"{folder}:{MOUNT}",
            podman_env.image, "sh", "-c", script,
        )  # fmt: skip
        received = await asyncio.wait_for(forwarded.get(), timeout=60)
        assert received.request_id == f"{workload}@req-1"
        assert received.content == CompleteStateRequest(("desiredState",))

        cis.route(Response(request_id=received.request_id, body=answer.SerializeToString()))
        exit_code = await asyncio.to_thread(podman_env.podman, "wait", name)
        logs = await asyncio.to_thread(podman_env.podman, "logs", name)
        assert exit_code.stdout.strip() == "0", logs.stderr
        arrived = bytes.fromhex(logs.stdout.replace("\n", " "))
        (payload,) = _frames(arrived)
        message = pb.FromServer.FromString(payload)
        assert message.response.requestId == "req-1"
        assert list(message.response.completeState.desiredState.workloads) == ["seen"]
    finally:
        await asyncio.to_thread(podman_env.remove_by_label, f"ank-test-run={suffix}")
        await cis.remove(workload)
    assert not folder.exists()


def _frames(data: bytes) -> list[bytes]:
    return FrameDecoder().feed(data)


async def test_container_replacing_its_fifo_by_a_symlink_loses_only_its_own_control_interface(
    podman_env: PodmanEnv, tmp_path: Path
) -> None:
    """A workload that is root in its container swaps its output FIFO for a symlink to another
    workload's FIFO on the host: the agent does not follow it, closes the attacker's control
    interface, and the victim is served as before."""
    suffix = secrets.token_hex(4)
    agent = f"agent-{suffix}"
    forwarded: asyncio.Queue[Request] = asyncio.Queue()
    cis = ControlInterfaceHost(tmp_path / f"{agent}_io", forwarded.put_nowait)
    victim = await cis.ensure(InstanceName("victim", agent, secrets.token_hex(32)))
    attacker = await cis.ensure(InstanceName("attacker", agent, secrets.token_hex(32)))
    # Hold output open, replace the name, then close: the relay sees EOF and reopens the name.
    script = f"cd {MOUNT} && exec 3>output && rm output && ln -s {victim}/output output && exec 3>&-"
    name = f"ank-ctl-symlink-{suffix}"
    try:
        done = await asyncio.to_thread(
            podman_env.podman,
            "run", "--name", name, "--label", LABEL, "--label", f"ank-test-run={suffix}",
            "--network", "none", "--volume", f"{attacker}:{MOUNT}",
            podman_env.image, "sh", "-c", script,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        counters = cis.counters("attacker")
        assert counters is not None
        while counters.closed_replaced_fifo == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        assert (attacker / "output").is_symlink()
        writer = os.open(victim / "output", os.O_WRONLY | os.O_NONBLOCK)
        request = pb.Request(requestId="v1", completeStateRequest=pb.CompleteStateRequest())
        os.write(writer, frame(pb.ToServer(request=request).SerializeToString()))
        received = await asyncio.wait_for(forwarded.get(), timeout=10)
        assert received.request_id == "victim@v1"
        os.close(writer)
        victim_counters = cis.counters("victim")
        assert victim_counters is not None and victim_counters.closed_replaced_fifo == 0
    finally:
        await asyncio.to_thread(podman_env.remove_by_label, f"ank-test-run={suffix}")
        await cis.remove("attacker")
        await cis.remove("victim")
