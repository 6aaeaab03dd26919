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
