"""The outbox keeps order and loses nothing that was not confirmed."""

from __future__ import annotations

import asyncio

import pytest

from ankaios_agent.agent.model import (
    AgentLoadStatus,
    DesiredStateRequest,
    ExecutionState,
    InstanceName,
    LogEntries,
    LogEntry,
    LogsStopped,
    WorkloadState,
)
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


def _load(cpu: int) -> AgentLoadStatus:
    return AgentLoadStatus("a", cpu, 1000)


async def _take_all(outbox: Outbox) -> list[object]:
    taken: list[object] = []
    while len(outbox):
        msg = await outbox.peek()
        outbox.confirm(msg)
        taken.append(msg)
    return taken


async def test_only_the_latest_load_report_waits() -> None:
    """Hours without a server leave one load report in the queue, behind the states in time order."""
    outbox = Outbox()
    outbox.send(_load(1))
    outbox.send(_state(1))
    for cpu in range(2, 2000):
        outbox.send(_load(cpu))
    outbox.send(_state(2))
    outbox.send(_load(2000))
    assert await _take_all(outbox) == [_state(1), _state(2), _load(2000)]


async def test_a_load_report_in_the_writers_hands_is_not_replaced() -> None:
    outbox = Outbox()
    outbox.send(_load(1))
    in_flight = await outbox.peek()
    outbox.send(_load(2))
    outbox.send(_load(3))
    outbox.confirm(in_flight)  # would raise if the head had been removed under the writer
    assert await _take_all(outbox) == [_load(3)]


async def test_log_messages_are_counted_and_waiters_wake_when_the_writer_takes_them() -> None:
    outbox = Outbox()
    stop = InstanceName("w", "a", "id")
    for n in range(3):
        outbox.send(LogsStopped(f"r{n}", stop))
    outbox.send(LogEntries("r", (LogEntry(stop, "line"),)))
    outbox.send(_state(1))
    assert outbox.queued_logs == 4
    await asyncio.wait_for(outbox.wait_logs_below(5), 1)  # below already: returns at once
    waiter = asyncio.create_task(outbox.wait_logs_below(3))
    await asyncio.sleep(0)
    outbox.confirm(await outbox.peek())
    await asyncio.sleep(0)
    assert not waiter.done()  # 3 still wait
    outbox.confirm(await outbox.peek())
    await asyncio.wait_for(waiter, 1)
    assert outbox.queued_logs == 2


async def test_discarding_logs_keeps_everything_else_in_order() -> None:
    outbox = Outbox()
    wl = InstanceName("w", "a", "id")
    outbox.send(_state(1))
    outbox.send(LogEntries("r", (LogEntry(wl, "line"),)))
    outbox.send(_state(2))
    outbox.send(LogsStopped("r", wl))
    waiter = asyncio.create_task(outbox.wait_logs_below(1))
    await asyncio.sleep(0)
    assert outbox.discard_logs() == 2
    await asyncio.wait_for(waiter, 1)
    assert outbox.queued_logs == 0
    assert outbox.discard_logs() == 0
    assert await _take_all(outbox) == [_state(1), _state(2)]
