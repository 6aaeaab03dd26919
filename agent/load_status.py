"""Node load figures of the v1.0.1 dialect's AgentLoadStatus: CPU usage in percent and free memory in bytes.

Pure parsing and arithmetic over the text of ``/proc/stat`` and
``/proc/meminfo``; the two ``read_*`` functions are the only I/O (blocking file
reads, cheap enough for the loop's worker thread). The figures are taken the way
the reference agent's system-information library takes them, so the server and
``ank get agents`` show the same numbers for the same node:

* CPU usage is the node-wide figure from the aggregate ``cpu`` line, over the
  time between two samples (the reference samples every
  :data:`REPORT_PERIOD_SECONDS`). Guest time is already part of user and nice
  time, so it is taken out of them; busy time is user + nice + system + irq +
  softirq; the whole is busy + idle + iowait + steal + guest + guest_nice. The
  share is rounded to the nearest whole percent and capped at 100. Counters that
  did not move forward count as no busy time (and the whole as one tick).
* Free memory is ``MemFree`` (not ``MemAvailable``), converted from kB to bytes.

Inside a container without lxcfs both files describe the host, which is what
the reference reports there too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

REPORT_PERIOD_SECONDS = 2.0
"""How often the reference sends AgentLoadStatus (the first one at start)."""

_CPU_FIELDS = 10


class ProcFormatError(ValueError):
    """A ``/proc`` text without the line or number the figures need."""


@dataclass(frozen=True)
class CpuTimes:
    """The aggregate ``cpu`` line of ``/proc/stat``, in clock ticks since boot."""

    user: int = 0
    nice: int = 0
    system: int = 0
    idle: int = 0
    iowait: int = 0
    irq: int = 0
    softirq: int = 0
    steal: int = 0
    guest: int = 0
    guest_nice: int = 0

    @property
    def busy(self) -> int:
        own_user = max(self.user - self.guest, 0)
        own_nice = max(self.nice - self.guest_nice, 0)
        return own_user + own_nice + self.system + self.irq + self.softirq

    @property
    def total(self) -> int:
        return self.busy + self.idle + self.iowait + self.steal + self.guest + self.guest_nice


@dataclass(frozen=True)
class LoadStatus:
    cpu_usage: int
    """Percent of the node's CPU time that was busy, 0 to 100."""
    free_memory: int
    """Bytes."""


def parse_cpu_times(proc_stat: str) -> CpuTimes:
    """The node-wide CPU times; columns a kernel does not have yet count as zero."""
    for line in proc_stat.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            try:
                values = [int(v) for v in fields[1 : 1 + _CPU_FIELDS]]
            except ValueError as error:
                raise ProcFormatError(
                    f"/proc/stat: the cpu line has a value that is not a number: {line!r}"
                ) from error
            if any(v < 0 for v in values):
                raise ProcFormatError(f"/proc/stat: the cpu line has a negative value: {line!r}")
            return CpuTimes(*values)
    raise ProcFormatError("/proc/stat has no aggregate 'cpu' line")


def cpu_usage_percent(earlier: CpuTimes, later: CpuTimes) -> int:
    """Whole percent of CPU time that was busy between two samples."""
    busy = later.busy - earlier.busy if later.busy > earlier.busy else 0
    total = later.total - earlier.total if later.total > earlier.total else 1
    share = min(busy / total * 100.0, 100.0)
    return math.floor(share + 0.5)


def parse_free_memory(meminfo: str) -> int:
    """``MemFree`` in bytes."""
    for line in meminfo.splitlines():
        key, _, rest = line.partition(":")
        if key == "MemFree":
            amount = rest.split()
            if not amount or not amount[0].isdigit():
                raise ProcFormatError(f"/proc/meminfo: MemFree is not a number: {line!r}")
            unit = amount[1] if len(amount) > 1 else "kB"
            if unit != "kB":
                raise ProcFormatError(f"/proc/meminfo: MemFree has the unit {unit!r}, expected 'kB'")
            return int(amount[0]) * 1024
    raise ProcFormatError("/proc/meminfo has no MemFree line")


def load_status(earlier: CpuTimes, later: CpuTimes, meminfo: str) -> LoadStatus:
    return LoadStatus(cpu_usage_percent(earlier, later), parse_free_memory(meminfo))


def read_cpu_times(proc: Path = Path("/proc")) -> CpuTimes:
    """Blocking read of ``<proc>/stat``."""
    return parse_cpu_times((proc / "stat").read_text(encoding="ascii", errors="replace"))


def read_meminfo(proc: Path = Path("/proc")) -> str:
    """Blocking read of ``<proc>/meminfo``."""
    return (proc / "meminfo").read_text(encoding="ascii", errors="replace")


__all__ = [
    "REPORT_PERIOD_SECONDS",
    "CpuTimes",
    "LoadStatus",
    "ProcFormatError",
    "cpu_usage_percent",
    "load_status",
    "parse_cpu_times",
    "parse_free_memory",
    "read_cpu_times",
    "read_meminfo",
]
