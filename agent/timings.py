"""Every tunable delay and count of the agent, plus the clock the loops sleep on.

STYLE 13: time is injected, never monkeypatched. Production code uses
``AgentTimings()`` and ``SystemClock()``; tests pass tiny intervals and a
fake clock, so retries and back-off run in microseconds without changing the
logic under test.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class AgentTimings:
    """Defaults are those of the v0.3.1 reference (spec Appendix A) and DESIGN decision 6."""

    # spec §6.3: 1 initial attempt + 1 immediate retry + further retries 1 s apart = 21 attempts.
    create_retries: int = 20
    create_retry_interval: float = 1.0
    # DESIGN decision 6: first restart immediate, then initial * factor**(n-1), capped.
    restart_backoff_initial: float = 1.0
    restart_backoff_factor: float = 2.0
    restart_backoff_cap: float = 300.0
    # A workload that ran this long without interruption starts over with an immediate restart.
    restart_backoff_reset_after: float = 600.0
    # How long to wait before subscribing again when a runtime's event stream broke.
    event_resubscribe_delay: float = 1.0
    # A failed delete is retried with the restart back-off, capped here, until it succeeds.
    delete_retry_cap: float = 30.0

    def __post_init__(self) -> None:
        if self.create_retries < 0:
            raise ValueError("create_retries must not be negative")
        for name in (
            "create_retry_interval",
            "restart_backoff_initial",
            "restart_backoff_cap",
            "restart_backoff_reset_after",
            "event_resubscribe_delay",
            "delete_retry_cap",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.restart_backoff_factor < 1:
            raise ValueError("restart_backoff_factor must be at least 1")

    def restart_delay(self, consecutive_restarts: int) -> float:
        """Delay before restart number ``consecutive_restarts`` (0-based) of a crash loop."""
        if consecutive_restarts <= 0:
            return 0.0
        delay = self.restart_backoff_initial * self.restart_backoff_factor ** (consecutive_restarts - 1)
        return min(delay, self.restart_backoff_cap)


class Clock(Protocol):
    """Monotonic time and sleeping, injectable for tests (kubelet's ``clock``)."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
