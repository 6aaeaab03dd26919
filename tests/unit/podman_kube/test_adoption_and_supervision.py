"""Kube adoption and monitor supervision with a fake Podman API (no Podman needed).

Re-listing never replaces a live watch, never watches an instance that is
being deleted, reports the state of one fresh relist, and a surprise in the
kube watcher's listing does not stop it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ankaios_agent.agent.model import ExecutionState, InstanceName
from ankaios_agent.agent.ports import StateChange
from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman.monitor import MonitorTimings
from ankaios_agent.runtimes.podman_kube import bookkeeping
from ankaios_agent.runtimes.podman_kube.kube_api import Volume
from ankaios_agent.runtimes.podman_kube.monitor import KubeMonitor
from ankaios_agent.runtimes.podman_kube.runtime import PodmanKubeRuntime, _Played
from ankaios_agent.runtimes.podman_kube.states import ListedContainer

AGENT = "a"
WEB = InstanceName(workload="web", agent=AGENT, id="1")
NOWHERE = PodmanConnection("unix:///nonexistent/podman-unit-test.sock")
RUNTIME_CONFIG = "manifest: |\n  apiVersion: v1\n  kind: Pod\n  metadata:\n    name: web\n"
FAST = MonitorTimings(
    relist_interval_s=3600.0,
    relist_without_stream_s=3600.0,
    relist_retry_s=3600.0,
    restart_initial_s=0.01,
    reconnect_initial_s=0.05,
    reconnect_max_s=0.05,
)


class FakeApi:
    """The KubeApi calls list_owned and the monitor make, answered from memory."""

    def __init__(self) -> None:
        self.volumes: dict[str, str] = {}
        self.containers: list[ListedContainer] = []
        self.surprises = 0
        self.while_listing: list[ListedContainer] | None = None

    def config_volumes(self, agent: str) -> list[str]:
        return sorted(v for v in self.volumes if v.endswith(f".{agent}.config"))

    def read_volume(self, name: str) -> Volume | None:
        data = self.volumes.get(name)
        return None if data is None else Volume(name, data)

    def containers_of_pods(self, pod_ids: Sequence[str]) -> list[ListedContainer]:
        if self.surprises > 0:
            self.surprises -= 1
            raise RuntimeError("surprise in the kube listing")
        return [c for c in self.containers if c.pod in pod_ids]


def runtime_with(api: FakeApi) -> PodmanKubeRuntime:
    runtime = PodmanKubeRuntime(NOWHERE, AGENT, FAST)
    runtime._api = api  # type: ignore[assignment]
    runtime._monitor._api = api  # type: ignore[assignment]
    return runtime


def store(api: FakeApi, instance: InstanceName, pods: list[str] | None) -> None:
    api.volumes[bookkeeping.config_volume(instance)] = bookkeeping.encode(RUNTIME_CONFIG)
    if pods is not None:
        api.volumes[bookkeeping.pods_volume(instance)] = bookkeeping.encode_pods(pods)


async def test_adoption_reports_the_state_of_a_fresh_relist() -> None:
    api = FakeApi()
    store(api, WEB, ["p1"])
    api.containers = [ListedContainer("p1", "exited", 3, "c1")]
    runtime = runtime_with(api)
    owned = await runtime.list_owned()
    assert [(o.instance, o.runtime_id, o.state) for o in owned] == [
        (WEB, "p1", ExecutionState.exec_failed(3))
    ]


async def test_relisting_keeps_a_live_watch_even_when_the_pods_volume_became_unreadable() -> None:
    """A watch learnt at create is never replaced by a poorer one re-read from bookkeeping."""
    api = FakeApi()
    store(api, WEB, None)  # no .pods volume readable: alone, this would mean "pod list unknown"
    api.containers = [ListedContainer("p1", "running", 0, "c1")]
    runtime = runtime_with(api)
    runtime._played[WEB] = _Played("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n", ("p1",))
    runtime._monitor.watch(WEB, ["p1"], "p1")
    owned = await runtime.list_owned()
    assert [(o.runtime_id, o.state) for o in owned] == [("p1", ExecutionState.running())]
    assert runtime._monitor._watched[WEB].pod_ids == ("p1",)


async def test_an_instance_being_deleted_is_not_watched_again() -> None:
    api = FakeApi()
    store(api, WEB, ["p1"])
    runtime = runtime_with(api)
    runtime._deleting.add(WEB)
    assert await runtime.list_owned() == []
    assert WEB not in runtime._monitor._watched


async def test_kube_watcher_keeps_going_after_a_surprise_in_its_listing() -> None:
    api = FakeApi()
    api.surprises = 1
    api.containers = [ListedContainer("p1", "running", 0, "c1")]
    monitor = KubeMonitor(api, NOWHERE, FAST)  # type: ignore[arg-type]
    monitor.watch(WEB, ["p1"], "p1")
    stream = monitor.events()
    try:
        async with asyncio.timeout(30):  # a hang guard, not a timing assertion
            change = await anext(stream)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    assert change == StateChange(WEB, "p1", ExecutionState.running())
    assert api.surprises == 0
