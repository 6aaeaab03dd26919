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
import collections
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
"""How long a thread beyond the first waits for work before it ends."""

_Job = tuple[concurrent.futures.Future[Any], Callable[[], Any]]


class _Parking:
    """Where one idle thread waits for its next job (None: the pool shut down)."""

    __slots__ = ("handoff",)

    def __init__(self) -> None:
        self.handoff: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()


class DaemonThreadPool(concurrent.futures.Executor):
    """A thread pool whose threads never keep the process alive.

    Threads start on demand up to ``max_workers``; a job goes to the thread that
    became idle last, so that under a trickle of calls the others stay idle and
    retire after ``idle_retire_s`` (the first thread stays). ``shutdown`` refuses
    new work and never waits for running calls.
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
        self._lock = threading.Lock()
        self._backlog: collections.deque[_Job] = collections.deque()  # while every thread is busy
        self._idle: list[_Parking] = []  # the last one parked is woken first
        self._threads = 0
        self._started = 0
        self._closed = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        job: _Job = (future, functools.partial(fn, *args, **kwargs))
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot run blocking calls after shutdown")
            if self._idle:
                self._idle.pop().handoff.put(job)
            elif self._threads < self._max_workers:
                self._threads += 1
                self._started += 1
                # The job travels through the new thread's hand-off, not its arguments, which
                # the thread would keep referenced for as long as it lives.
                parking = _Parking()
                parking.handoff.put(job)
                threading.Thread(
                    target=self._work, args=(parking,), name=f"{self._prefix}_{self._started}", daemon=True
                ).start()
            else:
                self._backlog.append(job)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        # ``wait`` is ignored on purpose: waiting for a hung engine call is what this pool avoids.
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            dropped = list(self._backlog) if cancel_futures else []
            if cancel_futures:
                self._backlog.clear()
        for future, _call in dropped:
            future.cancel()
        for parking in idle:
            parking.handoff.put(None)

    @property
    def threads(self) -> int:
        """Threads alive right now (busy or idle)."""
        with self._lock:
            return self._threads

    def _work(self, parking: _Parking) -> None:
        job = parking.handoff.get()
        try:
            while job is not None:
                _run(job)
                job = None  # nothing of a finished call stays referenced while the thread waits
                job = self._next(parking)
        finally:
            _run_exit_hooks()

    def _next(self, parking: _Parking) -> _Job | None:
        """The next job for this thread, or None when it ends (retired, or the pool shut down)."""
        with self._lock:
            if self._backlog:
                return self._backlog.popleft()
            if self._closed:
                self._threads -= 1
                return None
            self._idle.append(parking)
        while True:
            try:
                job = parking.handoff.get(timeout=self._idle_retire_s)
            except queue.Empty:
                with self._lock:
                    # Still parked means no submit chose this thread meanwhile (one that did
                    # has already handed its job over); the first thread never retires.
                    if parking in self._idle and self._threads > 1:
                        self._idle.remove(parking)
                        self._threads -= 1
                        return None
                continue
            if job is None:
                with self._lock:
                    self._threads -= 1
            return job


def _run(job: _Job) -> None:
    future, call = job
    if future.set_running_or_notify_cancel():
        try:
            result = call()
        except BaseException as err:
            future.set_exception(err)
        else:
            future.set_result(result)


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
