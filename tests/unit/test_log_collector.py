"""Log collections with a scripted log source: batching, splitting, stop, cancel, lookups, back-pressure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import pytest

from ankaios_agent.agent.errors import RuntimeLogsFailed
from ankaios_agent.agent.log_collector import (
    MAX_RESPONSE_BYTES,
    TRUNCATED_NOTICE,
    TRUNCATED_SUFFIX,
    LogCollector,
    LogMessage,
    LogTarget,
    OutboxLogSink,
    Unavailable,
    entry_field_size,
    log_target,
    pack_entries,
    truncate_utf8,
)
from ankaios_agent.agent.model import (
    ExecutionState,
    InstanceName,
    LogEntries,
    LogEntry,
    LogsCancelRequest,
    LogsRequest,
    LogsStopped,
    WorkloadState,
)
from ankaios_agent.agent.outbox import Outbox
from ankaios_agent.agent.ports import LogBatch, LogOptions
from ankaios_agent.proto import ank_base_pb2 as base
from tests.support.lifecycle import settle

AGENT = "agent_A"
WL = InstanceName("wl", AGENT, "id1")
OTHER = InstanceName("other", AGENT, "id2")


@dataclass
class ScriptedSource:
    """A log source whose batches the test feeds; ``end()`` ends a log, ``fail()`` breaks it."""

    queues: dict[str, asyncio.Queue[LogBatch | Exception | None]] = field(default_factory=dict)
    opened: list[tuple[InstanceName, LogOptions]] = field(default_factory=list)
    closed: list[InstanceName] = field(default_factory=list)
    name: str = "scripted"

    def _queue(self, workload: str) -> asyncio.Queue[LogBatch | Exception | None]:
        return self.queues.setdefault(workload, asyncio.Queue())

    def feed(self, workload: str, *lines: str) -> None:
        self._queue(workload).put_nowait(tuple(lines))

    def end(self, workload: str) -> None:
        self._queue(workload).put_nowait(None)

    def fail(self, workload: str, reason: str) -> None:
        self._queue(workload).put_nowait(RuntimeLogsFailed(InstanceName(workload, AGENT, "x"), reason))

    async def logs(self, instance: InstanceName, options: LogOptions) -> AsyncGenerator[LogBatch, None]:
        self.opened.append((instance, options))
        queue = self._queue(instance.workload)
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            self.closed.append(instance)


class RecordingLogSink:
    def __init__(self) -> None:
        self.messages: list[LogMessage] = []

    async def put(self, msg: LogMessage) -> None:
        self.messages.append(msg)

    def lines(self, request_id: str, workload: str) -> list[str]:
        return [
            e.message
            for m in self.messages
            if isinstance(m, LogEntries) and m.request_id == request_id
            for e in m.entries
            if e.instance.workload == workload
        ]

    def stops(self) -> list[LogsStopped]:
        return [m for m in self.messages if isinstance(m, LogsStopped)]


class NoLogsRuntime:
    name = "nologs"


def make(
    known: dict[str, InstanceName] | None = None,
) -> tuple[LogCollector, ScriptedSource, RecordingLogSink]:
    source = ScriptedSource()
    sink = RecordingLogSink()
    table = {WL.workload: WL, OTHER.workload: OTHER} if known is None else known

    def lookup(name: str) -> LogTarget | Unavailable:
        return log_target(table.get(name), True, source)

    return LogCollector(lookup, sink), source, sink


def request(rid: str = "agent_B@reader@1", *names: InstanceName, **options: object) -> LogsRequest:
    return LogsRequest(rid, names or (WL,), **options)  # type: ignore[arg-type]


# --- splitting ------------------------------------------------------------------------------


def _wire_size(msg: LogEntries) -> int:
    wire = base.LogEntriesResponse(
        logEntries=[
            base.LogEntry(
                workloadName=base.WorkloadInstanceName(
                    workloadName=e.instance.workload, agentName=e.instance.agent, id=e.instance.id
                ),
                message=e.message,
            )
            for e in msg.entries
        ]
    )
    return wire.ByteSize()


@pytest.mark.parametrize(
    "message",
    ["", "x", "ä" * 70, "line\r", "y" * 200_000, "€" * 1_000_000],
)
@pytest.mark.parametrize("instance", [WL, InstanceName("w", "", ""), InstanceName("ü" * 200, "a", "b")])
def test_entry_size_is_the_protobuf_encoded_size(message: str, instance: InstanceName) -> None:
    one = LogEntries("r", (LogEntry(instance, message),))
    two = LogEntries("r", (LogEntry(instance, message), LogEntry(instance, "z")))
    assert entry_field_size(one.entries[0]) == _wire_size(one)
    assert entry_field_size(one.entries[0]) + entry_field_size(two.entries[1]) == _wire_size(two)


@pytest.mark.parametrize(
    ("limit", "lines", "expected_sizes"),
    [
        # An entry of WL costs its line's length + 24 bytes of framing.
        (1000, [10, 10, 10], [3]),
        (100, [30, 30, 30], [1, 1, 1]),
        (108, [30, 30, 30], [2, 1]),
        (107, [30, 30, 30], [1, 1, 1]),
        (100, [], []),
        (100, [5] * 10, [3, 3, 3, 1]),
        (100, [76, 0, 0], [1, 2]),
    ],
)
def test_batches_are_packed_greedily_up_to_the_limit(
    limit: int, lines: list[int], expected_sizes: list[int]
) -> None:
    msgs = list(pack_entries("r", WL, ["a" * n for n in lines], limit))
    assert [len(m.entries) for m in msgs] == expected_sizes
    assert all(_wire_size(m) <= limit for m in msgs)
    assert [e.message for m in msgs for e in m.entries] == ["a" * n for n in lines]
    assert all(m.request_id == "r" for m in msgs)


@pytest.mark.parametrize("char", ["a", "é", "€", "😀"])
def test_an_entry_larger_than_the_limit_is_truncated_and_followed_by_a_notice(char: str) -> None:
    big = char * (MAX_RESPONSE_BYTES // len(char.encode()) + 100)
    msgs = list(pack_entries("r", WL, ["before", big, "after"]))
    assert [len(m.entries) for m in msgs] == [1, 2, 1]
    truncated, notice = msgs[1].entries
    assert truncated.message.endswith(TRUNCATED_SUFFIX)
    assert big.startswith(truncated.message[: -len(TRUNCATED_SUFFIX)])
    assert len(truncated.message) > len(big) // 2
    assert notice == LogEntry(WL, TRUNCATED_NOTICE)
    assert all(_wire_size(m) <= MAX_RESPONSE_BYTES for m in msgs)
    assert [msgs[0].entries[0].message, msgs[2].entries[0].message] == ["before", "after"]


@pytest.mark.parametrize(
    ("text", "max_bytes", "expected"),
    [("abc", 5, "abc"), ("abc", 2, "ab"), ("aé", 2, "a"), ("€€", 4, "€"), ("x", 0, ""), ("x", -3, "")],
)
def test_truncation_keeps_whole_utf8_characters(text: str, max_bytes: int, expected: str) -> None:
    assert truncate_utf8(text, max_bytes) == expected


# --- lookups ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instance", "has_container", "runtime", "reason"),
    [
        (None, True, ScriptedSource(), "no such workload on this agent"),
        (None, False, ScriptedSource(), "no such workload on this agent"),
        (WL, False, ScriptedSource(), "it has no workload ID yet"),
        (WL, True, NoLogsRuntime(), "its runtime 'nologs' cannot read logs"),
    ],
)
def test_workloads_that_cannot_be_served_are_named_with_the_reason(
    instance: InstanceName | None, has_container: bool, runtime: object, reason: str
) -> None:
    assert log_target(instance, has_container, runtime) == Unavailable(reason)


def test_a_servable_workload_gets_its_own_instance_and_runtime() -> None:
    source = ScriptedSource()
    assert log_target(WL, True, source) == LogTarget(WL, source)


# --- collections -----------------------------------------------------------------------------


async def test_each_batch_becomes_one_message_with_the_requested_name_and_server_id() -> None:
    collector, source, sink = make()
    requested = InstanceName("wl", "some_other_agent", "stale-id")
    collector.start(request("agent_B@reader@7", requested, follow=True, tail=-1, since="10m"))
    await settle()
    source.feed("wl", "one", "two")
    source.feed("wl", "three")
    await settle()
    assert sink.messages == [
        LogEntries("agent_B@reader@7", (LogEntry(requested, "one"), LogEntry(requested, "two"))),
        LogEntries("agent_B@reader@7", (LogEntry(requested, "three"),)),
    ]
    assert source.opened == [(WL, LogOptions(follow=True, tail=-1, since="10m"))]


async def test_the_end_of_a_log_sends_a_stop_and_forgets_the_request() -> None:
    collector, source, sink = make()
    collector.start(request("r1", WL, OTHER))
    await settle()
    source.feed("wl", "a")
    source.end("wl")
    await settle()
    assert sink.stops() == [LogsStopped("r1", WL)]
    assert collector.active == {"r1": (OTHER,)}
    source.end("other")
    await settle()
    assert sink.stops() == [LogsStopped("r1", WL), LogsStopped("r1", OTHER)]
    assert collector.active == {}


async def test_a_log_that_cannot_be_read_ends_with_a_stop() -> None:
    collector, source, sink = make()
    collector.start(request("r1"))
    await settle()
    source.fail("wl", "no container of this workload exists")
    await settle()
    assert sink.messages == [LogsStopped("r1", WL)]
    assert collector.active == {}


@pytest.mark.parametrize(
    ("known", "names", "served"),
    [
        ({}, (WL,), ()),
        ({"wl": WL}, (WL, InstanceName("ghost", AGENT, "1")), (WL,)),
        ({"wl": WL, "other": OTHER}, (OTHER, WL), (OTHER, WL)),
        ({"wl": WL}, (WL, WL), (WL,)),
    ],
)
async def test_only_workloads_that_can_be_served_are_collected_and_others_get_nothing(
    known: dict[str, InstanceName], names: tuple[InstanceName, ...], served: tuple[InstanceName, ...]
) -> None:
    collector, source, sink = make(known)
    collector.start(request("r1", *names))
    await settle()
    assert [i for i, _ in source.opened] == list(served)
    assert collector.active == ({"r1": served} if served else {})
    for instance in served:
        source.end(instance.workload)
    await settle()
    assert sink.messages == [LogsStopped("r1", i) for i in served]


async def test_cancel_stops_every_log_of_the_request_at_once_and_sends_nothing() -> None:
    collector, source, sink = make()
    collector.start(request("r1", WL, OTHER, follow=True))
    collector.start(request("r2", WL, follow=True))
    await settle()
    collector.cancel(LogsCancelRequest("r1"))
    await settle()
    assert sorted(i.workload for i in source.closed) == ["other", "wl"]
    assert collector.active == {"r2": (WL,)}
    source.feed("wl", "for r2")
    await settle()
    assert sink.messages == [LogEntries("r2", (LogEntry(WL, "for r2"),))]


async def test_cancel_of_an_unknown_request_is_ignored() -> None:
    collector, _source, sink = make()
    collector.start(request("r1", follow=True))
    await settle()
    collector.cancel(LogsCancelRequest("nope"))
    await settle()
    assert collector.active == {"r1": (WL,)}
    assert sink.messages == []


async def test_a_second_request_with_the_same_id_replaces_the_first() -> None:
    collector, source, sink = make()
    collector.start(request("r1", WL, follow=True))
    await settle()
    collector.start(request("r1", OTHER, follow=True))
    await settle()
    assert source.closed == [WL]
    assert collector.active == {"r1": (OTHER,)}
    assert sink.messages == []


async def test_stop_all_ends_every_collection_without_a_message() -> None:
    collector, source, sink = make()
    collector.start(request("r1", WL, OTHER, follow=True))
    collector.start(request("r2", WL, follow=True))
    await settle()
    await collector.stop_all()
    assert collector.active == {}
    assert len(source.closed) == 3
    assert sink.messages == []


async def test_a_slow_sink_holds_the_collection_back_instead_of_buffering() -> None:
    source = ScriptedSource()
    gate = asyncio.Event()
    delivered: list[LogMessage] = []

    class GatedSink:
        async def put(self, msg: LogMessage) -> None:
            await gate.wait()
            delivered.append(msg)

    collector = LogCollector(lambda name: LogTarget(WL, source), GatedSink())
    collector.start(request("r1", follow=True))
    await settle()
    for n in range(5):
        source.feed("wl", f"line {n}")
    await settle()
    # One batch is taken and waits at the sink; the rest stays with the source.
    assert delivered == []
    assert source.queues["wl"].qsize() == 4
    gate.set()
    await settle()
    assert [e.message for m in delivered if isinstance(m, LogEntries) for e in m.entries] == [
        f"line {n}" for n in range(5)
    ]
    await collector.stop_all()


@pytest.mark.parametrize(("queued", "sent_at_once"), [(0, True), (15, True), (16, False), (40, False)])
async def test_the_outbox_sink_waits_while_the_outbox_is_above_its_high_water_mark(
    queued: int, sent_at_once: bool
) -> None:
    outbox = Outbox()
    for n in range(queued):
        outbox.send(LogsStopped(f"old{n}", WL))
    outbox.send(WorkloadState(WL, ExecutionState.running()))  # not a log: never counts
    sink = OutboxLogSink(outbox, high_water=16)
    task = asyncio.create_task(sink.put(LogsStopped("r", WL)))
    await settle(5)
    assert task.done() is sent_at_once
    while outbox.queued_logs > 15:  # the writer takes the oldest messages
        outbox.confirm(await outbox.peek())
    await asyncio.wait_for(task, 5)
    sent = [m for m in await _drain(outbox) if isinstance(m, LogsStopped)]
    assert sent[-1] == LogsStopped("r", WL)
    assert outbox.queued_logs == 0


async def _drain(outbox: Outbox) -> list[object]:
    taken: list[object] = []
    while len(outbox):
        msg = await outbox.peek()
        outbox.confirm(msg)
        taken.append(msg)
    return taken
