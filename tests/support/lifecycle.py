"""Test harness helpers around the fakes of ``ankaios_agent.agent.fakes``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ankaios_agent.agent.fakes import RecordingSink
from ankaios_agent.agent.model import ExecutionState


async def settle(rounds: int = 200) -> None:
    """Let every task that can make progress do so (all fakes complete without real waiting)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class WaitingSink(RecordingSink):
    """A RecordingSink a test can wait on; fails with the recorded states when it waits in vain."""

    async def wait_for(self, predicate: Callable[[], bool], limit: float = 5.0) -> None:
        """Wait until ``predicate()`` holds; fail with the recorded states otherwise."""

        async def _wait() -> None:
            while not predicate():
                self.changed.clear()
                # Wake on every send, and poll too: some conditions (clock, runtime) change silently.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 0.005)

        try:
            await asyncio.wait_for(_wait(), limit)
        except TimeoutError:
            dump = "\n".join(f"  {s.instance}: {s.state}" for s in self.states())
            raise AssertionError(f"condition not reached; states sent:\n{dump}") from None

    async def wait_for_state(self, workload: str, state: ExecutionState, limit: float = 5.0) -> None:
        await self.wait_for(lambda: any(s.state == state for s in self.states(workload)), limit)
