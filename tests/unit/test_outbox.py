"""The outbox keeps order and loses nothing that was not confirmed."""

from __future__ import annotations

import asyncio

import pytest

from ankaios_agent.agent.model import DesiredStateRequest, ExecutionState, InstanceName, WorkloadState
from ankaios_agent.agent.outbox import MessageSink, Outbox


def _state(n: int) -> WorkloadState:
    return WorkloadState(InstanceName(f"w{n}", "a", "id"), ExecutionState.running())


async def test_peek_returns_head_until_confirmed() -> None:
    """A message leaves only on confirm: an interrupted write leaves it at the head."""
    outbox = Outbox()
    first, second = _state(1), _state(2)
    outbox.send(first)
    outbox.send(second)
    assert await outbox.peek() is first
    assert await outbox.peek() is first  # the writer died before confirming: same message again
    outbox.confirm(first)
    assert await outbox.peek() is second
    assert len(outbox) == 1


async def test_peek_waits_for_send() -> None:
    outbox = Outbox()
    waiter = asyncio.create_task(outbox.peek())
    await asyncio.sleep(0)
    assert not waiter.done()
    msg = DesiredStateRequest("@x")
    outbox.send(msg)
    assert await asyncio.wait_for(waiter, 1) is msg


async def test_order_is_kept() -> None:
    outbox = Outbox()
    sent = [_state(n) for n in range(50)]
    for msg in sent:
        outbox.send(msg)
    received = []
    while len(outbox):
        head = await outbox.peek()
        outbox.confirm(head)
        received.append(head)
    assert received == sent


async def test_confirm_of_other_message_is_refused() -> None:
    outbox = Outbox()
    outbox.send(_state(1))
    with pytest.raises(ValueError, match="peek"):
        outbox.confirm(_state(1))


async def test_backlog_warning_once(caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox(warn_above=3)
    for n in range(10):
        outbox.send(_state(n))
    assert sum("waiting for the server" in r.getMessage() for r in caplog.records) == 1


def test_outbox_is_a_message_sink() -> None:
    sink: MessageSink = Outbox()
    assert callable(sink.send)
