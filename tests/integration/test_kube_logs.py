"""Logs of podman-kube workloads: the workload containers of the pods, never the infra container."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from ankaios_agent.agent.errors import RuntimeLogsFailed
from ankaios_agent.agent.model import InstanceName, State
from ankaios_agent.agent.ports import CreateRequest, LogOptions
from tests.integration.test_kube_runtime import WAIT_S, Kube, is_, kube, kube_spec, pod_manifest, watching

__all__ = ["kube"]

pytestmark = pytest.mark.podman


async def test_the_log_merges_every_container_of_the_pod(kube: Kube) -> None:
    runtime = kube.runtime()
    manifest = pod_manifest(
        kube.pod_name("logs"),
        kube.env.image,
        ("one", "echo from-one; echo one-err >&2"),
        ("two", "echo from-two"),
    )
    spec = kube_spec(kube.agent, "logs", manifest)
    async with watching(runtime) as watch:
        await runtime.create(CreateRequest(spec))
        await watch.wait_for(spec.instance, is_(State.SUCCEEDED_OK))
        lines: list[str] = []
        async with (
            asyncio.timeout(WAIT_S),
            contextlib.aclosing(runtime.logs(spec.instance, LogOptions())) as logs,
        ):
            async for batch in logs:
                lines.extend(batch)
        assert sorted(lines) == ["from-one", "from-two", "one-err"]
        await runtime.delete(spec.instance)


async def test_a_kube_workload_that_was_never_played_is_a_logs_error(kube: Kube) -> None:
    runtime = kube.runtime()
    with pytest.raises(RuntimeLogsFailed, match="no containers"):
        async with contextlib.aclosing(
            runtime.logs(InstanceName("never", kube.agent, "1"), LogOptions())
        ) as logs:
            async for _ in logs:
                pass
