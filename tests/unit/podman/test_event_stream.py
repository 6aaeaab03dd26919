"""The event-stream thread reports a lost stream once per outage, so a Podman that stays away
never floods the log."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman.event_stream import following


@dataclass(frozen=True)
class FastRetry:
    reconnect_initial_s: float = 0.01
    reconnect_max_s: float = 0.02


@dataclass
class Recorder:
    ups: int = 0
    downs: list[str] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)

    def stream_up(self) -> None:
        self.ups += 1

    def stream_down(self, reason: str) -> None:
        self.downs.append(reason)

    def event_line(self, line: bytes) -> None:
        self.lines.append(line)


async def test_unreachable_podman_is_reported_once_not_per_retry(tmp_path: Path) -> None:
    """A socket that never answers: many retries, one stream_down, no stream_up."""
    connection = PodmanConnection(f"unix://{tmp_path / 'absent.sock'}")
    recorder = Recorder()
    try:
        async with following(connection, {}, timings=FastRetry(), listener=recorder, name="test-events"):
            await asyncio.sleep(0.3)  # room for a dozen retries at 10-20 ms
    finally:
        connection.close()
    assert len(recorder.downs) == 1
    assert recorder.ups == 0


@dataclass
class TwoDowns(Recorder):
    second_down: asyncio.Event = field(default_factory=asyncio.Event)

    def stream_down(self, reason: str) -> None:
        super().stream_down(reason)
        if len(self.downs) >= 2:
            self.second_down.set()


class FlakyConnection(PodmanConnection):
    """Its stream client raises a bug (not a Podman failure) the first time it is asked for."""

    surprises = 1

    def stream_client(self):
        if self.surprises > 0:
            self.surprises -= 1
            raise KeyError("surprise in the stream thread")
        return super().stream_client()


async def test_a_surprise_in_the_stream_thread_restarts_it_instead_of_ending_it(tmp_path: Path) -> None:
    """After the bug the thread goes on trying to connect (and reports the lost stream)."""
    connection = FlakyConnection(f"unix://{tmp_path / 'absent.sock'}")
    recorder = TwoDowns()
    try:
        async with following(connection, {}, timings=FastRetry(), listener=recorder, name="test-events"):
            async with asyncio.timeout(30):  # a hang guard, not a timing assertion
                await recorder.second_down.wait()
    finally:
        connection.close()
    assert connection.surprises == 0
    assert recorder.downs[0] == "event stream thread failed"
    assert "cannot reach Podman" in recorder.downs[1]
