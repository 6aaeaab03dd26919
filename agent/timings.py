"""Every tunable delay and count of the agent, plus the clock the loops sleep on.

Time is injected, never monkeypatched. Production code uses
``AgentTimings()`` and ``SystemClock()``; tests pass tiny intervals and a
fake clock, so retries and back-off run in microseconds without changing the
logic under test.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class AgentTimings:
    """Defaults match the v0.3.1 reference agent; the restart back-off is this agent's own."""

    # 1 initial attempt + 1 immediate retry + further retries 1 s apart = 21 attempts, like the reference.
    create_retries: int = 20
    create_retry_interval: float = 1.0
    # First restart immediate, then initial * factor**(n-1), capped.
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
        return self._backoff(consecutive_restarts, self.restart_backoff_cap)

    def delete_retry_delay(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based) of a delete that keeps failing."""
        return self._backoff(attempt, min(self.restart_backoff_cap, self.delete_retry_cap))

    def _backoff(self, step: int, cap: float) -> float:
        if step <= 0:
            return 0.0
        initial, factor = self.restart_backoff_initial, self.restart_backoff_factor
        if initial >= cap:
            return cap
        if initial == 0 or factor == 1:
            return initial
        # A crash loop of days or a night-long engine outage reaches step counts where
        # ``factor ** step`` overflows a float: compare exponents instead of multiplying.
        exponent = step - 1
        if exponent >= math.log(cap / initial, factor):
            return cap
        return min(initial * factor**exponent, cap)


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
