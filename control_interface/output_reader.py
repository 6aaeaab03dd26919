"""The reader half of a relay: requests from the workload's ``output`` FIFO to the server.

``output`` is opened ``O_RDONLY|O_NONBLOCK`` (never blocks, even without a writer) and
watched with ``loop.add_reader``. Frames are split incrementally and each is parsed
once by the dialect's codec; only requests the server can take are forwarded, their id
prefixed ``<workload>@``. What the codec answers itself (a request the server could not
convert, which would drop the whole agent for it; the handshake) goes back to the relay,
which answers on ``input``. At most ``max_in_flight`` forwarded requests may wait for
their response: when the workload writes more, the reader stops reading ``output`` (the
workload's writes then block on the full pipe) until responses arrive, so a workload
writing in a loop while the server is away or slow cannot fill the agent's memory or
the queue in front of other workloads and state reports. A request that gets no
response for long is no longer waited for, so a lost response cannot stop a workload
for good.

EOF means the last writer left: a partial frame is dropped (logged, counted) and the
FIFO is closed and opened again. Reopening matters: Linux keeps reporting POLLHUP on a
read end that has seen its writers leave, which would spin the loop; a freshly opened
read end stays quiet until the next writer comes *and goes*. We deliberately do not
hold our own write end on ``output`` (the usual trick against EOF storms): that would
hide EOF, so a writer that dies mid-frame would splice its tail onto the next writer's
first frame. A corrupt stream (bad length prefix, oversized frame) has no recoverable
frame boundaries, so the rest of that writer's bytes are discarded until it closes
(EOF), then reading starts afresh.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from ankaios_agent.agent.model import REQUEST_ID_SEPARATOR, Request
from ankaios_agent.control_interface.codec import (
    Accepted,
    Answered,
    Closed,
    Codec,
    Decoded,
    Dropped,
    Rejected,
)
from ankaios_agent.control_interface.fifo import FileId
from ankaios_agent.control_interface.fifo_open import FifoReplaced, open_fifo
from ankaios_agent.control_interface.framing import CorruptStream, FrameDecoder
from ankaios_agent.control_interface.relay_settings import RelayCounters, RelaySettings, worth_logging

log = logging.getLogger(__name__)

LocalOutcome = Rejected | Answered | Accepted | Closed
"""What the codec made of a frame that is answered on ``input`` instead of reaching the server."""


class OutputReader:
    """Reads one workload's ``output`` and forwards its requests; runs on the relay's event loop."""

    def __init__(
        self,
        workload: str,
        path: Path,
        fifo_id: FileId,
        settings: RelaySettings,
        counters: RelayCounters,
        *,
        codec: Codec,
        loop: Callable[[], asyncio.AbstractEventLoop],
        forward: Callable[[Request], None],
        answer: Callable[[LocalOutcome], None],
        on_replaced: Callable[[str], None],
        backlog: Callable[[str], int] | None,
    ) -> None:
        self._workload = workload
        self._path = path
        self._fifo_id = fifo_id
        self._settings = settings
        self._counters = counters
        self._codec = codec
        self._loop = loop
        self._forward = forward
        self._answer = answer
        self._on_replaced = on_replaced
        self._backlog = backlog
        self._prefix = workload + REQUEST_ID_SEPARATOR
        self._running = False
        self._out_fd: int | None = None
        self._out_timer: asyncio.TimerHandle | None = None
        self._decoder = FrameDecoder(settings.max_frame_size)
        self._discarding = False
        self._out_error: int | None = None
        # Back-pressure: send times of forwarded requests still without response, and
        # complete frames read but not handled yet because too many are in flight.
        self._in_flight: collections.deque[float] = collections.deque()
        self._held: collections.deque[bytes] = collections.deque()
        self._reading = False
        self._expiry_timer: asyncio.TimerHandle | None = None
        self._releasing = False

    def start(self) -> None:
        """Open ``output`` and watch it; call on the event loop."""
        self._running = True
        self._open_output()

    def stop(self) -> None:
        """Close ``output`` and forget held frames and requests in flight."""
        self._running = False
        for timer in (self._out_timer, self._expiry_timer):
            if timer is not None:
                timer.cancel()
        self._out_timer = self._expiry_timer = None
        self._close_output()
        self._held.clear()
        self._in_flight.clear()

    def expecting_responses(self) -> bool:
        """True while forwarded requests still wait for their response."""
        return bool(self._in_flight)

    def response_arrived(self) -> None:
        """One forwarded request got its response: its slot is free for the next one."""
        if self._in_flight:
            self._in_flight.popleft()
            if self._running and (self._held or not self._reading):
                self._release()

    # ---------------------------------------------------------------- opening output

    def _open_output(self) -> None:
        self._out_timer = None
        if not self._running:
            return
        try:
            fd = open_fifo(self._path, os.O_RDONLY, self._fifo_id)
        except FifoReplaced as err:
            self._on_replaced(str(err))
            return
        except OSError as err:
            # Someone removed or replaced the FIFO behind our back; keep trying slowly
            # rather than giving up on the workload for good (logged once per error kind).
            if err.errno != self._out_error:
                log.warning(
                    "workload %s: cannot open %s for reading (%s); retrying every %.1fs",
                    self._workload,
                    self._path,
                    err.strerror or err,
                    self._settings.open_retry_max,
                )
            self._out_error = err.errno
            self._out_timer = self._loop().call_later(self._settings.open_retry_max, self._open_output)
            return
        if self._out_error is not None:
            log.info("workload %s: %s is usable again", self._workload, self._path)
            self._out_error = None
        self._out_fd = fd
        self._update_reading()

    def _close_output(self) -> None:
        if self._out_fd is not None:
            if self._reading:
                self._loop().remove_reader(self._out_fd)
                self._reading = False
            os.close(self._out_fd)
            self._out_fd = None

    def _reopen_output(self) -> None:
        # Frames already held are complete and stay; only a partial frame is lost.
        self._decoder.reset()
        self._discarding = False
        self._close_output()
        self._open_output()

    # ---------------------------------------------------------------- back-pressure

    def _slots_full(self) -> bool:
        return len(self._in_flight) >= self._settings.max_in_flight

    def _update_reading(self) -> None:
        """Watch ``output`` while the workload is within its share of requests in flight.

        Only frames already read and waiting for a slot stop the watch at once. Using up
        the last slot does not: the watch stops when the workload actually writes more
        (see :meth:`_on_output_readable`), so a workload that keeps exactly its share in
        flight costs no epoll change per request.
        """
        fd = self._out_fd
        if fd is None:
            return
        if self._held:
            self._pause_reading()
        elif not self._reading and not self._slots_full():
            self._loop().add_reader(fd, self._on_output_readable)
            self._reading = True

    def _pause_reading(self) -> None:
        if self._reading and self._out_fd is not None:
            self._loop().remove_reader(self._out_fd)
            self._reading = False
            self._counters.read_pauses += 1
            if worth_logging(self._counters.read_pauses):
                log.info(
                    "workload %s: %d requests are waiting for the server; reading its control interface "
                    "paused until responses arrive (%d pauses so far)",
                    self._workload,
                    len(self._in_flight),
                    self._counters.read_pauses,
                )
        self._schedule_expiry()

    def _schedule_expiry(self) -> None:
        if self._expiry_timer is not None or not self._in_flight:
            return
        due = self._in_flight[0] + self._settings.unanswered_after - time.monotonic()
        # The oldest may be overdue yet still queued for the server: then poll, never spin.
        self._expiry_timer = self._loop().call_later(
            max(due, self._settings.unanswered_after / 4), self._expire_unanswered
        )

    def _expire_unanswered(self) -> None:
        self._expiry_timer = None
        limit = time.monotonic() - self._settings.unanswered_after
        # Both queues keep the workload's order, so the newest ``queued`` in flight are the
        # ones still waiting in front of the server; only the older ones may have been lost.
        queued = self._backlog(self._workload) if self._backlog is not None else 0
        expired = 0
        while len(self._in_flight) > queued and self._in_flight[0] <= limit:
            self._in_flight.popleft()
            expired += 1
        if expired:
            self._counters.requests_unanswered += expired
            log.warning(
                "workload %s: %d request(s) got no response within %.0fs; no longer waiting for them",
                self._workload,
                expired,
                self._settings.unanswered_after,
            )
        self._release()

    def _release(self) -> None:
        """Handle held frames while slots are free, then resume reading if within the share."""
        if self._releasing:
            # A response routed from inside forward(): the loop below goes on by itself, and
            # recursing here would nest one level per held frame.
            return
        self._releasing = True
        try:
            held = self._held
            in_flight = self._in_flight
            limit = self._settings.max_in_flight
            decode = self._codec.decode
            while held and len(in_flight) < limit and self._running:
                self._handle_result(decode(held.popleft()))
        finally:
            self._releasing = False
        if self._running:
            self._update_reading()

    # ---------------------------------------------------------------- reading and framing

    def _on_output_readable(self) -> None:
        fd = self._out_fd
        if fd is None:
            return
        for _ in range(self._settings.reads_per_wakeup):
            if self._slots_full():
                # More from a workload that has its whole share in flight: leave it in the
                # pipe (its writes block once the pipe is full) until responses free slots.
                self._pause_reading()
                return
            try:
                data = os.read(fd, self._settings.read_chunk)
            except BlockingIOError:
                return
            except OSError as err:
                log.warning("workload %s: reading %s failed: %s", self._workload, self._path, err)
                self._reopen_output()
                return
            if not data:
                self._on_output_eof()
                return
            self._consume(data)
            if not self._reading or len(data) < self._settings.read_chunk:
                # Stopped by a forward() callback, or the pipe is drained: a further read
                # would only return EAGAIN; level-triggered readiness calls us again.
                return

    def _on_output_eof(self) -> None:
        self._counters.writers_left += 1
        self._codec.writer_left()
        if self._decoder.pending:
            self._counters.truncated_frames += 1
            log.warning(
                "workload %s: writer closed output in the middle of a frame; %d byte(s) dropped (%d so far)",
                self._workload,
                self._decoder.pending,
                self._counters.truncated_frames,
            )
        self._reopen_output()

    def _consume(self, data: bytes) -> None:
        if self._discarding:
            return
        try:
            frames = self._decoder.feed(data)
        except CorruptStream as err:
            frames = err.frames
            self._discarding = True
            self._counters.corrupt_streams += 1
            log.warning(
                "workload %s: corrupt control interface stream (%s); ignoring output until the "
                "writer closes it (%d so far)",
                self._workload,
                err.reason,
                self._counters.corrupt_streams,
            )
            self._held.extend(frames)
            self._release()
            # Asked only now: the complete frames before the corrupt point may hold the hello.
            answer = self._codec.stream_corrupt()
            if answer is not None:
                self._handle_result(answer)
            return
        if frames:
            self._held.extend(frames)
            self._release()

    # ---------------------------------------------------------------- decoded frames

    def _handle_result(self, result: Decoded) -> None:
        if isinstance(result, Request):  # by far the most common result, so it is asked first
            self._forward_request(result)
            return
        if isinstance(result, Dropped):
            self._count_drop(result)
            return
        self._answer(result)

    def _forward_request(self, decoded: Request) -> None:
        # Built field by field: dataclasses.replace costs twice as much, once per request.
        request = Request(self._prefix + decoded.request_id, decoded.body, decoded.content)
        try:
            self._forward(request)
        except Exception:
            self._counters.forward_failures += 1
            log.exception("workload %s: forwarding request %r failed", self._workload, request.request_id)
            return
        self._counters.requests_forwarded += 1
        self._in_flight.append(time.monotonic())

    def _count_drop(self, dropped: Dropped) -> None:
        drops = self._counters.requests_dropped
        drops[dropped.reason] = drops.get(dropped.reason, 0) + 1
        if not worth_logging(drops[dropped.reason]):
            return
        log.warning(
            "workload %s: dropped a message from the control interface: %s%s (%d of this kind so far; "
            "logged again at twice that count)",
            self._workload,
            dropped.reason.value,
            f" ({dropped.detail})" if dropped.detail else "",
            drops[dropped.reason],
        )
