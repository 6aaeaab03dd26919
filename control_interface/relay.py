"""The relay of one workload's control interface (spec §8.4, §8.5, DESIGN decision 5).

A relay has two independent halves that share nothing but the workload name,
so neither can stall the other (spec §11 item 24):

* **reader** (``output`` → server): the FIFO is opened ``O_RDONLY|O_NONBLOCK``
  (never blocks, even without a writer) and watched with ``loop.add_reader``.
  Frames are decoded incrementally; only ``request`` messages are forwarded,
  their id prefixed ``<workload>@``. EOF means the last writer left: a partial
  frame is dropped (logged, counted) and the FIFO is closed and opened again.
  Reopening matters: Linux keeps reporting POLLHUP on a read end that has seen
  its writers leave, which would spin the loop; a freshly opened read end stays
  quiet until the next writer comes *and goes*. We deliberately do not hold our
  own write end on ``output`` (the usual trick against EOF storms): that would
  hide EOF, so a writer that dies mid-frame would splice its tail onto the next
  writer's first frame. A corrupt stream (bad length prefix, oversized frame)
  has no recoverable frame boundaries, so the rest of that writer's bytes are
  discarded until it closes (EOF), then reading starts afresh.

* **writer** (server → ``input``): responses go into a bounded buffer (oldest
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

Every callback here does only non-blocking syscalls, so nothing a workload
does (never opening a FIFO, never reading, writing garbage) can block the event
loop, the server stream or another workload. No thread is used at all
(spec §11 item 29: no orphaned blocking opens).
"""

from __future__ import annotations

import asyncio
import collections
import errno
import itertools
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ankaios_agent.agent.errors import ConversionError
from ankaios_agent.agent.model import REQUEST_ID_SEPARATOR, Request, Response
from ankaios_agent.control_interface.fifo import INPUT_FIFO, OUTPUT_FIFO
from ankaios_agent.control_interface.framing import (
    MAX_FRAME_SIZE,
    CorruptStream,
    Dropped,
    DropReason,
    FrameDecoder,
    decode_to_server,
    encode_response,
)

log = logging.getLogger(__name__)


