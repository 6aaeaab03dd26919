"""Per-test PodmanRuntime on the session's private Podman, with an event recorder."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from ankaios_agent.agent.model import ExecutionState, InstanceName, WorkloadSpec
from ankaios_agent.agent.ports import StateChange
from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman.monitor import MonitorTimings
from ankaios_agent.runtimes.podman.runtime import PodmanRuntime, PodmanTimings
from tests.support.podman_env import PodmanEnv

WAIT_S = 30.0  # generous: only bounds a hung test, never asserts speed


@dataclass
class Recorder:
    """Collects the runtime's state changes; tests wait for the ones they expect."""

    changes: list[StateChange] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, change: StateChange) -> None:
        self.changes.append(change)
        self.arrived.set()

    def states_of(self, instance: InstanceName) -> list[ExecutionState]:
        return [c.state for c in self.changes if c.instance == instance]

    async def wait_for(self, predicate: Callable[[StateChange], bool]) -> StateChange:
        async with asyncio.timeout(WAIT_S):
            seen = 0
            while True:
                for change in self.changes[seen:]:
                    if predicate(change):
                        return change
                seen = len(self.changes)
                self.arrived.clear()
                await self.arrived.wait()

    async def wait_state(self, instance: InstanceName, state: ExecutionState) -> StateChange:
        return await self.wait_for(lambda c: c.instance == instance and c.state == state)


@dataclass
class Harness:
    env: PodmanEnv
    runtime: PodmanRuntime
    agent: str
    recorder: Recorder

    def instance(self, workload: str = "wl") -> InstanceName:
        return InstanceName(workload, self.agent, uuid.uuid4().hex[:8])

    def spec(self, instance: InstanceName, args: list[str], options: list[str] | None = None) -> WorkloadSpec:
        return busybox_spec(self.env, instance, args, options)


def busybox_spec(
    env: PodmanEnv, instance: InstanceName, args: list[str], options: list[str] | None = None
) -> WorkloadSpec:
    """A podman workload on the test image, without network (none is needed, and rootless lacks tun)."""
    opts = ["--network", "none", *(options or [])]
    config = f"image: {env.image}\ncommandOptions: {opts!r}\ncommandArgs: {args!r}\n"
    return WorkloadSpec(instance, "podman", config)


def fast_timings() -> PodmanTimings:
    return PodmanTimings(
        monitor=MonitorTimings(relist_interval_s=2.0, outage_grace_s=2.0, reconnect_max_s=0.5)
    )


@pytest.fixture
async def harness(podman_env: PodmanEnv) -> AsyncIterator[Harness]:
    agent = f"itest{uuid.uuid4().hex[:8]}"
    runtime = PodmanRuntime(PodmanConnection(podman_env.socket_url), agent, fast_timings())
    recorder = Recorder()

    async def consume() -> None:
        async for change in runtime.events():
            recorder.add(change)

    task = asyncio.create_task(consume())
    async with asyncio.timeout(WAIT_S):
        await runtime.monitor.stream_connected.wait()
    try:
        yield Harness(podman_env, runtime, agent, recorder)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runtime.close()
        podman_env.remove_by_label(f"agent={agent}")
