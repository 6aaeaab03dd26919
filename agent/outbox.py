"""The outbox: every message the agent sends to the server waits here, in order.

Producers (the manager, the control-interface relays through it) call
:meth:`Outbox.send`, which never blocks and never fails. The single consumer is
the server connection's writer, which uses a *peek / confirm* pair instead of a
plain ``get``: a message leaves the outbox only after gRPC has accepted the
write. If the stream breaks while a write is in progress, the message is still
at the head and the next connection sends it first, right after its hello.

Delivery guarantee, and its honest limits:

* nothing still in the outbox is lost by a reconnect;
* the message being written when the stream breaks may reach the server twice
  (at-least-once for that one message). States are level-triggered and
  requests carry ids, so a duplicate is harmless;
* a message whose write gRPC has accepted (handed to the HTTP/2 transport) but
  that the server never read before the connection died is lost: that window
  is at-most-once and bounded by the transport's send buffers. The manager
  closes it by re-sending the current state of every own workload after each
  reconnect.

The outbox is unbounded on purpose: blocking producers is what stalls the
reference agent, and dropping would lose states. Two kinds of message are
bounded here instead:

* load reports coalesce: only the latest ``AgentLoadStatus`` waits (plus the
  one being written), so hours without a server cost one message, not
  thousands of stale reports flushed before anything that matters;
* log messages (``LogEntries``, ``LogsStopped``) are counted, and a log
  collection waits in :meth:`Outbox.wait_logs_below` until the writer has
  taken them below its mark, which slows the reading from the runtime instead
  of growing the queue. When the server stream breaks, the server forgets
  the campaigns, and the connection drops their queued answers
  (:meth:`Outbox.discard_logs`) instead of sending them to the next server. Requests of workloads cannot
grow it without end: each control-interface relay lets only a bounded number
of its workload's requests wait for the server and stops reading the
workload's FIFO beyond that, so a flooding workload adds at most that many
messages in front of a state report. Its size is
logged when it grows past ``warn_above`` so a person sees a server that has
been away for a long time.
"""

from __future__ import annotations

import asyncio
import collections
import logging

from ankaios_agent.agent.model import (
    REQUEST_ID_SEPARATOR,
    AgentLoadStatus,
    LogEntries,
    LogsStopped,
    Request,
    ToServerMessageV1,
)
from ankaios_agent.agent.ports import MessageSink

__all__ = ["MessageSink", "Outbox"]

logger = logging.getLogger(__name__)


class Outbox:
    """FIFO of outgoing messages that survives reconnects (one consumer: the connection)."""

    def __init__(self, warn_above: int = 1000) -> None:
        self._queue: collections.deque[ToServerMessageV1] = collections.deque()
        self._not_empty = asyncio.Event()
        self._warn_above = warn_above
        self._warned = False
        self._requests: collections.Counter[str] = collections.Counter()
        self._logs = 0
        self._logs_taken = asyncio.Event()
        self._load: AgentLoadStatus | None = None  # the queued load report, if any
        self._peeked: ToServerMessageV1 | None = None  # the head the writer holds, if any

    def send(self, msg: ToServerMessageV1) -> None:
        """Queue ``msg`` behind everything already queued. Call on the event loop.

        A load report replaces the one still waiting (it moves to the back, in
        time order with the rest); one the writer already holds stays.
        """
        if isinstance(msg, AgentLoadStatus):
            self._drop_waiting_load()
            self._load = msg
        self._queue.append(msg)
        if isinstance(msg, Request):
            self._requests[_workload_of(msg)] += 1
        elif isinstance(msg, LogEntries | LogsStopped):
            self._logs += 1
        self._not_empty.set()
        if len(self._queue) > self._warn_above and not self._warned:
            self._warned = True
            logger.warning(
                "%d messages are waiting for the server connection; they are kept and sent in order "
                "once it is back",
                len(self._queue),
            )

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def queued_logs(self) -> int:
        """Log messages not yet written to the server."""
        return self._logs

    async def wait_logs_below(self, limit: int) -> None:
        """Return once fewer than ``limit`` log messages wait (at once if that is so already)."""
        while self._logs >= limit:
            self._logs_taken.clear()
            await self._logs_taken.wait()

    def discard_logs(self) -> int:
        """Drop every queued log message (the server that asked for them is gone); returns how many.

        Call only between sessions, when no writer holds the head.
        """
        if not self._logs:
            return 0
        kept = [m for m in self._queue if not isinstance(m, LogEntries | LogsStopped)]
        dropped = len(self._queue) - len(kept)
        self._queue = collections.deque(kept)
        self._logs = 0
        self._peeked = None
        self._logs_taken.set()
        return dropped

    def queued_requests(self, workload: str) -> int:
        """Control-interface requests of ``workload`` not yet written to the server."""
        return self._requests.get(workload, 0)

    async def peek(self) -> ToServerMessageV1:
        """Wait until a message is queued and return the oldest one without removing it."""
        while not self._queue:
            self._not_empty.clear()
            await self._not_empty.wait()
        self._peeked = self._queue[0]
        return self._peeked

    def confirm(self, msg: ToServerMessageV1) -> None:
        """Remove ``msg`` from the head once it is written (or deliberately dropped).

        Raises ValueError if ``msg`` is not the head: that would mean two
        consumers, which the connection never does.
        """
        if not self._queue or self._queue[0] is not msg:
            raise ValueError("confirm() must be called with the message returned by peek()")
        self._queue.popleft()
        self._peeked = None
        if msg is self._load:
            self._load = None
        if isinstance(msg, LogEntries | LogsStopped):
            self._logs -= 1
            self._logs_taken.set()
        elif isinstance(msg, Request):
            workload = _workload_of(msg)
            self._requests[workload] -= 1
            if not self._requests[workload]:
                del self._requests[workload]
        if self._warned and len(self._queue) <= self._warn_above // 2:
            self._warned = False
            logger.info("the backlog for the server is down to %d messages", len(self._queue))

    def _drop_waiting_load(self) -> None:
        old = self._load
        if old is None or old is self._peeked:
            return
        for index, queued in enumerate(self._queue):
            if queued is old:
                del self._queue[index]
                return


def _workload_of(request: Request) -> str:
    return request.request_id.partition(REQUEST_ID_SEPARATOR)[0]
