"""The kube monitor's relist logic with a fake Podman listing."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ankaios_agent.agent.errors import EngineCallFailed, EngineUnreachable
from ankaios_agent.agent.model import ExecutionState, InstanceName
from ankaios_agent.agent.ports import StateChange
from ankaios_agent.runtimes.podman.monitor import MonitorTimings
from ankaios_agent.runtimes.podman_kube.monitor import KubeMonitor, parse_event
from ankaios_agent.runtimes.podman_kube.states import ListedContainer

WEB = InstanceName(workload="web", agent="a", id="1")
DB = InstanceName(workload="db", agent="a", id="2")


class FakeListing:
    """Stands in for KubeApi.containers_of_pods: returns what the test sets, or fails."""

    def __init__(self) -> None:
        self.containers: list[ListedContainer] = []
        self.error: EngineCallFailed | None = None
        self.calls: list[list[str]] = []

    def containers_of_pods(self, pod_ids: Sequence[str]) -> list[ListedContainer]:
        self.calls.append(list(pod_ids))
        if self.error is not None:
            raise self.error
        return [c for c in self.containers if c.pod in pod_ids]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(listing: FakeListing, clock: Clock | None = None) -> KubeMonitor:
    timings = MonitorTimings(outage_grace_s=10.0)
    monitor = KubeMonitor(listing, None, timings, clock or Clock())  # type: ignore[arg-type]
    emitted: list[StateChange] = []
    monitor.on_change = lambda change, _event: emitted.append(change)
    EMITTED[id(monitor)] = emitted
    return monitor


EMITTED: dict[int, list[StateChange]] = {}


def drain(monitor: KubeMonitor) -> list[StateChange]:
    emitted = EMITTED[id(monitor)]
    out = list(emitted)
    emitted.clear()
    return out


async def test_relist_emits_only_changes() -> None:
    """Report only when the state differs from the last one reported."""
    listing = FakeListing()
    monitor = make(listing)
    monitor.watch(WEB, ["p1"], "p1")
    listing.containers = [ListedContainer("p1", "running", 0, "c1")]
    await monitor.relist()
    await monitor.relist()
    assert drain(monitor) == [StateChange(WEB, "p1", ExecutionState.running())]
    listing.containers = [ListedContainer("p1", "exited", 2, "c1")]
    await monitor.relist()
    assert drain(monitor) == [StateChange(WEB, "p1", ExecutionState.exec_failed(2))]


async def test_one_listing_call_serves_all_watched_workloads() -> None:
    """Idle cost does not grow with the number of workloads: one REST call per relist."""
    listing = FakeListing()
    monitor = make(listing)
    monitor.watch(WEB, ["p1"], "p1")
    monitor.watch(DB, ["p2", "p3"], "p2,p3")
    listing.containers = [ListedContainer("p1", "running", 0), ListedContainer("p2", "running", 0)]
    await monitor.relist()
    assert listing.calls == [["p1", "p2", "p3"]]
    states = {c.instance: c.state for c in drain(monitor)}
    assert states == {WEB: ExecutionState.running(), DB: ExecutionState.unknown("unknown container state")}


async def test_nothing_watched_means_no_rest_call() -> None:
    listing = FakeListing()
    monitor = make(listing)
    await monitor.relist()
    assert listing.calls == []


async def test_unwatched_instance_is_not_reported() -> None:
    """After delete the monitor reports nothing more about the instance."""
    listing = FakeListing()
    monitor = make(listing)
    monitor.watch(WEB, ["p1"], "p1")
    monitor.unwatch(WEB)
    listing.containers = [ListedContainer("p1", "running", 0)]
    await monitor.relist()
    assert drain(monitor) == []


async def test_unknown_pod_list_reports_succeeded() -> None:
    """Pod list unknown after resume → Succeeded(Ok)."""
    monitor = make(FakeListing())
    monitor.watch(WEB, None, "")
    await monitor.relist()
    assert drain(monitor) == [StateChange(WEB, "", ExecutionState.succeeded())]


async def test_short_outage_keeps_states_long_outage_reports_the_reference_text() -> None:
    """'Error getting state from pods.' only after the grace period."""
    listing = FakeListing()
    clock = Clock()
    monitor = make(listing, clock)
    monitor.watch(WEB, ["p1"], "p1")
    listing.containers = [ListedContainer("p1", "running", 0)]
    await monitor.relist()
    drain(monitor)

    listing.error = EngineUnreachable("list", "cannot reach Podman")
    await monitor.relist()
    clock.now = 9.0
    await monitor.relist()
    assert drain(monitor) == []
    clock.now = 10.0
    await monitor.relist()
    assert drain(monitor) == [
        StateChange(WEB, "p1", ExecutionState.unknown("Error getting state from pods."))
    ]

    listing.error = None
    listing.containers = [ListedContainer("p1", "exited", 0)]
    await monitor.relist()
    assert drain(monitor) == [StateChange(WEB, "p1", ExecutionState.succeeded())]


async def test_events_about_watched_pods_or_their_containers_mark_dirty() -> None:
    """Podman's died event has an empty podId: the container id learnt at relist identifies it."""
    listing = FakeListing()
    monitor = make(listing)
    monitor.watch(WEB, ["p1"], "p1")
    listing.containers = [ListedContainer("p1", "running", 0, "c1")]
    await monitor.relist()
    monitor._wake.clear()

    def line(type_: str, actor: str, pod: str = "") -> bytes:
        return json.dumps({"Type": type_, "Actor": {"ID": actor, "Attributes": {"podId": pod}}}).encode()

    monitor.event_line(line("container", "other", "other-pod"))
    monitor.event_line(b"not json")
    assert not monitor._wake.is_set()
    monitor.event_line(line("container", "c1"))
    assert monitor._wake.is_set()
    monitor._wake.clear()
    monitor.event_line(line("container", "new-container", "p1"))
    assert monitor._wake.is_set()
    monitor._wake.clear()
    monitor.event_line(line("pod", "p1"))
    assert monitor._wake.is_set()


def test_parse_event_reads_type_actor_and_pod() -> None:
    event = parse_event(b'{"Type":"container","Actor":{"ID":"c","Attributes":{"podId":"p"}}}')
    assert event is not None
    assert (event.type, event.actor_id, event.pod_id) == ("container", "c", "p")
    assert parse_event(b"[]") is None