def _open_fifo(path: Path, mode: int) -> int:
    """Open ``path`` non-blocking; refuse anything but a FIFO (it may have been replaced).

    A regular file in its place would take our writes or make epoll refuse the fd.
    """
    fd = os.open(path, mode | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a FIFO any more", str(path))
    return fd


def _worth_logging(count: int) -> bool:
    """Log a repeated drop at counts 1, 2, 4, 8, ...: a workload that floods its control
    interface must not flood the device's log with one warning per message."""
    return count & (count - 1) == 0


_MAX_IOV = 64
"""Frames per writev call (far below IOV_MAX; a pipe takes at most 64 KiB anyway)."""


@dataclass(frozen=True)
class RelaySettings:
    """Tunables of every relay (injected, never monkeypatched; STYLE 13)."""

    buffer_size: int = 1024
    """Responses waiting for a workload; the oldest is dropped beyond this (spec §8.5 uses 1024)."""
    open_retry_min: float = 0.01
    """First delay before retrying to open ``input`` (no reader yet), seconds."""
    open_retry_max: float = 0.5
    """Cap of the doubling retry delay; also bounds how long a workload blocked in
    ``open(input)`` waits for the agent while nothing is to be delivered."""
    read_chunk: int = 65536
    reads_per_wakeup: int = 16
    """Bounded work per readiness callback keeps a chatty workload from starving others."""
    max_frame_size: int = MAX_FRAME_SIZE

    def __post_init__(self) -> None:
        if self.buffer_size < 1:
            raise ValueError("buffer_size must be at least 1")
        if not 0 < self.open_retry_min <= self.open_retry_max:
            raise ValueError("need 0 < open_retry_min <= open_retry_max")


@dataclass
class RelayCounters:
    """What happened on one relay; every drop is also logged with the workload name."""

    requests_forwarded: int = 0
    requests_dropped: dict[DropReason, int] = field(default_factory=dict)
    forward_failures: int = 0
    truncated_frames: int = 0
    corrupt_streams: int = 0
    responses_written: int = 0
    responses_dropped_buffer_full: int = 0
    responses_undecodable: int = 0
    responses_rewritten: int = 0


class Relay:
    """Relays one workload's FIFO pair. Runs entirely on the event loop that starts it."""

    def __init__(
        self,
        workload: str,
        folder: Path,
        forward: Callable[[Request], None],
        settings: RelaySettings,
    ) -> None:
        self.workload = workload
        self.folder = folder
        self.counters = RelayCounters()
        self._forward = forward
        self._settings = settings
        self._prefix = workload + REQUEST_ID_SEPARATOR
        self._output_path = folder / OUTPUT_FIFO
        self._input_path = folder / INPUT_FIFO
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        # reader half
        self._out_fd: int | None = None
        self._out_timer: asyncio.TimerHandle | None = None
        self._decoder = FrameDecoder(settings.max_frame_size)
        self._discarding = False
        self._out_error: int | None = None
        # writer half
        self._in_fd: int | None = None
        self._in_timer: asyncio.TimerHandle | None = None
        self._in_retry = settings.open_retry_min
        self._in_waiting_writable = False
        self._in_error: int | None = None
        # Encoded frames for input; the first one may be partly written (``_offset`` bytes).
        self._pending: collections.deque[bytes] = collections.deque()
        self._offset = 0
        self._flush_scheduled = False

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Open ``output`` and begin trying to open ``input``; call on the event loop."""
        if self._running:
            return
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._open_output()
        self._try_open_input()

    def stop(self) -> int:
        """Stop both halves and close the FIFOs; return how many responses were not delivered."""
        self._running = False
        for timer in (self._out_timer, self._in_timer):
            if timer is not None:
                timer.cancel()
        self._out_timer = self._in_timer = None
        self._close_output()
        self._close_input()
        undelivered = len(self._pending)
        self._pending.clear()
        self._offset = 0
        if undelivered:
            log.warning(
                "workload %s: control interface stopped with %d undelivered response(s)",
                self.workload,
                undelivered,
            )
        return undelivered

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
            fd = _open_fifo(self._output_path, os.O_RDONLY)
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
        self.loop.add_reader(fd, self._on_output_readable)

    def _close_output(self) -> None:
        if self._out_fd is not None:
            self.loop.remove_reader(self._out_fd)
            os.close(self._out_fd)
            self._out_fd = None

    def _on_output_readable(self) -> None:
        fd = self._out_fd
        if fd is None:
            return
        for _ in range(self._settings.reads_per_wakeup):
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
            if self._out_fd is None or len(data) < self._settings.read_chunk:
                # Stopped by a forward() callback, or the pipe is drained: a further read
                # would only return EAGAIN; level-triggered readiness calls us again.
                return

    def _on_output_eof(self) -> None:
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
        for payload in frames:
            self._handle_frame(payload)

    def _handle_frame(self, payload: bytes) -> None:
        result = decode_to_server(payload)
        if isinstance(result, Dropped):
            self._count_drop(result)
            return
        request = Request(request_id=self._prefix + result.request_id, body=result.body)
        try:
            self._forward(request)
        except Exception:
            self.counters.forward_failures += 1
            log.exception("workload %s: forwarding request %r failed", self.workload, request.request_id)
            return
        self.counters.requests_forwarded += 1

    def _count_drop(self, dropped: Dropped) -> None:
        drops = self.counters.requests_dropped
        drops[dropped.reason] = drops.get(dropped.reason, 0) + 1
        if not _worth_logging(drops[dropped.reason]):
            return
        log.warning(
            "workload %s: dropped a message from the control interface: %s%s (%d of this kind so far; "
            "logged again at twice that count)",
            self.workload,
            dropped.reason.value,
            f" ({dropped.detail})" if dropped.detail else "",
            drops[dropped.reason],
        )

    # ---------------------------------------------------------------- writer half

    def send(self, response: Response) -> None:
        """Queue ``response`` (id already without the routing prefix) for ``input``; never blocks."""
        try:
            data = encode_response(response)
        except ConversionError as err:
            self.counters.responses_undecodable += 1
            log.warning("workload %s: response dropped: %s", self.workload, err)
            return
        in_flight = 1 if self._offset else 0  # a frame cut in the middle can never be dropped
        if len(self._pending) - in_flight >= self._settings.buffer_size:
            del self._pending[in_flight]
            self.counters.responses_dropped_buffer_full += 1
            if _worth_logging(self.counters.responses_dropped_buffer_full):
                log.warning(
                    "workload %s: %d responses are waiting for the workload to read its control interface "
                    "input; dropped the oldest (%d dropped so far; logged again at twice that count). "
                    "The workload should read /run/ankaios/control_interface/input",
                    self.workload,
                    self._settings.buffer_size,
                    self.counters.responses_dropped_buffer_full,
                )
        self._pending.append(data)
        if not self._running:
            return
        if self._in_fd is not None:
            if not self._in_waiting_writable and not self._flush_scheduled:
                # Write at the end of this loop iteration: responses that arrive together
                # leave in one writev (one wake-up of the workload instead of many).
                self._flush_scheduled = True
                self.loop.call_soon(self._flush_input)
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
            fd = _open_fifo(self._input_path, os.O_WRONLY)
        except OSError as err:
            if err.errno != errno.ENXIO:  # ENXIO = no reader yet, the normal case
                if err.errno != self._in_error:
                    log.warning(
                        "workload %s: cannot open %s for writing: %s",
                        self.workload,
                        self._input_path,
                        err.strerror or err,
                    )
                self._in_error = err.errno
                self._in_retry = self._settings.open_retry_max
            delay = self._in_retry
            self._in_retry = min(delay * 2, self._settings.open_retry_max)
            self._in_timer = self.loop.call_later(delay, self._try_open_input)
            return
        self._in_error = None
        self._in_fd = fd
        self._in_retry = self._settings.open_retry_min
        # Readable never happens on a write end; the callback fires on EPOLLERR = no reader left.
        self.loop.add_reader(fd, self._on_input_reader_gone)
        if self._pending:
            self._flush_input()

    def _close_input(self) -> None:
        if self._in_fd is not None:
            self.loop.remove_reader(self._in_fd)
            if self._in_waiting_writable:
                self.loop.remove_writer(self._in_fd)
                self._in_waiting_writable = False
            os.close(self._in_fd)
            self._in_fd = None

    def _on_input_reader_gone(self) -> None:
        if self._offset:
            self._offset = 0
            self.counters.responses_rewritten += 1
            log.info(
                "workload %s: reader of input went away mid-response; it is sent again in full "
                "to the next reader",
                self.workload,
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
                    self.loop.add_writer(fd, self._flush_input)
                    self._in_waiting_writable = True
                return
            except OSError as err:
                if err.errno != errno.EPIPE:
                    log.warning("workload %s: writing input failed: %s", self.workload, err)
                self._on_input_reader_gone()
                return
            short = written < sum(len(buffer) for buffer in buffers)
            self._offset += written
            while pending and self._offset >= len(pending[0]):
                self._offset -= len(pending.popleft())
                self.counters.responses_written += 1
            if short:
                # The pipe is full: wait for the workload to read instead of spinning on EAGAIN.
                if not self._in_waiting_writable:
                    self.loop.add_writer(fd, self._flush_input)
                    self._in_waiting_writable = True
                return
        if self._in_waiting_writable:
            self.loop.remove_writer(fd)
            self._in_waiting_writable = False
