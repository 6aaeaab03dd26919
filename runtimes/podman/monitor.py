"""The monitor: one Podman event subscription plus a periodic relist (PLEG style).

* A dedicated thread holds the event stream of this agent's containers
  (filtered by the ``agent=<agent>`` label; no read timeout) and hands every
  event line to the event loop with ``call_soon_threadsafe``. It reconnects
  with exponential back-off and never touches agent state itself.
* ``start``/``died``/``pause``/``unpause``/``remove`` events update the
  snapshot directly, so a container's ``Running(Ok)`` is reported from its
  start event even if it exits a moment later, and exits are seen in
  milliseconds.
* A relist (``GET /libpod/containers/json`` filtered by the label) runs every
  ``relist_interval_s`` and whenever the stream (re)connects; the pure
  ``events_from(old, new)`` turns the difference into state changes. Events
  that arrive while a relist is in flight win over its (older) data.
* When Podman cannot be reached, states are kept for ``outage_grace_s``;
  after that every known instance is reported ``Failed(Unknown)`` with the
  reference's text, and the first successful relist reports them all again.

Idle cost: one blocked thread and one list call per relist interval,
independent of the number of workloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass, replace

from ankaios_agent.agent.blocking import run_blocking
from ankaios_agent.agent.model import ExecutionState, InstanceName
from ankaios_agent.agent.ports import StateChange
from ankaios_agent.runtimes.podman.client import PodmanConnection, error_text, is_not_found, list_containers
from ankaios_agent.runtimes.podman.event_stream import following
from ankaios_agent.runtimes.podman.states import (
    AGENT_LABEL,
    ERROR_GETTING_STATE,
    EVENT_STATUS,
    REMOVE_EVENT,
    ContainerRecord,
    record_from_inspect,
    record_from_list_entry,
)

logger = logging.getLogger(__name__)

Snapshot = Mapping[str, ContainerRecord]


@dataclass(frozen=True)
class MonitorTimings:
    relist_interval_s: float = 5.0
    relist_retry_s: float = 1.0  # while Podman is unreachable
    outage_grace_s: float = 10.0
    reconnect_initial_s: float = 0.1
    reconnect_max_s: float = 5.0
    queue_size: int = 10_000
    forgotten_memory: int = 1_000


def events_from(old: Snapshot, new: Snapshot) -> list[StateChange]:
    """State changes between two snapshots (by container id); vanished containers are Lost."""
    changes = [
        StateChange(record.instance, cid, record.state)
        for cid, record in new.items()
        if cid not in old or old[cid].state != record.state
    ]
    changes.extend(
        StateChange(record.instance, cid, ExecutionState.lost())
        for cid, record in old.items()
        if cid not in new
    )
    return changes


@dataclass(frozen=True)
class PodmanEvent:
    container_id: str
    action: str
    exit_code: int
    container_name: str
    time_ns: int


def parse_event(data: object) -> PodmanEvent | None:
    """A libpod /events item (docker-compatible shape) → PodmanEvent; None if not a container event."""
    if not isinstance(data, dict) or data.get("Type") != "container":
        return None
    actor = data.get("Actor")
    attributes = actor.get("Attributes") if isinstance(actor, dict) else None
    attributes = attributes if isinstance(attributes, dict) else {}
    container_id = data.get("id") or (actor.get("ID") if isinstance(actor, dict) else None)
    action = data.get("Action") or data.get("status")
    if not isinstance(container_id, str) or not isinstance(action, str):
        return None
    try:
        exit_code = int(attributes.get("containerExitCode", 0))
    except (TypeError, ValueError):
        exit_code = 0
    time_ns = data.get("timeNano")
    return PodmanEvent(
        container_id=container_id,
        action=action,
        exit_code=exit_code,
        container_name=str(attributes.get("name", "")),
        time_ns=time_ns if isinstance(time_ns, int) else 0,
    )


class Monitor:
    """Watches all containers of one agent; see the module docstring."""

    def __init__(
        self,
        connection: PodmanConnection,
        agent: str,
        timings: MonitorTimings | None = None,
        clock: Callable[[], float] = time.monotonic,
        lister: Callable[[], list[dict[str, object]]] | None = None,
    ) -> None:
        self._connection = connection
        # The relist source; tests pass a fake list instead of a Podman connection.
        self._list = lister or functools.partial(list_containers, connection, agent)
        self._agent = agent
        self._timings = timings or MonitorTimings()
        self._clock = clock
        self._records: dict[str, ContainerRecord] = {}
        self._expected: dict[str, InstanceName] = {}
        self._unresolved: dict[str, list[PodmanEvent]] = {}
        self._forgotten: OrderedDict[str, None] = OrderedDict()
        self._event_seq = 0
        self._touched: dict[str, int] = {}
        self._down_since: float | None = None
        self._reported_unknown = False
        self._last_success: float | None = None
        self._queue: asyncio.Queue[StateChange] | None = None
        self._wake = asyncio.Event()
        self.stream_connected = asyncio.Event()  # set while the event subscription is open
        self._dropped = 0
        self._tasks: set[asyncio.Task[None]] = set()
        # Optional observer of every emitted change and the event behind it (benchmarks use
        # the event's timeNano to measure exit-detection latency).
        self.on_change: Callable[[StateChange, PodmanEvent | None], None] | None = None

    @property
    def last_success(self) -> float | None:
        """Clock time of the last successful relist or event (for health checks)."""
        return self._last_success

    # ------------------------------------------------------------ called by the runtime

    def expect(self, container_id: str, instance: InstanceName) -> None:
        """``create`` made ``container_id`` for ``instance``; resolve events that waited for it."""
        self._expected[container_id] = instance
        waiting = self._unresolved.pop(container_id, None)
        for event in waiting or ():
            self._apply_event(event)

    def started(self, container_id: str, instance: InstanceName) -> None:
        """``create`` saw Podman accept the start: report Running(Ok) now, not ~100 ms later.

        Skipped when an event for the container was already handled (its start
        or even its exit arrived first), so this never rolls a state back.
        """
        self.expect(container_id, instance)
        record = self._records.get(container_id)
        if container_id in self._forgotten or (record is not None and record.status != "created"):
            return
        self._event_seq += 1
        self._touched[container_id] = self._event_seq
        running = ContainerRecord(container_id, instance, "running")
        self._records[container_id] = running
        self._emit(StateChange(instance, container_id, running.state), None)

    def forget(self, container_id: str) -> None:
        """The agent is deleting this container: report nothing more about it."""
        self._records.pop(container_id, None)
        self._expected.pop(container_id, None)
        self._unresolved.pop(container_id, None)
        self._forgotten[container_id] = None
        while len(self._forgotten) > self._timings.forgotten_memory:
            self._forgotten.popitem(last=False)

    def remember(self, container_id: str) -> None:
        """Deleting it failed: report it again (the next relist picks it up)."""
        self._forgotten.pop(container_id, None)
        self._wake.set()

    async def changes(self) -> AsyncIterator[StateChange]:
        """Run the monitor while the caller iterates; stops the stream thread when it stops."""
        if self._queue is not None:
            raise RuntimeError("the podman monitor supports one consumer at a time")
        queue: asyncio.Queue[StateChange] = asyncio.Queue(self._timings.queue_size)
        self._queue = queue
        filters = {"label": [f"{AGENT_LABEL}={self._agent}"], "type": ["container"]}
        events = following(
            self._connection,
            filters,
            timings=self._timings,
            listener=self,
            name=f"podman-events-{self._agent}",
        )
        try:
            async with events:
                relist = asyncio.create_task(self._relist_loop(), name="podman-relist")
                try:
                    while True:
                        yield await queue.get()
                finally:
                    relist.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await relist
        finally:
            self._queue = None

    # ------------------------------------------------------------ event stream (on the loop)

    def stream_up(self) -> None:
        logger.info("podman event stream connected; relisting containers of agent %s", self._agent)
        self.stream_connected.set()
        self._wake.set()

    def stream_down(self, reason: str) -> None:
        logger.warning("podman event stream lost (%s); reconnecting", reason)
        self.stream_connected.clear()
        self._wake.set()  # a failing relist starts the outage clock

    def event_line(self, line: bytes) -> None:
        try:
            event = parse_event(json.loads(line))
        except ValueError:
            logger.warning("ignoring undecodable podman event: %r", line[:200])
            return
        if event is not None:
            self._last_success = self._clock()
            self._apply_event(event)

    def _apply_event(self, event: PodmanEvent) -> None:
        cid = event.container_id
        if cid in self._forgotten:
            return
        self._event_seq += 1
        self._touched[cid] = self._event_seq
        record = self._records.get(cid)
        if record is None:
            if event.action == REMOVE_EVENT:
                return  # never seen alive: nothing to report
            instance = self._expected.get(cid) or self._instance_from_name(event.container_name)
            if instance is None:
                self._wait_for_identity(event)
                return
            record = ContainerRecord(cid, instance, "created")
            self._records[cid] = record
        if event.action == REMOVE_EVENT:
            del self._records[cid]
            self._expected.pop(cid, None)
            self._emit(StateChange(record.instance, cid, ExecutionState.lost()), event)
            return
        status = EVENT_STATUS.get(event.action)
        if status is None:
            return
        exit_code = event.exit_code if event.action == "died" else record.exit_code
        updated = replace(record, status=status, exit_code=exit_code)
        self._records[cid] = updated
        if updated.state != record.state or record.status == "created":
            self._emit(StateChange(updated.instance, cid, updated.state), event)

    def _instance_from_name(self, name: str) -> InstanceName | None:
        instance = InstanceName.parse(name)
        return instance if instance is not None and instance.agent == self._agent else None

    def _wait_for_identity(self, event: PodmanEvent) -> None:
        """A container with a user ``--name``: learn its instance from its labels, keep event order."""
        waiting = self._unresolved.setdefault(event.container_id, [])
        waiting.append(event)
        if len(waiting) == 1:
            self._spawn(self._resolve(event.container_id))

    async def _resolve(self, cid: str) -> None:
        try:
            data = await run_blocking(self._inspect, cid)
        except Exception as exc:
            if not is_not_found(exc):
                logger.warning("cannot inspect container %s: %s", cid[:12], error_text(exc))
            self._unresolved.pop(cid, None)  # the relist will find it if it still exists
            return
        record = record_from_inspect(data, self._agent)
        if record is None:
            self._unresolved.pop(cid, None)
            return
        self.expect(cid, record.instance)

    def _inspect(self, cid: str) -> dict[str, object]:
        response = self._connection.call_client().api.get(f"/containers/{cid}/json")
        response.raise_for_status()
        return dict(response.json())

    # ------------------------------------------------------------ relist

    async def _relist_loop(self) -> None:
        while True:
            healthy = await self.relist()
            timeout = self._timings.relist_interval_s if healthy else self._timings.relist_retry_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()

    async def relist(self) -> bool:
        """Compare Podman's list with the snapshot and report differences; False if Podman is unreachable."""
        seq_at_start = self._event_seq
        try:
            entries = await run_blocking(self._list)
        except Exception as exc:
            self._relist_failed(error_text(exc))
            return False
        new: dict[str, ContainerRecord] = {}
        for entry in entries:
            record = record_from_list_entry(entry, self._agent)
            if record is not None and record.id not in self._forgotten:
                new[record.id] = record
        # An event handled while the list call was in flight is newer than the list.
        for cid, seq in self._touched.items():
            if seq > seq_at_start:
                if cid in self._records:
                    new[cid] = self._records[cid]
                else:
                    new.pop(cid, None)
        self._touched = {cid: seq for cid, seq in self._touched.items() if seq > seq_at_start}
        old: Snapshot = self._records
        if self._reported_unknown:  # everything was reported Failed(Unknown): report all again
            old = {cid: replace(r, status="\0unreachable") for cid, r in old.items()}
        # Forget expectations only for containers that were seen and are gone now.
        self._expected = {c: i for c, i in self._expected.items() if c in new or c not in self._records}
        self._records = new
        self._recovered()
        for change in events_from(old, new):
            self._emit(change, None)
        return True

    def _relist_failed(self, reason: str) -> None:
        now = self._clock()
        if self._down_since is None:
            self._down_since = now
            logger.warning("cannot list containers of agent %s from Podman: %s", self._agent, reason)
        if not self._reported_unknown and now - self._down_since >= self._timings.outage_grace_s:
            self._reported_unknown = True
            logger.error(
                "Podman unreachable for %.0fs; reporting %d workload(s) as Failed(Unknown)",
                now - self._down_since,
                len(self._records),
            )
            for cid, record in self._records.items():
                self._emit(
                    StateChange(record.instance, cid, ExecutionState.unknown(ERROR_GETTING_STATE)), None
                )

    def _recovered(self) -> None:
        if self._down_since is not None:
            logger.info("Podman reachable again after %.1fs", self._clock() - self._down_since)
        self._down_since = None
        self._reported_unknown = False
        self._last_success = self._clock()

    # ------------------------------------------------------------ output

    def _emit(self, change: StateChange, event: PodmanEvent | None) -> None:
        if self.on_change is not None:
            self.on_change(change, event)
        if self._queue is None:
            return
        try:
            self._queue.put_nowait(change)
        except asyncio.QueueFull:
            self._dropped += 1
            logger.error(
                "state change queue full; dropped %s of %s (%d dropped so far)",
                change.state,
                change.instance.workload,
                self._dropped,
            )

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
