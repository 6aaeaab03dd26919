"""Rules of the shared monitor skeleton, with fake listings instead of Podman.

A surprise in a mapping function never stops the monitor, adoption lists
through the monitor so it never returns a state older than one already
reported, and a new subscriber starts from the latest states.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from ankaios_agent.agent.model import ExecutionState, InstanceName
from ankaios_agent.agent.ports import StateChange
from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman.monitor import Monitor, MonitorTimings, PodmanEvent

AGENT = "agent_A"
WL = InstanceName("wl", AGENT, "1")
# Nothing listens there: the event-stream thread keeps failing to connect, which these tests ignore.
NOWHERE = PodmanConnection("unix:///nonexistent/podman-unit-test.sock")
FAST = MonitorTimings(
    relist_interval_s=3600.0,
    relist_without_stream_s=3600.0,
    relist_retry_s=3600.0,
    restart_initial_s=0.01,
    reconnect_initial_s=0.05,
    reconnect_max_s=0.05,
)


def entry(cid: str, state: str, exit_code: int = 0) -> dict[str, object]:
    return {"Id": cid, "State": state, "ExitCode": exit_code, "Labels": {"name": str(WL), "agent": AGENT}}


def event(cid: str, action: str, exit_code: int = 0) -> bytes:
    attributes = {"containerExitCode": str(exit_code), "name": str(WL)}
    return json.dumps(
        {"Type": "container", "Action": action, "id": cid, "Actor": {"ID": cid, "Attributes": attributes}}
    ).encode()


async def first(stream: AsyncIterator[StateChange], count: int) -> list[StateChange]:
    out: list[StateChange] = []
    async with asyncio.timeout(30):  # a hang guard, not a timing assertion
        while len(out) < count:
            out.append(await anext(stream))
    return out


class FlakyMonitor(Monitor):
    """A monitor whose listing-to-snapshot mapping raises the first ``failures`` times."""

    failures = 1

    def _apply_listing(
        self, listing: list[dict[str, object]], seq_at_start: int, report_all: bool
    ) -> list[StateChange]:
        if self.failures > 0:
            self.failures -= 1
            raise KeyError("surprise in the mapping")
        return super()._apply_listing(listing, seq_at_start, report_all)


async def test_relist_loop_restarts_after_a_surprise_in_the_mapping(caplog: pytest.LogCaptureFixture) -> None:
    monitor = FlakyMonitor(NOWHERE, AGENT, FAST, lister=lambda: [entry("c1", "running")])
    stream = monitor.changes()
    try:
        changes = await first(stream, 1)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    assert changes == [StateChange(WL, "c1", ExecutionState.running())]
    assert monitor.failures == 0
    assert any("failed unexpectedly" in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


async def test_a_surprise_while_mapping_an_event_is_logged_and_the_next_event_is_handled(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitor = Monitor(NOWHERE, AGENT, FAST, lister=list)
    seen: list[StateChange] = []
    monitor.on_change = lambda change, _event: seen.append(change)
    original = monitor._apply_event
    calls = {"n": 0}

    def flaky(parsed: PodmanEvent) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise TypeError("surprise")
        original(parsed)

    monkeypatch.setattr(monitor, "_apply_event", flaky)
    monitor.event_line(event("c1", "start"))
    monitor.event_line(event("c1", "died", exit_code=4))
    assert seen == [StateChange(WL, "c1", ExecutionState.exec_failed(4))]
    assert monitor._wake.is_set()  # a relist resynchronises what the failed event may have meant
    assert any("cannot handle Podman event" in r.getMessage() for r in caplog.records)


async def test_list_owned_reports_an_exit_seen_while_listing_not_the_older_list() -> None:
    """A container that exits while the agent lists is adopted with its exit, not as Running(Ok)."""
    monitor = Monitor(NOWHERE, AGENT, FAST, lister=lambda: [])

    def listing() -> list[dict[str, object]]:
        result = [entry("c1", "running")]
        monitor.event_line(event("c1", "died", exit_code=1))
        return result

    monitor._lister = listing
    monitor.event_line(event("c1", "start"))
    records = await monitor.list_owned()
    assert [(r.id, r.state) for r in records] == [("c1", ExecutionState.exec_failed(1))]


async def test_a_new_subscriber_first_gets_the_latest_state_of_every_container() -> None:
    monitor = Monitor(NOWHERE, AGENT, FAST, lister=lambda: [entry("c1", "running")])
    await monitor.list_owned()
    monitor.event_line(event("c1", "died", exit_code=2))
    stream = monitor.changes()
    try:
        changes = await first(stream, 1)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    assert changes == [StateChange(WL, "c1", ExecutionState.exec_failed(2))]


async def test_no_change_is_dropped_however_many_pile_up() -> None:
    monitor = Monitor(NOWHERE, AGENT, FAST, lister=lambda: [entry("c0", "running")])
    stream = monitor.changes()
    try:
        await first(stream, 1)  # subscribed, the first relist is through
        for index in range(1, 12_001):
            monitor.event_line(event(f"c{index}", "start"))
        changes = await first(stream, 12_000)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    assert len({c.runtime_id for c in changes}) == 12_000


@dataclass
class SwitchableListing:
    """A container listing that can be made to fail as if Podman's socket were gone."""

    entries: list[dict[str, object]]
    down: bool = False

    def __call__(self) -> list[dict[str, object]]:
        if self.down:
            raise ConnectionError("socket gone")
        return list(self.entries)


async def test_recovery_after_a_long_outage_reports_every_state_again() -> None:
    """After Failed(Unknown) was reported, unchanged containers are reported again, vanished ones Lost."""
    now = {"t": 0.0}
    listing = SwitchableListing([entry("c1", "running"), entry("c2", "running")])
    monitor = Monitor(NOWHERE, AGENT, MonitorTimings(outage_grace_s=10.0), lambda: now["t"], listing)
    seen: list[StateChange] = []
    monitor.on_change = lambda change, _event: seen.append(change)
    await monitor.relist()
    listing.down = True
    await monitor.relist()
    now["t"] = 11.0
    await monitor.relist()
    listing.down = False
    listing.entries = [entry("c1", "running")]
    seen.clear()
    assert await monitor.relist()
    assert sorted((c.runtime_id, c.state.state.name) for c in seen) == [
        ("c1", ExecutionState.running().state.name),
        ("c2", ExecutionState.lost().state.name),
    ]
