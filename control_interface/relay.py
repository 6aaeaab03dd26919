"""The relay of one workload's control interface.

A relay has two independent halves that share nothing but the workload name,
so a workload that never reads its responses cannot stop its requests:

* **reader** (``output`` → server, ``output_reader.OutputReader``): frames are
  read without ever blocking, parsed once by the dialect's codec, and requests
  the server can take are forwarded with their id prefixed ``<workload>@``. At
  most ``max_in_flight`` forwarded requests may wait for their response; beyond
  that the reader stops reading ``output`` until responses arrive. A request
  the server could not convert (it would drop the whole agent for it) is
  answered on ``input`` with an error instead.

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

The relay itself ties the halves together: it starts and stops both, frees a
reader slot for each response the server sends and hands the response to the
writer, holds responses back while the workload's handshake is pending (the
codec's gate), answers on ``input`` what the codec answered itself, and keeps
the counters both halves update.

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
from collections.abc import Callable
from dataclasses import replace

from ankaios_agent.agent.model import REQUEST_ID_SEPARATOR, Request, Response
from ankaios_agent.control_interface.codec import Accepted, Answered, Codec, Rejected, ResponseGate
from ankaios_agent.control_interface.fifo import INPUT_FIFO, OUTPUT_FIFO, ControlFolder
from ankaios_agent.control_interface.input_writer import InputWriter
from ankaios_agent.control_interface.output_reader import LocalOutcome, OutputReader
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
        self._prefix = workload + REQUEST_ID_SEPARATOR
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self.closed = False
        """True once the control interface was shut for a replaced FIFO; it stays shut."""
        self.output = OutputReader(
            workload,
            folder.path / OUTPUT_FIFO,
            folder.output_id,
            settings,
            self.counters,
            codec=codec,
            loop=lambda: self.loop,
            forward=forward,
            answer=self._answer_locally,
            on_replaced=self._close_for_replaced_fifo,
            backlog=backlog,
        )
        self.input = InputWriter(
            workload,
            folder.path / INPUT_FIFO,
            folder.input_id,
            settings,
            self.counters,
            loop=lambda: self.loop,
            on_replaced=self._close_for_replaced_fifo,
            on_undelivered=self._notify_server_of_drop,
            expecting_more=self.output.expecting_responses,
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
        self.output.start()
        if self._running:  # opening output may have found a replaced FIFO and closed everything
            self.input.start()

    def stop(self) -> int:
        """Stop both halves and close the FIFOs; return how many responses were not delivered."""
        self._running = False
        self.output.stop()
        undelivered = self.input.stop()
        self._before_handshake.clear()
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

    # ---------------------------------------------------------------- answers on input

    def _answer_locally(self, outcome: LocalOutcome) -> None:
        if isinstance(outcome, Rejected):
            self._reject(outcome)
            return
        if isinstance(outcome, Answered):
            self._answer(outcome)
            return
        if isinstance(outcome, Accepted):
            self.counters.handshakes_accepted += 1
            self.input.queue(outcome.frame)
            while self._before_handshake:
                self.input.queue(self._before_handshake.popleft())
            return
        self.counters.handshakes_refused += 1
        self.input.queue(outcome.frame)
        dropped = len(self._before_handshake)
        self._before_handshake.clear()
        self.counters.responses_dropped_session_closed += dropped
        if dropped:
            log.warning(
                "workload %s: %d response(s) dropped: its control interface session was closed",
                self.workload,
                dropped,
            )

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
        self.output.response_arrived()
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
