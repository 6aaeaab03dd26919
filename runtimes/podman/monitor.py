"""The podman runtime's monitor: what it maps onto the shared ``MonitorCore``.

* The event stream is filtered by this agent's ``agent=<agent>`` label.
  ``start``/``died``/``pause``/``unpause``/``remove`` events update the
  snapshot directly, so a container's ``Running(Ok)`` is reported from its
  start event even if it exits a moment later, and exits are seen in
  milliseconds.
* A relist (``GET /libpod/containers/json`` filtered by the label) diffs the
  snapshot through the pure ``events_from(old, new)``. Events handled while a
  relist is in flight win over its (older) data.
* After an outage longer than the grace period every known instance is
  reported ``Failed(Unknown)`` with the reference's text.
* ``list_owned`` lists through the same relist, so the states it returns are
  never older than a change already reported.

Idle cost: one blocked thread and one list call per (long) safety relist
interval, independent of the number of workloads.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from ankaios_agent.agent.blocking import run_blocking
from ankaios_agent.agent.errors import EngineCallFailed, EngineNotFound
from ankaios_agent.agent.model import ExecutionState, InstanceName
from ankaios_agent.agent.ports import StateChange
from ankaios_agent.runtimes.podman.client import PodmanConnection, list_containers
from ankaios_agent.runtimes.podman.engine_errors import check, podman_call
from ankaios_agent.runtimes.podman.monitor_core import MonitorCore, MonitorTimings
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


__all__ = ["Monitor", "MonitorTimings", "PodmanEvent", "events_from", "parse_event"]


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


class Monitor(MonitorCore[list[dict[str, object]]]):
    """Watches all containers of one agent; see the module docstring."""

    def __init__(
        self,
        connection: PodmanConnection,
        agent: str,
        timings: MonitorTimings | None = None,
        clock: Callable[[], float] = time.monotonic,
        lister: Callable[[], list[dict[str, object]]] | None = None,
    ) -> None:
        super().__init__(
            connection,
            name=f"podman-{agent}",
            filters={"label": [f"{AGENT_LABEL}={agent}"], "type": ["container"]},
            timings=timings,
            clock=clock,
        )
        # The relist source; tests pass a fake list instead of a Podman connection.
        self._lister = lister or functools.partial(list_containers, connection, agent)
        self._agent = agent
        self._records: dict[str, ContainerRecord] = {}
        self._expected: dict[str, InstanceName] = {}
        self._unresolved: dict[str, list[PodmanEvent]] = {}
        self._forgotten: OrderedDict[str, None] = OrderedDict()
        self._touched: dict[str, int] = {}

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

    async def list_owned(self) -> list[ContainerRecord]:
        """A fresh listing merged with newer events; raises EngineCallFailed when Podman cannot be asked."""
        await self.relist_or_raise()
        return list(self._records.values())

    # ------------------------------------------------------------ events (on the loop)

    def _on_event(self, line: bytes) -> None:
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
        except EngineNotFound:
            self._unresolved.pop(cid, None)  # gone already; the relist reports what remains
            return
        except EngineCallFailed as exc:
            logger.warning("cannot inspect container %s: %s", cid[:12], exc.reason)
            self._unresolved.pop(cid, None)  # the relist will find it if it still exists
            return
        record = record_from_inspect(data, self._agent)
        if record is None:
            self._unresolved.pop(cid, None)
            return
        self.expect(cid, record.instance)

    def _inspect(self, cid: str) -> dict[str, object]:
        with podman_call("inspect container"):
            response = check(
                "inspect container", self._connection.call_client().api.get(f"/containers/{cid}/json")
            )
        return dict(response.json())

    # ------------------------------------------------------------ relist

    def _list_call(self) -> Callable[[], list[dict[str, object]]]:
        return self._lister

    def _apply_listing(
        self, listing: list[dict[str, object]], seq_at_start: int, report_all: bool
    ) -> list[StateChange]:
        new: dict[str, ContainerRecord] = {}
        for entry in listing:
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
        old: Snapshot = {} if report_all else self._records
        vanished = [
            StateChange(record.instance, cid, ExecutionState.lost())
            for cid, record in self._records.items()
            if report_all and cid not in new
        ]
        # Forget expectations only for containers that were seen and are gone now.
        self._expected = {c: i for c, i in self._expected.items() if c in new or c not in self._records}
        self._records = new
        return events_from(old, new) + vanished

    def _outage_changes(self) -> list[StateChange]:
        return [
            StateChange(record.instance, cid, ExecutionState.unknown(ERROR_GETTING_STATE))
            for cid, record in self._records.items()
        ]

    def _latest(self) -> Sequence[StateChange]:
        if self._reported_unknown:
            return self._outage_changes()
        return [StateChange(r.instance, cid, r.state) for cid, r in self._records.items()]
