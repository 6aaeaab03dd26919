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
reference agent, and dropping would lose states. Requests of workloads cannot
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

from ankaios_agent.agent.model import REQUEST_ID_SEPARATOR, Request, ToServerMessageV1
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

    def send(self, msg: ToServerMessageV1) -> None:
        """Queue ``msg`` behind everything already queued. Call on the event loop."""
        self._queue.append(msg)
        if isinstance(msg, Request):
            self._requests[_workload_of(msg)] += 1
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

    def queued_requests(self, workload: str) -> int:
        """Control-interface requests of ``workload`` not yet written to the server."""
        return self._requests.get(workload, 0)

    async def peek(self) -> ToServerMessageV1:
        """Wait until a message is queued and return the oldest one without removing it."""
        while not self._queue:
            self._not_empty.clear()
            await self._not_empty.wait()
        return self._queue[0]

    def confirm(self, msg: ToServerMessageV1) -> None:
        """Remove ``msg`` from the head once it is written (or deliberately dropped).

        Raises ValueError if ``msg`` is not the head: that would mean two
        consumers, which the connection never does.
        """
        if not self._queue or self._queue[0] is not msg:
            raise ValueError("confirm() must be called with the message returned by peek()")
        self._queue.popleft()
        if isinstance(msg, Request):
            workload = _workload_of(msg)
            self._requests[workload] -= 1
            if not self._requests[workload]:
                del self._requests[workload]
        if self._warned and len(self._queue) <= self._warn_above // 2:
            self._warned = False
            logger.info("the backlog for the server is down to %d messages", len(self._queue))


def _workload_of(request: Request) -> str:
    return request.request_id.partition(REQUEST_ID_SEPARATOR)[0]
