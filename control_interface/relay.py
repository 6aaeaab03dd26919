"""The relay of one workload's control interface.

A relay has two independent halves that share nothing but the workload name,
so a workload that never reads its responses cannot stop its requests:

* **reader** (``output`` → server): the FIFO is opened ``O_RDONLY|O_NONBLOCK``
  (never blocks, even without a writer) and watched with ``loop.add_reader``.
  Frames are split incrementally and each is parsed once by the dialect's
  codec; only requests the server can take are forwarded, their id prefixed
  ``<workload>@``. A request the server could not convert (it would drop the
  whole agent for it) is answered on ``input`` with an error instead. At most
  ``max_in_flight`` forwarded requests may wait for their response: when the
  workload writes more, the relay stops reading ``output`` (the workload's writes then block
  on the full pipe) until responses arrive, so a workload writing in a loop
  while the server is away or slow cannot fill the agent's memory or the
  queue in front of other workloads and state reports. EOF means the last writer left: a partial
  frame is dropped (logged, counted) and the FIFO is closed and opened again.
  Reopening matters: Linux keeps reporting POLLHUP on a read end that has seen
  its writers leave, which would spin the loop; a freshly opened read end stays
  quiet until the next writer comes *and goes*. We deliberately do not hold our
  own write end on ``output`` (the usual trick against EOF storms): that would
  hide EOF, so a writer that dies mid-frame would splice its tail onto the next
  writer's first frame. A corrupt stream (bad length prefix, oversized frame)
  has no recoverable frame boundaries, so the rest of that writer's bytes are
  discarded until it closes (EOF), then reading starts afresh.

* **writer** (server → ``input``, ``input_writer.InputWriter``): responses go into a bounded buffer (oldest
  dropped with a warning when full). ``input`` is opened
  ``O_WRONLY|O_NONBLOCK``, which fails with ENXIO while no workload reads it;
  the open is retried on a timer with back-off (fast again as soon as a
  response is waiting). Once open, the write end stays open so the workload
  never sees EOF while the agent lives, and it is watched with
  ``loop.add_reader``: epoll reports EPOLLERR on a write end whose readers are
  all gone, so we close at once (freeing unread stale bytes with the pipe)
  and wait for the next reader. A write that hits EPIPE or leaves a message
  half-written when the reader vanishes is repeated in full to the next
  reader. Limit (shared with the reference): if the last reader closes and
  a new one opens before the loop sees EPOLLERR, the kernel shows us no gap,
  and the new reader gets the rest of the cut frame. We do not hold our own
  read end on ``input``: writes would then
  "succeed" with nobody reading and a restarted workload would receive the
  tail of frames meant for its previous process.

Both FIFOs are opened with ``O_NOFOLLOW`` and must still be the inode the
agent made (``fifo.prepare`` records it); this is checked on every reopen. A
workload that replaced them (e.g. by a symlink to another workload's FIFO or to
a host file) gets its control interface closed with a warning; nothing else is
touched.

Every callback here does only non-blocking syscalls, so nothing a workload
does (never opening a FIFO, never reading, writing garbage) can block the event
loop, the server stream or another workload. No thread is used at all, so no
blocking open can be left behind when a workload goes away.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace

from ankaios_agent.agent.model import REQUEST_ID_SEPARATOR, Request, Response
from ankaios_agent.control_interface.codec import (
    Accepted,
    Answered,
    Closed,
    Codec,
    Decoded,
    Dropped,
    Rejected,
    ResponseGate,
)
from ankaios_agent.control_interface.fifo import INPUT_FIFO, OUTPUT_FIFO, ControlFolder
from ankaios_agent.control_interface.fifo_open import FifoReplaced, open_fifo
from ankaios_agent.control_interface.framing import CorruptStream, FrameDecoder
from ankaios_agent.control_interface.input_writer import InputWriter
from ankaios_agent.control_interface.relay_settings import RelayCounters, RelaySettings, worth_logging

log = logging.getLogger(__name__)


class Relay:
    """Relays one workload's FIFO pair. Runs entirely on the event loop that starts it."""

    def __init__(
        self,
        workload: str,
        folder: ControlFolder,
        forward: Callable[[Request], None],
        settings: RelaySettings,
        *,
        codec: Codec,
        backlog: Callable[[str], int] | None = None,
    ) -> None:
        self.workload = workload
        self.folder = folder.path
        self.counters = RelayCounters()
        self._forward = forward
        self._settings = settings
        self._codec = codec
        self._backlog = backlog
        self._prefix = workload + REQUEST_ID_SEPARATOR
        self._output_path = folder.path / OUTPUT_FIFO
        self._output_id = folder.output_id
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self.closed = False
        """True once the control interface was shut for a replaced FIFO; it stays shut."""
        # reader half
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
        # writer half
        self.input = InputWriter(
            workload,
            folder.path / INPUT_FIFO,
            folder.input_id,
            settings,
            self.counters,
            loop=lambda: self.loop,
            on_replaced=self._close_for_replaced_fifo,
            on_undelivered=self._notify_server_of_drop,
            expecting_more=lambda: bool(self._in_flight),
        )
        self._cancelled: set[str] = set()
        # Responses that arrived before the workload's handshake was accepted (encoded).
        self._before_handshake: collections.deque[bytes] = collections.deque()

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Open ``output`` and begin trying to open ``input``; call on the event loop."""
        if self._running or self.closed:
            return
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._open_output()
        if self._running:  # opening output may have found a replaced FIFO and closed everything
            self.input.start()

    def stop(self) -> int:
        """Stop both halves and close the FIFOs; return how many responses were not delivered."""
        self._running = False
        for timer in (self._out_timer, self._expiry_timer):
            if timer is not None:
                timer.cancel()
        self._out_timer = self._expiry_timer = None
        self._close_output()
        undelivered = self.input.stop()
        self._before_handshake.clear()
        self._held.clear()
        self._in_flight.clear()
        if undelivered:
            log.warning(
                "workload %s: control interface stopped with %d undelivered response(s)",
                self.workload,
                undelivered,
            )
        return undelivered

    def _close_for_replaced_fifo(self, reason: str) -> None:
        self.closed = True
        self.counters.closed_replaced_fifo = 1
        log.warning(
            "workload %s: %s; its control interface is closed and stays closed until the "
            "workload is recreated",
            self.workload,
            reason,
        )
        self.stop()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("relay not started")
        return self._loop

    # ---------------------------------------------------------------- reader half

    def _open_output(self) -> None:
        self._out_timer = None
        if not self._running:
            return
        try:
            fd = open_fifo(self._output_path, os.O_RDONLY, self._output_id)
        except FifoReplaced as err:
            self._close_for_replaced_fifo(str(err))
            return
        except OSError as err:
            # Someone removed or replaced the FIFO behind our back; keep trying slowly
            # rather than giving up on the workload for good (logged once per error kind).
            if err.errno != self._out_error:
                log.warning(
                    "workload %s: cannot open %s for reading (%s); retrying every %.1fs",
                    self.workload,
                    self._output_path,
                    err.strerror or err,
                    self._settings.open_retry_max,
                )
            self._out_error = err.errno
            self._out_timer = self.loop.call_later(self._settings.open_retry_max, self._open_output)
            return
        if self._out_error is not None:
            log.info("workload %s: %s is usable again", self.workload, self._output_path)
            self._out_error = None
        self._out_fd = fd
        self._update_reading()

    def _close_output(self) -> None:
        if self._out_fd is not None:
            if self._reading:
                self.loop.remove_reader(self._out_fd)
                self._reading = False
            os.close(self._out_fd)
            self._out_fd = None

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
            self.loop.add_reader(fd, self._on_output_readable)
            self._reading = True

    def _pause_reading(self) -> None:
        if self._reading and self._out_fd is not None:
            self.loop.remove_reader(self._out_fd)
            self._reading = False
            self.counters.read_pauses += 1
            if worth_logging(self.counters.read_pauses):
                log.info(
                    "workload %s: %d requests are waiting for the server; reading its control interface "
                    "paused until responses arrive (%d pauses so far)",
                    self.workload,
                    len(self._in_flight),
                    self.counters.read_pauses,
                )
        self._schedule_expiry()

    def _schedule_expiry(self) -> None:
        if self._expiry_timer is not None or not self._in_flight:
            return
        due = self._in_flight[0] + self._settings.unanswered_after - time.monotonic()
        # The oldest may be overdue yet still queued for the server: then poll, never spin.
        self._expiry_timer = self.loop.call_later(
            max(due, self._settings.unanswered_after / 4), self._expire_unanswered
        )

    def _expire_unanswered(self) -> None:
        self._expiry_timer = None
        limit = time.monotonic() - self._settings.unanswered_after
        # Both queues keep the workload's order, so the newest ``queued`` in flight are the
        # ones still waiting in front of the server; only the older ones may have been lost.
        queued = self._backlog(self.workload) if self._backlog is not None else 0
        expired = 0
        while len(self._in_flight) > queued and self._in_flight[0] <= limit:
            self._in_flight.popleft()
            expired += 1
        if expired:
            self.counters.requests_unanswered += expired
            log.warning(
                "workload %s: %d request(s) got no response within %.0fs; no longer waiting for them",
                self.workload,
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
                log.warning("workload %s: reading %s failed: %s", self.workload, self._output_path, err)
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
        self.counters.writers_left += 1
        self._codec.writer_left()
        if self._decoder.pending:
            self.counters.truncated_frames += 1
            log.warning(
                "workload %s: writer closed output in the middle of a frame; %d byte(s) dropped (%d so far)",
                self.workload,
                self._decoder.pending,
                self.counters.truncated_frames,
            )
        self._reopen_output()

    def _reopen_output(self) -> None:
        # Frames already held are complete and stay; only a partial frame is lost.
        self._decoder.reset()
        self._discarding = False
        self._close_output()
        self._open_output()

    def _consume(self, data: bytes) -> None:
        if self._discarding:
            return
        try:
            frames = self._decoder.feed(data)
        except CorruptStream as err:
            frames = err.frames
            self._discarding = True
            self.counters.corrupt_streams += 1
            log.warning(
                "workload %s: corrupt control interface stream (%s); ignoring output until the "
                "writer closes it (%d so far)",
                self.workload,
                err.reason,
                self.counters.corrupt_streams,
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

    def _handle_result(self, result: Decoded) -> None:
        if isinstance(result, Request):  # by far the most common result, so it is asked first
            self._forward_request(result)
            return
        if isinstance(result, Dropped):
            self._count_drop(result)
            return
        if isinstance(result, Rejected):
            self._reject(result)
            return
        if isinstance(result, Answered):
            self._answer(result)
            return
        if isinstance(result, Accepted):
            self.counters.handshakes_accepted += 1
            self.input.queue(result.frame)
            while self._before_handshake:
                self.input.queue(self._before_handshake.popleft())
            return
        if isinstance(result, Closed):
            self.counters.handshakes_refused += 1
            self.input.queue(result.frame)
            dropped = len(self._before_handshake)
            self._before_handshake.clear()
            self.counters.responses_dropped_session_closed += dropped
            if dropped:
                log.warning(
                    "workload %s: %d response(s) dropped: its control interface session was closed",
                    self.workload,
                    dropped,
                )

    def _forward_request(self, decoded: Request) -> None:
        # Built field by field: dataclasses.replace costs twice as much, once per request.
        request = Request(self._prefix + decoded.request_id, decoded.body, decoded.content)
        try:
            self._forward(request)
        except Exception:
            self.counters.forward_failures += 1
            log.exception("workload %s: forwarding request %r failed", self.workload, request.request_id)
            return
        self.counters.requests_forwarded += 1
        self._in_flight.append(time.monotonic())

    def _notify_server_of_drop(self, request: Request) -> None:
        """Tell the server once per request id (e.g. stop a log stream nobody reads)."""
        if request.request_id in self._cancelled:
            return
        self._cancelled.add(request.request_id)
        log.info(
            "workload %s: log entries for request %r could not be delivered; stopping that log collection",
            self.workload,
            request.request_id,
        )
        try:
            self._forward(replace(request, request_id=self._prefix + request.request_id))
        except Exception:
            self.counters.forward_failures += 1
            log.exception("workload %s: cancelling request %r failed", self.workload, request.request_id)

    def _answer(self, answered: Answered) -> None:
        self.counters.requests_answered += 1
        if worth_logging(self.counters.requests_answered):
            log.info(
                "workload %s: request answered by the agent, not sent to the server: %s "
                "(%d answered so far, logged again at twice that count)",
                self.workload,
                answered.reason,
                self.counters.requests_answered,
            )
        self.input.queue(answered.frame)

    def _reject(self, rejected: Rejected) -> None:
        self.counters.requests_rejected += 1
        if worth_logging(self.counters.requests_rejected):
            log.warning(
                "workload %s: request %r not sent to the server, which could not take it: %s "
                "(answered with an error; %d rejected so far, logged again at twice that count)",
                self.workload,
                rejected.request_id,
                rejected.reason,
                self.counters.requests_rejected,
            )
        self.input.queue(self._codec.encode_error(rejected.request_id, f"invalid request: {rejected.reason}"))

    def _count_drop(self, dropped: Dropped) -> None:
        drops = self.counters.requests_dropped
        drops[dropped.reason] = drops.get(dropped.reason, 0) + 1
        if not worth_logging(drops[dropped.reason]):
            return
        log.warning(
            "workload %s: dropped a message from the control interface: %s%s (%d of this kind so far; "
            "logged again at twice that count)",
            self.workload,
            dropped.reason.value,
            f" ({dropped.detail})" if dropped.detail else "",
            drops[dropped.reason],
        )

    # ---------------------------------------------------------------- toward the writer half

    def send(self, response: Response) -> None:
        """Queue ``response`` (id already without the routing prefix) for ``input``; never blocks."""
        if self.closed:
            self.counters.responses_dropped_closed += 1
            if worth_logging(self.counters.responses_dropped_closed):
                log.warning(
                    "workload %s: response %r dropped: its control interface was closed (%d so far)",
                    self.workload,
                    response.request_id,
                    self.counters.responses_dropped_closed,
                )
            return
        if self._in_flight:
            self._in_flight.popleft()
            if self._running and (self._held or not self._reading):
                self._release()
        gate = self._codec.gate
        if gate is ResponseGate.PASS:
            self.input.queue(self._codec.encode_response(response), self._codec.on_undelivered(response))
        elif gate is ResponseGate.HOLD:
            if len(self._before_handshake) >= self._settings.buffer_size:
                self._before_handshake.popleft()
                self.counters.responses_dropped_buffer_full += 1
            self._before_handshake.append(self._codec.encode_response(response))
        else:
            self.counters.responses_dropped_session_closed += 1
            if worth_logging(self.counters.responses_dropped_session_closed):
                log.warning(
                    "workload %s: response %r dropped: its control interface session is closed (%d so far)",
                    self.workload,
                    response.request_id,
                    self.counters.responses_dropped_session_closed,
                )
