"""Workloads abusing the v1.0.1 control interface from real containers are contained.

Each abuser is a busybox container that writes prepared bytes into its
``output``: no hello, garbage before the hello, a wrong protocol version, a
flood of requests it may send, and requests beyond its rules. Beside them a
well-behaved workload says hello, asks for the state and reads its answers. The
host under test is this agent's control-interface host; the test answers
forwarded requests like the server would.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

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
from ankaios_agent.control_interface.framing import frame
from ankaios_agent.proto import ank_base_pb2 as base
from ankaios_agent.proto import control_api_pb2 as ctl
from tests.integration.fifo_client import wait_until
from tests.support.podman_env import PodmanEnv

pytestmark = pytest.mark.podman

MOUNT = "/run/ankaios/control_interface"
READ_WORKLOADS = AccessRules(allow=(StateRule(Operation.READ, ("desiredState.workloads",)),))
FLOOD = 3000
BEYOND = 200


def hello(version: str = "1.0.0") -> bytes:
    return frame(ctl.ToAnkaios(hello=ctl.Hello(protocolVersion=version)).SerializeToString())


def get_state(request_id: str) -> bytes:
    request = base.Request(
        requestId=request_id,
        completeStateRequest=base.CompleteStateRequest(fieldMask=["desiredState.workloads"]),
    )
    return frame(ctl.ToAnkaios(request=request).SerializeToString())


def update_state(request_id: str) -> bytes:
    inner = base.UpdateStateRequest(updateMask=["desiredState.workloads.evil"])
    inner.newState.desiredState.apiVersion = "v1"
    request = base.Request(requestId=request_id, updateStateRequest=inner)
    return frame(ctl.ToAnkaios(request=request).SerializeToString())


ANSWER = base.Response(
    completeStateResponse=base.CompleteStateResponse(
        completeState=base.CompleteState(desiredState=base.State(apiVersion="v1"))
    )
).SerializeToString()

ABUSERS = {
    "no-hello": get_state("before-hello"),
    "garbage": b"\xff" * 12 + os.urandom(2048) + hello(),
    "wrong-version": hello("2.0.0") + get_state("after-wrong-version"),
    "flood": hello() + get_state("flood") * FLOOD,
    "beyond-rules": hello() + update_state("beyond") * BEYOND + get_state("within"),
}


def accepted_frame() -> bytes:
    return frame(ctl.FromAnkaios(controlInterfaceAccepted=ctl.ControlInterfaceAccepted()).SerializeToString())


def answer_frame(request_id: str) -> bytes:
    response = base.Response.FromString(ANSWER)
    response.requestId = request_id
    return frame(ctl.FromAnkaios(response=response).SerializeToString())


async def prepare(host: ControlInterfaceHost, names: list[str]) -> dict[str, Path]:
    folders: dict[str, Path] = {}
    for name in names:
        spec = WorkloadSpec(
            InstanceName(name, "agent", secrets.token_hex(32)),
            "podman",
            "",
            control_interface_access=READ_WORKLOADS,
        )
        folder = await host.ensure_for(spec)
        assert folder is not None
        folders[name] = folder
    return folders


async def test_abusive_workloads_leave_the_agent_and_the_others_unaffected(
    podman_env: PodmanEnv, tmp_path: Path
) -> None:
    suffix = secrets.token_hex(4)
    label = f"ank-test-run={suffix}"
    forwarded: list[Request] = []
    host: ControlInterfaceHost

    def server(request: Request) -> None:
        forwarded.append(request)
        host.route(Response(request.request_id, ANSWER))

    host = ControlInterfaceHost(tmp_path / "agent_io", server, dialect=Dialect.V1)
    blobs = tmp_path / "blobs"
    blobs.mkdir(mode=0o755)
    folders = await prepare(host, [*ABUSERS, "good", "late"])
    for name, data in ABUSERS.items():
        (blobs / name).write_bytes(data)
        (blobs / name).chmod(0o644)

    good_request = hello() + get_state("good-1")
    answer_len = len(accepted_frame()) + len(answer_frame("good-1"))
    (blobs / "good").write_bytes(good_request)
    (blobs / "good").chmod(0o644)

    def run(name: str, script: str) -> None:
        podman_env.podman(
            "run", "--detach", "--name", f"ank-v1-abuse-{name}-{suffix}", "--label", label,
            "--network", "none", "--volume", f"{folders[name]}:{MOUNT}", "--volume", f"{blobs}:/b:ro",
            podman_env.image, "sh", "-c", script,
        )  # fmt: skip

    try:
        for name in ABUSERS:
            # Abusers never read their answers; they keep output open so the session stays as it is.
            await asyncio.to_thread(
                run, name, f"trap 'exit 0' TERM; exec 3>{MOUNT}/output; cat /b/{name} >&3; sleep 1000 & wait"
            )
        await asyncio.to_thread(
            run,
            "good",
            f"cd {MOUNT} && exec 3>output && cat /b/good >&3 && head -c {answer_len} input | od -An -v -tx1",
        )
        exit_code = await asyncio.to_thread(podman_env.podman, "wait", f"ank-v1-abuse-good-{suffix}")
        logs = await asyncio.to_thread(podman_env.podman, "logs", f"ank-v1-abuse-good-{suffix}")
        assert exit_code.stdout.strip() == "0", logs.stderr
        assert bytes.fromhex(logs.stdout.replace("\n", " ")) == accepted_frame() + answer_frame("good-1")

        def ids() -> list[str]:
            return [r.request_id for r in forwarded]

        await wait_until(lambda: ids().count("flood@flood") == FLOOD and "beyond-rules@within" in ids())
        assert set(ids()) == {"good@good-1", "flood@flood", "beyond-rules@within"}

        def counters(name: str):
            found = host.counters(name)
            assert found is not None
            return found

        for name in ("no-hello", "garbage", "wrong-version"):
            assert counters(name).handshakes_refused == 1, name
            assert counters(name).handshakes_accepted == 0, name
        await wait_until(lambda: counters("beyond-rules").requests_answered == BEYOND)
        assert counters("flood").requests_forwarded == FLOOD
        # The flood's answers are never read: they are dropped, not piled up without bound.
        assert counters("flood").responses_dropped_buffer_full > 0

        # The host still serves a newcomer after all that.
        late = WorkloadSpec(
            InstanceName("late", "agent", "f" * 64), "podman", "", control_interface_access=READ_WORKLOADS
        )
        folders["late"] = await host.ensure_for(late)  # type: ignore[assignment]
        (blobs / "late").write_bytes(hello() + get_state("late-1"))
        (blobs / "late").chmod(0o644)
        await asyncio.to_thread(run, "late", f"exec 3>{MOUNT}/output; cat /b/late >&3; sleep 2")
        await wait_until(lambda: "late@late-1" in ids())
    finally:
        await asyncio.to_thread(podman_env.remove_by_label, label)
        await host.close()
