"""Every tunable delay and count of the agent, plus the clock the loops sleep on.

Time is injected, never monkeypatched. Production code uses
``AgentTimings()`` and ``SystemClock()``; tests pass tiny intervals and a
fake clock, so retries and back-off run in microseconds without changing the
logic under test.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


def uniform_ms(upper: int) -> int:
    """A uniformly random whole number of milliseconds in [0, upper], both ends included."""
    return random.randint(0, upper)


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
    # Retries without limit (v1.0.1): before retry k a random delay of up to
    # min(initial * 2**(k-1), cap) milliseconds ("full jitter").
    create_backoff_initial_ms: int = 500
    create_backoff_cap_ms: int = 300_000
    # Draws the jittered delay; tests pass a deterministic one.
    jitter_ms: Callable[[int], int] = field(default=uniform_ms, compare=False)

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
        if self.create_backoff_initial_ms < 0 or self.create_backoff_cap_ms < 0:
            raise ValueError("the create back-off must not be negative")

    def create_backoff_max_ms(self, retry: int) -> int:
        """The largest delay in ms before retry number ``retry`` (1-based) of a failing create.

        The exponent is capped before shifting, so a create failing for weeks never
        overflows nor wraps to no delay.
        """
        initial, cap = self.create_backoff_initial_ms, self.create_backoff_cap_ms
        if retry <= 0 or initial == 0:
            return 0
        if initial >= cap:
            return cap
        exponent = min(retry - 1, cap.bit_length())
        return min(initial << exponent, cap)

    def create_retry_delay(self, retry: int) -> float:
        """The delay in seconds before retry ``retry``: a random whole number of ms up to the maximum."""
        upper = self.create_backoff_max_ms(retry)
        drawn = self.jitter_ms(upper)
        return max(0, min(drawn, upper)) / 1000

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
