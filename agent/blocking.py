"""The one path for blocking calls (podman-py, FIFO opens) off the event loop.

The calls run on daemon threads of a pool of our own, not on asyncio's default
executor: ``asyncio.run`` and the interpreter join the default executor's
threads at exit, so one Podman call hanging in a pull or a stop would hold
the whole process after SIGTERM. A call still running when the process ends
completes or fails on Podman's side; the next agent start adopts what exists.

Threads beyond the first retire after a while without work, so the burst of a
start with many workloads does not keep its threads (each with a stack, a malloc
arena and a Podman client of its own) for the life of an idle agent; what a
thread holds for itself is released by the hooks it registered with
:func:`at_thread_exit`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# Podman calls are short except pulls and slow stops, and long-running readers (log
# streams, the event stream) have threads of their own: 8 workers keep 100 workloads
# starting in parallel without a thread (stack, malloc arena, podman-py client) for
# each of 32 workers staying resident for the life of the process.
DEFAULT_WORKERS = 8
IDLE_RETIRE_S = 10.0
"""How long a thread beyond the first waits for work before it ends (as tokio's blocking pool)."""

_Job = tuple[concurrent.futures.Future[Any], Callable[[], Any]]


class DaemonThreadPool(concurrent.futures.Executor):
    """A thread pool whose threads never keep the process alive.

    Threads start on demand up to ``max_workers`` and live for the rest of the
    process; ``shutdown`` refuses new work and never waits for running calls.
    """

    def __init__(
        self,
        max_workers: int = DEFAULT_WORKERS,
        thread_name_prefix: str = "ank-agent",
        idle_retire_s: float = IDLE_RETIRE_S,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        if idle_retire_s <= 0:
            raise ValueError("idle_retire_s must be positive")
        self._max_workers = max_workers
        self._idle_retire_s = idle_retire_s
        self._prefix = thread_name_prefix
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._closed = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot run blocking calls after shutdown")
            self._jobs.put((future, functools.partial(fn, *args, **kwargs)))
            if self._idle > 0:
                self._idle -= 1  # a parked thread takes it
            elif self._threads < self._max_workers:
                self._threads += 1
                threading.Thread(
                    target=self._work, name=f"{self._prefix}_{self._threads}", daemon=True
                ).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        # ``wait`` is ignored on purpose: waiting for a hung engine call is what this pool avoids.
        with self._lock:
            self._closed = True
            workers = self._threads
        if cancel_futures:
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job[0].cancel()
        for _ in range(workers):
            self._jobs.put(None)

    @property
    def threads(self) -> int:
        """Threads alive right now (busy or parked)."""
        with self._lock:
            return self._threads

    def _work(self) -> None:
        try:
            self._serve()
        finally:
            _run_exit_hooks()

    def _serve(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self._idle_retire_s)
            except queue.Empty:
                with self._lock:
                    # Only a thread no submit has counted on may go (each submit that found
                    # a parked thread took one from ``_idle``), and the first one stays.
                    if self._idle > 0 and self._threads > 1:
                        self._idle -= 1
                        self._threads -= 1
                        return
                continue
            if job is None:
                return
            future, call = job
            if future.set_running_or_notify_cancel():
                try:
                    result = call()
                except BaseException as err:
                    future.set_exception(err)
                else:
                    future.set_result(result)
            del job, future, call
            with self._lock:
                self._idle += 1


_exit_hooks = threading.local()


def at_thread_exit(hook: Callable[[], None]) -> None:
    """Run ``hook`` when the calling pool thread ends (e.g. close a client kept per thread).

    On a thread that is not one of the pool's, the hook never runs: such threads keep
    what they hold for the life of the process, as before."""
    hooks: list[Callable[[], None]] | None = getattr(_exit_hooks, "hooks", None)
    if hooks is None:
        hooks = _exit_hooks.hooks = []
    hooks.append(hook)


def _run_exit_hooks() -> None:
    for hook in getattr(_exit_hooks, "hooks", ()):
        try:
            hook()
        except Exception:
            logger.exception("releasing what a retiring worker thread held failed")


_pool = DaemonThreadPool()  # one per process: its threads never hold the exit, so nothing closes it


async def run_blocking(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn`` on a daemon thread, carrying over the caller's contextvars."""
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    call = functools.partial(ctx.run, fn, *args, **kwargs)
    return await loop.run_in_executor(_pool, call)
