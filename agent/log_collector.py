"""Log collections: the server asks for workloads' logs under a request id; lines go back in batches.

A request starts one task per requested workload whose log can be read. Each
task reads its runtime's log (``agent.ports.LogSource``) and hands
:class:`LogEntries` to the sink, one message per batch the runtime read, split
so that no encoded message exceeds :data:`MAX_RESPONSE_BYTES`; when the log
ends it sends :class:`LogsStopped` for that workload. The rules, as the server
and the requesting CLI or workload observe them:

* workloads are looked up by workload name only; entries and stops echo the
  instance name exactly as requested, and the server's request id unchanged;
* a workload that cannot be served (unknown here, no container yet, a runtime
  without logs) is skipped with an info line and nothing is sent for it; a log
  that cannot be opened or breaks is logged and ends with a stop;
* a second request with the same id replaces the first; a cancel stops every
  task of its request at once and sends nothing; ``stop_all`` does the same for
  every request (the server connection broke with an error, or shutdown);
* one entry that alone is larger than the limit is cut at a UTF-8 boundary,
  marked `` [truncated]`` and followed by a notice entry, both in a message of
  their own.

The sink's ``put`` is awaited, so a server that reads slowly slows the tasks
down (and, through the runtime's bounded buffer, the reading from Podman)
instead of letting messages pile up in memory.

This module is pure of gRPC; the encoded size is computed with protobuf's
wire rules for ``ank_base.LogEntriesResponse``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from ankaios_agent.agent.errors import RuntimeLogsFailed
from ankaios_agent.agent.model import (
    InstanceName,
    LogEntries,
    LogEntry,
    LogsCancelRequest,
    LogsRequest,
    LogsStopped,
)
from ankaios_agent.agent.ports import LogBatch, LogOptions, LogSource
from ankaios_agent.agent.wire_format import length_delimited_size

logger = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 2 * 1024 * 1024
"""Largest encoded LogEntriesResponse the agent sends (the server refuses messages over 4 MiB)."""

TRUNCATED_SUFFIX = " [truncated]"
TRUNCATED_NOTICE = "The previous message was truncated due to exceeding the maximum 2 MB size."

LogMessage = LogEntries | LogsStopped


class LogSink(Protocol):
    """Where collected messages go; ``put`` returns once there is room for the message."""

    async def put(self, msg: LogMessage) -> None: ...


@dataclass(frozen=True)
class LogTarget:
    """A workload this agent can read the log of: its own instance name and its runtime."""

    instance: InstanceName
    source: LogSource


@dataclass(frozen=True)
class Unavailable:
    """Why a requested workload is not served (logged, nothing is sent)."""

    reason: str


LogTargetLookup = Callable[[str], LogTarget | Unavailable]
"""Finds a workload by its name (the agent and id of the request are not compared)."""


def log_target(
    instance: InstanceName | None, has_container: bool, runtime: object
) -> LogTarget | Unavailable:
    """What a lookup answers for a workload of this agent (None: no such workload here).

    ``has_container``: the workload's loop holds a container (or pods) of it now.
    """
    if instance is None:
        return Unavailable("no such workload on this agent")
    if not has_container:
        return Unavailable("it has no workload ID yet")
    if not isinstance(runtime, LogSource):
        return Unavailable(
            f"its runtime {getattr(runtime, 'name', type(runtime).__name__)!r} cannot read logs"
        )
    return LogTarget(instance, runtime)


# --- sizes and splitting (pure) -------------------------------------------------------------


def _string_field_size(text: str) -> int:
    """proto3 leaves an empty string out."""
    length = len(text.encode("utf-8"))
    return length_delimited_size(length) if length else 0


def _instance_size(instance: InstanceName) -> int:
    return (
        _string_field_size(instance.workload)
        + _string_field_size(instance.agent)
        + _string_field_size(instance.id)
    )


def entry_size(entry: LogEntry) -> int:
    """Encoded size of one LogEntry message (without the field header around it)."""
    return length_delimited_size(_instance_size(entry.instance)) + _string_field_size(entry.message)


def entry_field_size(entry: LogEntry) -> int:
    """What one more entry adds to an encoded LogEntriesResponse."""
    return length_delimited_size(entry_size(entry))


def truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding has at most ``max_bytes`` bytes."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[: max(max_bytes, 0)].decode("utf-8", errors="ignore")


def pack_entries(
    request_id: str,
    instance: InstanceName,
    lines: Iterable[str],
    limit: int = MAX_RESPONSE_BYTES,
) -> Iterator[LogEntries]:
    """The messages for one batch of lines: greedily filled, none larger than ``limit`` bytes."""
    name_field = length_delimited_size(_instance_size(instance))
    sizes: dict[int, int] = {}  # UTF-8 length of a line -> what its entry adds to the message
    current: list[LogEntry] = []
    current_size = 0
    for line in lines:
        length = len(line) if line.isascii() else len(line.encode("utf-8"))
        size = sizes.get(length, 0)
        if not size:
            entry_length = name_field + (length_delimited_size(length) if length else 0)
            size = sizes[length] = length_delimited_size(entry_length)
        entry = LogEntry(instance, line)
        if size > limit:
            if current:
                yield LogEntries(request_id, tuple(current))
                current, current_size = [], 0
            yield LogEntries(request_id, _truncated(entry, limit))
            continue
        if current and current_size + size > limit:
            yield LogEntries(request_id, tuple(current))
            current, current_size = [], 0
        current.append(entry)
        current_size += size
    if current:
        yield LogEntries(request_id, tuple(current))


def _truncated(entry: LogEntry, limit: int) -> tuple[LogEntry, LogEntry]:
    notice = LogEntry(entry.instance, TRUNCATED_NOTICE)
    overhead = entry_field_size(LogEntry(entry.instance, "")) + length_delimited_size(0)
    # Room for the notice and the suffix, and ten bytes for the length varints growing.
    room = limit - overhead - len(TRUNCATED_SUFFIX) - entry_field_size(notice) - 10
    return LogEntry(entry.instance, truncate_utf8(entry.message, room) + TRUNCATED_SUFFIX), notice


# --- the collector ----------------------------------------------------------------------------


@dataclass
class _Collection:
    request_id: str
    tasks: dict[InstanceName, asyncio.Task[None]]


class LogCollector:
    """Runs the log collections of this agent (all on the event loop)."""

    def __init__(self, lookup: LogTargetLookup, sink: LogSink, *, limit: int = MAX_RESPONSE_BYTES) -> None:
        self._lookup = lookup
        self._sink = sink
        self._limit = limit
        self._collections: dict[str, _Collection] = {}

    @property
    def active(self) -> dict[str, tuple[InstanceName, ...]]:
        """Request id → the requested instance names still being read."""
        return {rid: tuple(c.tasks) for rid, c in self._collections.items()}

    def start(self, request: LogsRequest) -> None:
        """Begin a collection; replaces (and stops) one already running under the same id."""
        previous = self._collections.pop(request.request_id, None)
        if previous is not None:
            logger.info("log request %s is started again; the earlier collection stops", request.request_id)
            _cancel(previous)
        options = LogOptions(
            follow=request.follow, tail=request.tail, since=request.since, until=request.until
        )
        collection = _Collection(request.request_id, {})
        for requested in dict.fromkeys(request.workloads):
            found = self._lookup(requested.workload)
            if isinstance(found, Unavailable):
                logger.info(
                    "not collecting logs of %s for request %s: %s",
                    requested.workload,
                    request.request_id,
                    found.reason,
                )
                continue
            task = asyncio.create_task(
                self._collect(collection, requested, found, options),
                name=f"logs {request.request_id} {requested.workload}",
            )
            collection.tasks[requested] = task
        if collection.tasks:
            self._collections[request.request_id] = collection
        else:
            logger.info("log request %s names no workload this agent can serve", request.request_id)

    def cancel(self, request: LogsCancelRequest) -> None:
        """Stop every log of the request at once (nothing is sent); unknown ids are ignored."""
        collection = self._collections.pop(request.request_id, None)
        if collection is not None:
            logger.info("log request %s cancelled", request.request_id)
            _cancel(collection)

    async def stop_all(self) -> None:
        """Stop every collection without sending anything and wait until their tasks are gone."""
        collections, self._collections = list(self._collections.values()), {}
        tasks = [task for collection in collections for task in collection.tasks.values()]
        for collection in collections:
            _cancel(collection)
        if tasks:
            logger.info("stopped %d log collection(s)", len(collections))
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _collect(
        self, collection: _Collection, requested: InstanceName, target: LogTarget, options: LogOptions
    ) -> None:
        rid = collection.request_id
        try:
            async with contextlib.aclosing(target.source.logs(target.instance, options)) as batches:
                async for batch in batches:
                    await self._deliver(rid, requested, batch)
                    # A sink with room returns at once; give the other tasks their turn anyway.
                    await asyncio.sleep(0)
        except RuntimeLogsFailed as err:
            logger.warning("log of %s for request %s ended: %s", requested.workload, rid, err.reason)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("log of %s for request %s failed", requested.workload, rid)
        try:
            await self._sink.put(LogsStopped(rid, requested))
        finally:
            collection.tasks.pop(requested, None)
            if not collection.tasks and self._collections.get(rid) is collection:
                del self._collections[rid]

    async def _deliver(self, rid: str, requested: InstanceName, batch: LogBatch) -> None:
        for msg in pack_entries(rid, requested, batch, self._limit):
            await self._sink.put(msg)


def _cancel(collection: _Collection) -> None:
    for task in collection.tasks.values():
        task.cancel()


class LogOutbox(Protocol):
    """What :class:`OutboxLogSink` needs of the outbox (``agent.outbox.Outbox``)."""

    def send(self, msg: LogMessage) -> None: ...

    async def wait_logs_below(self, limit: int) -> None: ...


class OutboxLogSink:
    """Adapts the never-blocking outbox to :class:`LogSink`: waits while too many logs are queued.

    A message is queued only once fewer than ``high_water`` log messages wait
    for the writer; other messages (states, requests) are never held back by
    this and queue behind at most ``high_water`` log messages. The wait is the
    outbox's own signal, so a server that lags costs no wake-ups.
    """

    def __init__(self, outbox: LogOutbox, *, high_water: int = 16) -> None:
        if high_water < 1:
            raise ValueError("the high-water mark must be at least 1")
        self._outbox = outbox
        self._high_water = high_water

    async def put(self, msg: LogMessage) -> None:
        await self._outbox.wait_logs_below(self._high_water)
        self._outbox.send(msg)


__all__ = [
    "MAX_RESPONSE_BYTES",
    "TRUNCATED_NOTICE",
    "TRUNCATED_SUFFIX",
    "LogCollector",
    "LogMessage",
    "LogOutbox",
    "LogSink",
    "LogTarget",
    "LogTargetLookup",
    "OutboxLogSink",
    "Unavailable",
    "entry_field_size",
    "entry_size",
    "log_target",
    "pack_entries",
    "truncate_utf8",
]
