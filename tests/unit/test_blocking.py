"""run_blocking: results, errors and contextvars cross the thread; the threads never hold the exit."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from ankaios_agent.agent.blocking import DaemonThreadPool, run_blocking

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
    never = threading.Event()
    try:
        hung = pool.submit(never.wait)
        assert await asyncio.wrap_future(pool.submit(lambda: 42)) == 42
        pool.shutdown(wait=True)  # returns although a thread is parked in never.wait()
        assert not hung.done()
        with pytest.raises(RuntimeError):
            pool.submit(lambda: None)
    finally:
        never.set()


def test_shutdown_can_cancel_what_has_not_started() -> None:
    pool = DaemonThreadPool(max_workers=1)
    never = threading.Event()
    try:
        pool.submit(never.wait)
        queued = pool.submit(lambda: None)
        pool.shutdown(cancel_futures=True)
        assert queued.cancelled()
    finally:
        never.set()


def test_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError):
        DaemonThreadPool(max_workers=0)
