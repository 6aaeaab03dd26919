"""Monitor rules without Podman: events vs relist, forget, outage grace."""

from __future__ import annotations

import json
from collections.abc import Callable

from ankaios_agent.agent.model import ExecutionState, InstanceName
from ankaios_agent.agent.ports import StateChange
from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman.monitor import Monitor, MonitorTimings

AGENT = "agent_A"
WL = InstanceName("wl", AGENT, "1")


class FakePodman:
    """Stands in for the list call: returns ``entries`` or raises while ``down``."""

    def __init__(self) -> None:
        self.entries: list[dict[str, object]] = []
        self.down = False
        self.while_listing: Callable[[], None] | None = None  # runs "during" the list call

    def list(self) -> list[dict[str, object]]:
        if self.down:
            raise ConnectionError("socket gone")
        result = list(self.entries)
        if self.while_listing is not None:
            self.while_listing()
        return result

    def set(self, cid: str, state: str, exit_code: int = 0) -> None:
        labels = {"name": str(WL), "agent": AGENT}
        self.entries = [{"Id": cid, "State": state, "ExitCode": exit_code, "Labels": labels}]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(podman: FakePodman, clock: Clock) -> tuple[Monitor, list[StateChange]]:
    timings = MonitorTimings(outage_grace_s=10.0)
    monitor = Monitor(PodmanConnection("unix:///unused.sock"), AGENT, timings, clock, podman.list)
    seen: list[StateChange] = []

    def observe(change: StateChange, _event: object | None) -> None:
        seen.append(change)

    monitor.on_change = observe
    return monitor, seen


def event(cid: str, action: str, exit_code: int = 0, name: str = str(WL)) -> bytes:
    attributes = {"containerExitCode": str(exit_code), "name": name}
    return json.dumps(
        {"Type": "container", "Action": action, "id": cid, "Actor": {"ID": cid, "Attributes": attributes}}
    ).encode()


async def test_start_event_reports_running_before_died_reports_exit() -> None:
    """A short container is seen Running(Ok) before its exit state."""
    monitor, seen = make(FakePodman(), Clock())
    for action in ("create", "init", "start", "died", "cleanup"):
        monitor.event_line(event("c1", action, exit_code=3))
    assert [c.state for c in seen] == [ExecutionState.running(), ExecutionState.exec_failed(3)]


async def test_remove_event_reports_lost_once() -> None:
    monitor, seen = make(FakePodman(), Clock())
    monitor.event_line(event("c1", "start"))
    monitor.event_line(event("c1", "remove"))
    monitor.event_line(event("c1", "remove"))
    assert [c.state for c in seen] == [ExecutionState.running(), ExecutionState.lost()]


async def test_events_of_containers_named_for_other_agents_wait_for_identity() -> None:
    """A user --name: the instance comes from create (expect) and queued events replay in order."""
    monitor, seen = make(FakePodman(), Clock())
    monitor._spawn = lambda coro: coro.close()  # type: ignore[method-assign]  # no inspect here
    monitor.event_line(event("c1", "start", name="custom"))
    monitor.event_line(event("c1", "died", name="custom"))
    assert seen == []
    monitor.expect("c1", WL)
    assert [c.state for c in seen] == [ExecutionState.running(), ExecutionState.succeeded()]


async def test_relist_reports_new_changed_and_vanished_containers() -> None:
    podman, clock = FakePodman(), Clock()
    monitor, seen = make(podman, clock)
    podman.set("c1", "running")
    assert await monitor.relist()
    podman.set("c1", "exited", 2)
    await monitor.relist()
    podman.entries = []
    await monitor.relist()
    assert [c.state for c in seen] == [
        ExecutionState.running(),
        ExecutionState.exec_failed(2),
        ExecutionState.lost(),
    ]


async def test_event_during_relist_wins_over_the_older_list() -> None:
    """PLEG: data older than an event must not roll the state back."""
    podman, clock = FakePodman(), Clock()
    monitor, seen = make(podman, clock)
    podman.set("c1", "running")
    podman.while_listing = lambda: monitor.event_line(event("c1", "died", exit_code=1))
    await monitor.relist()
    assert seen[-1].state == ExecutionState.exec_failed(1)
    podman.while_listing = None
    podman.set("c1", "exited", 1)
    await monitor.relist()
    assert [c.state for c in seen] == [ExecutionState.exec_failed(1)]


async def test_forgotten_container_is_not_reported() -> None:
    """The agent's own delete produces no Lost/exit reports for that container."""
    podman, clock = FakePodman(), Clock()
    monitor, seen = make(podman, clock)
    monitor.event_line(event("c1", "start"))
    monitor.forget("c1")
    monitor.event_line(event("c1", "died", exit_code=137))
    monitor.event_line(event("c1", "remove"))
    podman.set("c1", "exited", 137)
    await monitor.relist()
    assert [c.state for c in seen] == [ExecutionState.running()]


async def test_short_outage_keeps_states_long_outage_reports_unknown_then_recovers() -> None:
    """Grace period, then Failed(Unknown) 'Error getting state from Podman.'."""
    podman, clock = FakePodman(), Clock()
    monitor, seen = make(podman, clock)
    podman.set("c1", "running")
    await monitor.relist()
    podman.down = True
    assert not await monitor.relist()
    clock.now = 9.0
    await monitor.relist()
    assert [c.state for c in seen] == [ExecutionState.running()]
    clock.now = 10.5
    await monitor.relist()
    await monitor.relist()
    assert seen[1:] == [StateChange(WL, "c1", ExecutionState.unknown("Error getting state from Podman."))]
    podman.down = False
    await monitor.relist()
    assert seen[2:] == [StateChange(WL, "c1", ExecutionState.running())]


async def test_successful_start_reports_running_at_once_but_never_after_an_exit() -> None:
    """Create-to-running without waiting for the start event; a faster died event is not overwritten."""
    monitor, seen = make(FakePodman(), Clock())
    monitor.started("c1", WL)
    monitor.event_line(event("c1", "start"))
    assert [c.state for c in seen] == [ExecutionState.running()]
    monitor.event_line(event("c2", "start"))
    monitor.event_line(event("c2", "died", exit_code=5))
    monitor.started("c2", WL)
    assert [c.state for c in seen][1:] == [ExecutionState.running(), ExecutionState.exec_failed(5)]
