"""run_blocking: results, errors and contextvars cross the thread; the threads never hold the exit."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from ankaios_agent.agent.blocking import DaemonThreadPool, install_pool, run_blocking

_who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def _fail() -> None:
    raise ValueError("engine said no")


async def test_result_error_and_contextvars_cross_the_thread() -> None:
    _who.set("loop")
    assert await run_blocking(lambda: (_who.get(), threading.current_thread().daemon)) == ("loop", True)
    with pytest.raises(ValueError, match="engine said no"):
        await run_blocking(_fail)


async def test_a_hung_call_leaves_the_pool_usable_and_shutdown_does_not_wait() -> None:
    pool = DaemonThreadPool(max_workers=2)
    previous = install_pool(pool)
    never = threading.Event()
    try:
        hung = asyncio.ensure_future(run_blocking(never.wait))
        await asyncio.sleep(0)
        assert await run_blocking(lambda: 42) == 42
        pool.shutdown(wait=True)  # returns although a thread is parked in never.wait()
        with pytest.raises(RuntimeError):
            pool.submit(lambda: None)
        hung.cancel()
    finally:
        install_pool(previous)
        never.set()


def test_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError):
        DaemonThreadPool(max_workers=0)
