"""run_blocking: results, errors and contextvars cross the thread; the threads never hold the exit."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading
import time
import weakref
from collections.abc import Callable

import pytest

from ankaios_agent.agent.blocking import DaemonThreadPool, at_thread_exit, run_blocking

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


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_threads_beyond_the_first_retire_when_idle_and_release_what_they_held() -> None:
    pool = DaemonThreadPool(max_workers=4, idle_retire_s=0.05)
    together = threading.Barrier(4)
    released: list[str] = []

    def hold_something() -> None:
        at_thread_exit(lambda: released.append(threading.current_thread().name))
        together.wait(timeout=5)

    try:
        for future in [pool.submit(hold_something) for _ in range(4)]:
            future.result(timeout=5)
        assert pool.threads == 4
        _wait_until(lambda: pool.threads == 1)
        _wait_until(lambda: len(released) == 3)
        time.sleep(0.2)  # several more idle periods: the last thread stays
        assert pool.threads == 1
        assert pool.submit(lambda: 7).result(timeout=5) == 7
    finally:
        pool.shutdown()


def test_under_a_trickle_of_calls_the_pool_shrinks_to_one_thread() -> None:
    """The thread that became idle last takes the next job, so the others stay idle and retire."""
    pool = DaemonThreadPool(max_workers=4, idle_retire_s=0.1)
    together = threading.Barrier(4)
    try:
        for future in [pool.submit(together.wait, 5) for _ in range(4)]:
            future.result(timeout=5)
        deadline = time.monotonic() + 5
        while pool.threads > 1:
            assert time.monotonic() < deadline, f"{pool.threads} threads still alive"
            pool.submit(lambda: None).result(timeout=5)  # one call every 20 ms, below the idle time
            time.sleep(0.02)
    finally:
        pool.shutdown()


def test_shutdown_ends_idle_threads() -> None:
    pool = DaemonThreadPool(max_workers=2)
    together = threading.Barrier(2)
    for future in [pool.submit(together.wait, 5) for _ in range(2)]:
        future.result(timeout=5)
    _wait_until(lambda: pool.threads == 2)  # both parked now, none retires within the test
    pool.shutdown()
    _wait_until(lambda: pool.threads == 0)


def test_shutdown_lets_queued_jobs_finish() -> None:
    pool = DaemonThreadPool(max_workers=1)
    release = threading.Event()
    try:
        busy = pool.submit(release.wait, 5)
        queued = pool.submit(lambda: "done")
        pool.shutdown()
        release.set()
        assert busy.result(timeout=5) is True
        assert queued.result(timeout=5) == "done"
        _wait_until(lambda: pool.threads == 0)
    finally:
        release.set()


def test_a_parked_thread_keeps_nothing_of_the_jobs_it_ran() -> None:
    class Result:
        pass

    pool = DaemonThreadPool(max_workers=1)
    try:
        results = [weakref.ref(pool.submit(Result).result(timeout=5)) for _ in range(2)]
        gc.collect()
        assert [ref() for ref in results] == [None, None]  # the first job too, not only later ones
    finally:
        pool.shutdown()


def test_no_job_is_lost_while_threads_retire_and_start_again() -> None:
    pool = DaemonThreadPool(max_workers=3, idle_retire_s=0.001)
    try:
        for round_ in range(200):
            futures = [pool.submit(lambda i=i: i) for i in range(round_ % 5)]
            assert [f.result(timeout=5) for f in futures] == list(range(round_ % 5))
            time.sleep(0.002 * (round_ % 3))  # around the retire time, so both races happen
    finally:
        pool.shutdown()


def test_a_failing_exit_hook_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    pool = DaemonThreadPool(max_workers=2, idle_retire_s=0.02)
    together = threading.Barrier(2)
    released: list[int] = []

    def fail() -> None:
        raise OSError("socket already gone")

    def hold_two() -> None:
        at_thread_exit(fail)
        at_thread_exit(lambda: released.append(1))
        together.wait(timeout=5)

    try:
        for future in [pool.submit(hold_two) for _ in range(2)]:
            future.result(timeout=5)
        _wait_until(lambda: released == [1])
        assert "releasing what a retiring worker thread held failed" in caplog.text
    finally:
        pool.shutdown()


def test_pool_needs_a_positive_idle_time() -> None:
    with pytest.raises(ValueError):
        DaemonThreadPool(idle_retire_s=0)
