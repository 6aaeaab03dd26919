"""The periodic AgentLoadStatus: node CPU usage and free memory, every ``interval`` seconds.

The first report goes out at once; its CPU figure is the average since boot
(the counters of the first sample against zero), which says more than the few
milliseconds the reference's first figure covers. Later reports cover the time
since the previous sample. Ticks missed while the loop was busy are skipped,
not sent in a burst. Reports are produced whether or not the server is
connected; the sink (the outbox) keeps them until it is.

The ``/proc`` files are read in a worker thread. Inside a container they
describe the host unless lxcfs is mounted over them, so an agent in a
container reports the node's figures, as the reference does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ankaios_agent.agent.blocking import run_blocking
from ankaios_agent.agent.load_status import (
    REPORT_PERIOD_SECONDS,
    CpuTimes,
    ProcFormatError,
    load_status,
    read_cpu_times,
    read_meminfo,
)
from ankaios_agent.agent.model import AgentLoadStatus
from ankaios_agent.agent.timings import Clock, SystemClock

logger = logging.getLogger(__name__)


def _sample(proc: Path) -> tuple[CpuTimes, str]:
    return read_cpu_times(proc), read_meminfo(proc)


class LoadReporter:
    """Sends ``AgentLoadStatus`` for ``agent_name`` to ``send`` until cancelled (``run``)."""

    def __init__(
        self,
        agent_name: str,
        send: Callable[[AgentLoadStatus], None],
        *,
        interval: float = REPORT_PERIOD_SECONDS,
        proc: Path = Path("/proc"),
        clock: Clock | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("the load report interval must be positive")
        self._agent = agent_name
        self._send = send
        self._interval = interval
        self._proc = proc
        self._clock = clock or SystemClock()
        self._previous = CpuTimes()
        self._failing = False

    async def report_once(self) -> AgentLoadStatus | None:
        """Take one sample and send it; None (logged once per outage) when /proc cannot be read."""
        try:
            cpu, meminfo = await run_blocking(_sample, self._proc)
            status = load_status(self._previous, cpu, meminfo)
        except (OSError, ProcFormatError) as err:
            if not self._failing:
                logger.warning(
                    "cannot read the node load from %s, no load report is sent: %s", self._proc, err
                )
                self._failing = True
            return None
        if self._failing:
            logger.info("node load readable again from %s", self._proc)
            self._failing = False
        self._previous = cpu
        message = AgentLoadStatus(self._agent, status.cpu_usage, status.free_memory)
        self._send(message)
        return message

    async def run(self) -> None:
        """Report now and then every ``interval`` seconds, until the task is cancelled."""
        next_at = self._clock.monotonic()
        while True:
            await self.report_once()
            next_at += self._interval
            now = self._clock.monotonic()
            if next_at < now:
                next_at = now + self._interval - ((now - next_at) % self._interval)
            await self._clock.sleep(next_at - now)


__all__ = ["LoadReporter"]
