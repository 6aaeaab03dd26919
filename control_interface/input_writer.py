"""The writer half of a relay: responses from the server into the workload's ``input`` FIFO.

A response with nothing queued before it and no other one due is written at once from
the call that brings it; the others, and whatever the pipe cannot take, wait in a
bounded buffer (the oldest is dropped with a warning when it is full). ``input`` is
opened ``O_WRONLY|O_NONBLOCK``, which fails with ENXIO while no workload reads it, so
the open is retried on a timer with back-off, fast again as soon as a response is
waiting. Once open, the write end stays open so the workload never
sees EOF while the agent lives; it is watched for readability because epoll reports
EPOLLERR on a write end whose readers are all gone, and then it is closed at once
(freeing unread stale bytes with the pipe) until the next reader comes. A frame that a
vanishing reader left half-written is written again in full to the next reader.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import itertools
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

from ankaios_agent.agent.model import Request
from ankaios_agent.control_interface.fifo import FileId
from ankaios_agent.control_interface.fifo_open import FifoReplaced, open_fifo
from ankaios_agent.control_interface.relay_settings import RelayCounters, RelaySettings, worth_logging

log = logging.getLogger(__name__)

_MAX_IOV = 64
"""Frames per writev call (far below IOV_MAX; a pipe takes at most 64 KiB anyway)."""


class InputWriter:
    """Delivers encoded frames to one workload's ``input``; runs on the relay's event loop."""

    def __init__(
        self,
        workload: str,
        path: Path,
        fifo_id: FileId,
        settings: RelaySettings,
        counters: RelayCounters,
        *,
        loop: Callable[[], asyncio.AbstractEventLoop],
        on_replaced: Callable[[str], None],
        on_undelivered: Callable[[Request], None],
        expecting_more: Callable[[], bool],
    ) -> None:
        self._workload = workload
        self._path = path
        self._fifo_id = fifo_id
        self._settings = settings
        self._counters = counters
        self._loop = loop
        self._on_replaced = on_replaced
        self._on_undelivered = on_undelivered
        # True while responses are still expected: a write then waits briefly to share them.
        self._expecting_more = expecting_more
        self._running = False
        self._in_fd: int | None = None
        self._in_timer: asyncio.TimerHandle | None = None
        self._in_retry = settings.open_retry_min
        self._in_waiting_writable = False
        self._in_error: int | None = None
        # Encoded frames for input; the first one may be partly written (``_offset`` bytes).
        self._pending: collections.deque[bytes] = collections.deque()
        # Beside each pending frame: what to tell the server if the frame is dropped undelivered.
        self._on_drop: collections.deque[Request | None] = collections.deque()
        self._offset = 0
        self._flush_scheduled = False

    def start(self) -> None:
        """Begin trying to open ``input``; call on the event loop."""
        self._running = True
        self._try_open_input()

    def stop(self) -> int:
        """Close ``input`` and drop what waits for it; return how many frames were not delivered."""
        self._running = False
        if self._in_timer is not None:
            self._in_timer.cancel()
            self._in_timer = None
        self._close_input()
        undelivered = len(self._pending)
        self._pending.clear()
        self._on_drop.clear()
        self._offset = 0
        return undelivered

    def queue(self, data: bytes, on_drop: Request | None = None) -> None:
        """Add one encoded frame for ``input``; ``on_drop`` is what to tell the server if it is dropped."""
        fd = self._in_fd
        if fd is not None and not self._pending and not self._flush_scheduled and not self._expecting_more():
            # Nothing waits in front of it and no other response is due: one non-blocking write
            # straight from here, the common case of a workload waiting for its one answer.
            try:
                written = os.write(fd, data)
            except OSError:
                written = 0  # full pipe or reader gone: the buffered path below deals with both
            if written == len(data):
                self._counters.responses_written += 1
                return
            self._offset = written
        in_flight = 1 if self._offset else 0  # a frame cut in the middle can never be dropped
        if len(self._pending) - in_flight >= self._settings.buffer_size:
            del self._pending[in_flight]
            notice = self._on_drop[in_flight]
            del self._on_drop[in_flight]
            if notice is not None:
                self._on_undelivered(notice)
            self._counters.responses_dropped_buffer_full += 1
            if worth_logging(self._counters.responses_dropped_buffer_full):
                log.warning(
                    "workload %s: %d responses are waiting for the workload to read its control interface "
                    "input; dropped the oldest (%d dropped so far; logged again at twice that count). "
                    "The workload should read /run/ankaios/control_interface/input",
                    self._workload,
                    self._settings.buffer_size,
                    self._counters.responses_dropped_buffer_full,
                )
        self._pending.append(data)
        self._on_drop.append(on_drop)
        if not self._running:
            return
        if self._in_fd is not None:
            if not self._in_waiting_writable and not self._flush_scheduled:
                # Responses that arrive together leave in one writev (one wake-up of the
                # workload instead of many).
                self._flush_scheduled = True
                if self._expecting_more():
                    # More responses are on their way: gather them into one write (each
                    # write wakes the workload) at the cost of a fraction of a millisecond.
                    self._loop().call_later(self._settings.flush_delay, self._flush_input)
                else:
                    # The last answer the workload waits for: write it now (a non-blocking
                    # writev) instead of one more loop iteration later.
                    self._flush_input()
        elif self._in_retry > self._settings.open_retry_min:
            # Something to deliver: stop the slow idle back-off and look for a reader now.
            if self._in_timer is not None:
                self._in_timer.cancel()
            self._in_retry = self._settings.open_retry_min
            self._try_open_input()

    def _try_open_input(self) -> None:
        self._in_timer = None
        if not self._running or self._in_fd is not None:
            return
        try:
            fd = open_fifo(self._path, os.O_WRONLY, self._fifo_id)
        except FifoReplaced as err:
            self._on_replaced(str(err))
            return
        except OSError as err:
            if err.errno != errno.ENXIO:  # ENXIO = no reader yet, the normal case
                if err.errno != self._in_error:
                    log.warning(
                        "workload %s: cannot open %s for writing: %s",
                        self._workload,
                        self._path,
                        err.strerror or err,
                    )
                self._in_error = err.errno
                self._in_retry = self._settings.open_retry_max
            delay = self._in_retry
            self._in_retry = min(delay * 2, self._settings.open_retry_max)
            self._in_timer = self._retry_after(delay)
            return
        self._in_error = None
        self._in_fd = fd
        self._in_retry = self._settings.open_retry_min
        # Readable never happens on a write end; the callback fires on EPOLLERR = no reader left.
        self._loop().add_reader(fd, self._on_input_reader_gone)
        if self._pending:
            self._flush_input()

    def _retry_after(self, delay: float) -> asyncio.TimerHandle:
        loop = self._loop()
        beat = self._settings.open_retry_max
        if delay < beat:
            return loop.call_later(delay, self._try_open_input)
        # At the slowest pace every idle relay retries on one common beat, so the loop wakes
        # once per beat for all of them instead of once for each (the agent's idle CPU).
        return loop.call_at((math.floor(loop.time() / beat) + 1) * beat, self._try_open_input)

    def _close_input(self) -> None:
        if self._in_fd is not None:
            self._loop().remove_reader(self._in_fd)
            if self._in_waiting_writable:
                self._loop().remove_writer(self._in_fd)
                self._in_waiting_writable = False
            os.close(self._in_fd)
            self._in_fd = None

    def _on_input_reader_gone(self) -> None:
        if self._offset:
            self._offset = 0
            self._counters.responses_rewritten += 1
            log.info(
                "workload %s: reader of input went away mid-response; it is sent again in full "
                "to the next reader",
                self._workload,
            )
        self._close_input()
        self._in_retry = self._settings.open_retry_min
        self._try_open_input()

    def _flush_input(self) -> None:
        self._flush_scheduled = False
        fd = self._in_fd
        if fd is None:
            return
        pending = self._pending
        while pending:
            buffers: list[bytes | memoryview] = [memoryview(pending[0])[self._offset :]]
            buffers.extend(itertools.islice(pending, 1, _MAX_IOV))
            try:
                written = os.writev(fd, buffers)
            except BlockingIOError:
                if not self._in_waiting_writable:
                    self._loop().add_writer(fd, self._flush_input)
                    self._in_waiting_writable = True
                return
            except OSError as err:
                if err.errno != errno.EPIPE:
                    log.warning("workload %s: writing input failed: %s", self._workload, err)
                self._on_input_reader_gone()
                return
            short = written < sum(map(len, buffers))
            self._offset += written
            while pending and self._offset >= len(pending[0]):
                self._offset -= len(pending.popleft())
                self._on_drop.popleft()
                self._counters.responses_written += 1
            if short:
                # The pipe is full: wait for the workload to read instead of spinning on EAGAIN.
                if not self._in_waiting_writable:
                    self._loop().add_writer(fd, self._flush_input)
                    self._in_waiting_writable = True
                return
        if self._in_waiting_writable:
            self._loop().remove_writer(fd)
            self._in_waiting_writable = False
