"""The monitor skeleton both Podman runtimes share: event stream, relist, outage grace, changes.

A runtime's monitor subclasses ``MonitorCore`` and says only what it maps:
what to list (``_list_call``), how a listing becomes state changes
(``_apply_listing``), what an event line means (``_on_event``), what to
report when Podman stays away (``_outage_changes``) and the latest state of
everything it knows (``_latest``). Everything else is here, once:

* the event-stream thread (``event_stream.following``), reconnecting with
  back-off; each (re)connect triggers a relist at once, because events may
  have been missed while it was away;
* the relist loop. While the stream is connected, exits are seen from
  events, so the relist is only a safety net and runs every
  ``relist_interval_s`` (minutes): that keeps Podman's idle cost flat. While
  the stream is down it relists every ``relist_without_stream_s``, and every
  ``relist_retry_s`` while Podman does not answer. Relists never overlap;
* outage grace: a failing relist keeps the last states for
  ``outage_grace_s``, then ``_outage_changes`` are reported once; the first
  successful relist after that reports every state again;
* the change queue: unbounded, one consumer at a time, and a change is never
  dropped. A new subscription first yields the latest state of every
  instance known, so a consumer that subscribes (again) starts from the truth;
* supervision: an unexpected exception in the relist loop or in mapping an
  event is logged with its traceback, a relist resynchronises the snapshot,
  and the loop is restarted with exponential back-off. Nothing stops
  silently while the consumer iterates.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from ankaios_agent.agent.blocking import run_blocking
from ankaios_agent.agent.errors import EngineCallFailed
from ankaios_agent.agent.ports import StateChange
from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman.engine_errors import podman_call
from ankaios_agent.runtimes.podman.event_stream import following

logger = logging.getLogger(__name__)

Listing = TypeVar("Listing")


@dataclass(frozen=True)
class MonitorTimings:
    relist_interval_s: float = 300.0  # safety relist while the event stream is connected
    relist_without_stream_s: float = 5.0  # while the stream is down but Podman answers lists
    relist_retry_s: float = 1.0  # while Podman is unreachable
    outage_grace_s: float = 10.0
    reconnect_initial_s: float = 0.1
    reconnect_max_s: float = 5.0
    restart_initial_s: float = 0.1  # back-off of a monitor task restarted after a surprise
    restart_max_s: float = 30.0
    forgotten_memory: int = 1_000


class MonitorCore(abc.ABC, Generic[Listing]):
    """One event subscription plus relist for one runtime; see the module docstring."""

    def __init__(
        self,
        connection: PodmanConnection,
        *,
        name: str,
        filters: Mapping[str, list[str]],
        timings: MonitorTimings | None,
        clock: Callable[[], float],
    ) -> None:
        self._connection = connection
        self._name = name
        self._filters = dict(filters)
        self._timings = timings or MonitorTimings()
        self._clock = clock
        self._queue: asyncio.Queue[StateChange] | None = None
        self._wake = asyncio.Event()
        self._relist_lock = asyncio.Lock()
        self.stream_connected = asyncio.Event()  # set while the event subscription is open
        self._down_since: float | None = None
        self._reported_unknown = False
        self._last_success: float | None = None
        self._event_seq = 0  # counts handled events, so a listing knows what is newer than itself
        self._failures = 0
        self._tasks: set[asyncio.Task[None]] = set()
        # Optional observer of every emitted change (benchmarks, tests).
        self.on_change: Callable[[StateChange, object | None], None] | None = None

    # ------------------------------------------------------------ what a runtime maps

    @abc.abstractmethod
    def _list_call(self) -> Callable[[], Listing]:
        """The blocking call that asks Podman for everything to compare.

        Chosen on the loop (it may read the snapshot), run in a worker thread.
        """

    @abc.abstractmethod
    def _apply_listing(self, listing: Listing, seq_at_start: int, report_all: bool) -> list[StateChange]:
        """Take ``listing`` as the new snapshot and return the changes to report.

        Events handled after ``seq_at_start`` are newer than the listing and win.
        ``report_all``: report every state, changed or not (after an outage).
        """

    @abc.abstractmethod
    def _on_event(self, line: bytes) -> None:
        """Map one event line: emit changes (``_emit``) or ask for a relist (``request_relist``)."""

    @abc.abstractmethod
    def _outage_changes(self) -> list[StateChange]:
        """What to report once Podman has been unreachable longer than the grace period."""

    @abc.abstractmethod
    def _latest(self) -> Sequence[StateChange]:
        """The latest observed state of every instance known (yielded first to a new subscriber)."""

    def _wants_listing(self) -> bool:
        """False when there is nothing to list (no REST call then)."""
        return True

    # ------------------------------------------------------------ public

    @property
    def last_success(self) -> float | None:
        """Clock time of the last successful relist or event (for health checks)."""
        return self._last_success

    def request_relist(self) -> None:
        self._wake.set()

    async def relist(self) -> bool:
        """Compare Podman's listing with the snapshot; False if Podman could not be asked."""
        try:
            await self.relist_or_raise()
        except EngineCallFailed:
            return False  # counted towards the outage already
        return True

    async def relist_or_raise(self) -> None:
        """``relist``, but a failed listing raises EngineCallFailed (after counting towards the outage)."""
        if not self._wants_listing():
            return
        async with self._relist_lock:
            seq_at_start = self._event_seq
            call = self._list_call()
            try:
                with podman_call(f"list ({self._name})"):
                    listing = await run_blocking(call)
            except EngineCallFailed as exc:
                self._relist_failed(exc.reason)
                raise
            report_all = self._reported_unknown
            self._recovered()
            for change in self._apply_listing(listing, seq_at_start, report_all):
                self._emit(change, None)

    async def changes(self) -> AsyncIterator[StateChange]:
        """Run the monitor while the caller iterates; stops the stream thread when it stops."""
        if self._queue is not None:
            raise RuntimeError(f"the {self._name} monitor supports one consumer at a time")
        queue: asyncio.Queue[StateChange] = asyncio.Queue()
        self._queue = queue
        for change in self._latest():
            queue.put_nowait(change)
        events = following(
            self._connection,
            self._filters,
            timings=self._timings,
            listener=self,
            name=f"{self._name}-events",
        )
        try:
            async with events:
                relist = asyncio.create_task(
                    self._supervised("relist loop", self._relist_loop), name=f"{self._name}-relist"
                )
                try:
                    while True:
                        yield await queue.get()
                finally:
                    relist.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await relist
        finally:
            self._queue = None
            for task in list(self._tasks):
                task.cancel()

    # ------------------------------------------------------------ StreamListener (on the loop)

    def stream_up(self) -> None:
        logger.info("%s event stream connected; relisting", self._name)
        self.stream_connected.set()
        self._wake.set()

    def stream_down(self, reason: str) -> None:
        logger.warning("%s event stream lost (%s); reconnecting", self._name, reason)
        self.stream_connected.clear()
        self._wake.set()  # a failing relist starts the outage clock

    def event_line(self, line: bytes) -> None:
        try:
            self._on_event(line)
        except Exception:
            logger.exception("%s: cannot handle Podman event %r; relisting instead", self._name, line[:200])
            self._wake.set()

    # ------------------------------------------------------------ relist loop

    async def _relist_loop(self) -> None:
        while True:
            healthy = await self.relist()
            self._failures = 0  # a relist ran to its end: a later surprise starts back-off afresh
            if not healthy:
                timeout = self._timings.relist_retry_s
            elif self.stream_connected.is_set():
                timeout = self._timings.relist_interval_s
            else:
                timeout = self._timings.relist_without_stream_s
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()

    async def _supervised(self, what: str, run: Callable[[], Coroutine[object, object, None]]) -> None:
        """Run ``run`` until cancelled; a surprise is logged and ``run`` restarted with back-off."""
        while True:
            try:
                await run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                delay = min(self._timings.restart_initial_s * 2**self._failures, self._timings.restart_max_s)
                self._failures += 1
                logger.exception(
                    "%s %s failed unexpectedly; restarting it in %.1f s", self._name, what, delay
                )
                await asyncio.sleep(delay)

    def _relist_failed(self, reason: str) -> None:
        now = self._clock()
        if self._down_since is None:
            self._down_since = now
            logger.warning("%s: cannot list from Podman, keeping the last states: %s", self._name, reason)
        if not self._reported_unknown and now - self._down_since >= self._timings.outage_grace_s:
            changes = self._outage_changes()
            self._reported_unknown = True
            logger.error(
                "%s: Podman unreachable for %.0fs; reporting %d workload(s) as Failed(Unknown)",
                self._name,
                now - self._down_since,
                len(changes),
            )
            for change in changes:
                self._emit(change, None)

    def _recovered(self) -> None:
        if self._down_since is not None:
            logger.info(
                "%s: Podman reachable again after %.1fs", self._name, self._clock() - self._down_since
            )
        self._down_since = None
        self._reported_unknown = False
        self._last_success = self._clock()

    # ------------------------------------------------------------ output

    def _emit(self, change: StateChange, event: object | None) -> None:
        if self.on_change is not None:
            self.on_change(change, event)
        if self._queue is not None:
            self._queue.put_nowait(change)  # unbounded: nothing is ever dropped

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        """A short helper task; its surprises are logged, and a relist resynchronises."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s helper task failed; relisting", self._name, exc_info=task.exception())
            self._wake.set()
