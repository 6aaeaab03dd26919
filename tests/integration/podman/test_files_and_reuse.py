"""The podman runtime's file mounts and its start of an ended container, against real Podman."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from ankaios_agent.agent.errors import RuntimeCreateFailed, WorkloadConfigError
from ankaios_agent.agent.model import ExecutionState, InstanceName, TextContent, WorkloadFile, WorkloadSpec
from ankaios_agent.agent.ports import CreateRequest
from ankaios_agent.agent.workload_file_writer import FileMount
from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman_kube import PodmanKubeRuntime
from ankaios_agent.runtimes.podman_kube.runtime import FILES_NOT_SUPPORTED
from tests.integration.podman.conftest import Harness
from tests.support.podman_env import PodmanEnv

pytestmark = pytest.mark.podman


async def test_a_file_is_seen_read_only_at_its_mount_point(harness: Harness, tmp_path: Path) -> None:
    source = tmp_path / "config.json"
    source.write_text("hello-config\n")
    script = (
        "grep -qx hello-config /etc/app/config.json || exit 3; "
        "if echo changed > /etc/app/config.json; then exit 4; fi; exit 0"
    )
    instance = harness.instance()
    request = CreateRequest(
        harness.spec(instance, ["sh", "-c", script]),
        file_mounts=(FileMount(source, "/etc/app/config.json"),),
    )
    cid = await harness.runtime.create(request)
    await harness.recorder.wait_for(
        lambda c: c.instance == instance and c.state.state.kind.value in ("Succeeded", "Failed")
    )
    assert harness.recorder.states_of(instance)[-1] == ExecutionState.succeeded()
    mounts = harness.env.inspect(cid)["Mounts"]
    assert isinstance(mounts, list)
    [mount] = [m for m in mounts if m["Destination"] == "/etc/app/config.json"]
    assert mount["Source"] == str(source) and mount["RW"] is False
    assert source.read_text() == "hello-config\n"


async def test_a_reuse_id_starts_the_same_container_again(harness: Harness, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    instance = harness.instance()
    spec = harness.spec(instance, ["sh", "-c", "echo run >> /out/log"], ["-v", f"{out}:/out"])
    cid = await harness.runtime.create(CreateRequest(spec))
    await harness.recorder.wait_state(instance, ExecutionState.succeeded())
    again = await harness.runtime.create(CreateRequest(spec, reuse_id=cid))
    assert again == cid
    await harness.recorder.wait_for(
        lambda c: (
            c.instance == instance
            and c.state == ExecutionState.succeeded()
            and (out / "log").read_text() == "run\nrun\n"
        )
    )
    assert [str(c["Id"]) for c in harness.env.containers(f"name={instance}")] == [cid]


async def test_a_failed_start_removes_the_container_and_is_retryable(harness: Harness) -> None:
    instance = harness.instance()
    spec = harness.spec(instance, ["true"])
    cid = await harness.runtime.create(CreateRequest(spec))
    await harness.recorder.wait_state(instance, ExecutionState.succeeded())
    harness.env.podman("rm", "--force", cid)
    with pytest.raises(RuntimeCreateFailed):
        await harness.runtime.create(CreateRequest(spec, reuse_id=cid))
    assert harness.env.containers(f"name={instance}") == []
    fresh = await harness.runtime.create(CreateRequest(spec))
    assert fresh != cid


async def test_kube_refuses_workload_files(podman_env: PodmanEnv) -> None:
    agent = f"itest{uuid.uuid4().hex[:8]}"
    runtime = PodmanKubeRuntime(PodmanConnection(podman_env.socket_url), agent)
    instance = InstanceName("kf", agent, "1")
    spec = WorkloadSpec(
        instance,
        "podman-kube",
        "manifest: 'kind: Pod'",
        files=(WorkloadFile("/etc/x", TextContent("x")),),
    )
    with pytest.raises(WorkloadConfigError) as raised:
        await runtime.create(CreateRequest(spec))
    assert raised.value.reason == FILES_NOT_SUPPORTED
    podman_env.remove_by_label(f"agent={agent}")
