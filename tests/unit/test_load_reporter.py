"""The periodic load report: first at once (CPU since boot), then per interval, skipping missed ticks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ankaios_agent.agent.fakes import FakeClock
from ankaios_agent.agent.load_reporter import LoadReporter
from ankaios_agent.agent.model import AgentLoadStatus

MEMINFO = "MemTotal: 4000 kB\nMemFree: 1000 kB\nMemAvailable: 3000 kB\n"


def write_proc(proc: Path, busy: int, idle: int, free_kb: int = 1000) -> None:
    proc.mkdir(exist_ok=True)
    (proc / "stat").write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 {busy} 0 0 {idle} 0 0 0 0 0 0\n")
    (proc / "meminfo").write_text(f"MemTotal: 4000 kB\nMemFree: {free_kb} kB\n")


async def test_reports_cpu_since_boot_first_then_since_the_previous_sample(tmp_path: Path) -> None:
    sent: list[AgentLoadStatus] = []
    write_proc(tmp_path, busy=100, idle=300)
    reporter = LoadReporter("agent_A", sent.append, proc=tmp_path)
    await reporter.report_once()
    write_proc(tmp_path, busy=190, idle=310, free_kb=2)
    await reporter.report_once()
    assert sent == [AgentLoadStatus("agent_A", 25, 1000 * 1024), AgentLoadStatus("agent_A", 90, 2048)]


async def test_an_unreadable_proc_sends_nothing_and_recovers(tmp_path: Path) -> None:
    sent: list[AgentLoadStatus] = []
    reporter = LoadReporter("agent_A", sent.append, proc=tmp_path / "missing")
    assert await reporter.report_once() is None
    (tmp_path / "missing").mkdir()
    (tmp_path / "missing" / "stat").write_text("no cpu line\n")
    (tmp_path / "missing" / "meminfo").write_text(MEMINFO)
    assert await reporter.report_once() is None
    write_proc(tmp_path / "missing", busy=1, idle=1)
    assert await reporter.report_once() == AgentLoadStatus("agent_A", 50, 1000 * 1024)
    assert len(sent) == 1


class SignallingClock(FakeClock):
    """A manual clock that tells the test each time the reporter goes to sleep."""

    def __init__(self) -> None:
        super().__init__(auto=False)
        self.slept = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.slept.set()
        await super().sleep(seconds)

    async def wait_for_sleeps(self, count: int) -> None:
        while len(self.sleeps) < count:
            self.slept.clear()
            await self.slept.wait()


@pytest.mark.parametrize(
    ("interval", "busy_for", "expected_sleeps"),
    [(2.0, 0.0, [2.0, 2.0]), (2.0, 5.0, [1.0]), (0.5, 0.2, [0.3])],
)
async def test_runs_on_the_interval_and_skips_missed_ticks(
    tmp_path: Path, interval: float, busy_for: float, expected_sleeps: list[float]
) -> None:
    write_proc(tmp_path, busy=1, idle=1)
    clock = SignallingClock()
    sent: list[AgentLoadStatus] = []

    def send(msg: AgentLoadStatus) -> None:
        sent.append(msg)
        clock.advance(busy_for)  # the loop was busy for this long around the report

    reporter = LoadReporter("a", send, interval=interval, proc=tmp_path, clock=clock)
    task = asyncio.create_task(reporter.run())
    try:
        await asyncio.wait_for(clock.wait_for_sleeps(1), 30)
        assert len(sent) == 1
        if len(expected_sleeps) > 1:
            clock.advance(clock.sleeps[0])
            await asyncio.wait_for(clock.wait_for_sleeps(2), 30)
        assert clock.sleeps == pytest.approx(expected_sleeps)
    finally:
        task.cancel()


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        LoadReporter("a", lambda msg: None, interval=0)
