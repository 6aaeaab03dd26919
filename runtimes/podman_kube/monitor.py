"""The kube runtime's monitor: what it maps onto the shared ``MonitorCore``.

Kube pods' containers carry no agent label, so the monitor cannot ask Podman
for "this agent's containers". It watches by pod ids instead (from create or
from the ``.pods`` bookkeeping volume after an agent restart):

* the event stream carries container and pod events, unfiltered by label;
  an event about a watched pod or one of its known containers asks for a
  relist (events only mean "something changed");
* the relist asks Podman once for the containers of all watched pods and
  recombines each workload's state; a state that differs from the last one
  reported is emitted. With nothing watched there is no REST call.

After an outage longer than the grace period every watched workload is
reported ``Failed(Unknown)/"Error getting state from pods."`` (the
reference's text).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from ankaios_agent.agent.model import ExecutionState, InstanceName
from ankaios_agent.agent.ports import StateChange
from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman.monitor_core import MonitorCore, MonitorTimings
from ankaios_agent.runtimes.podman_kube.kube_api import KubeApi
from ankaios_agent.runtimes.podman_kube.states import ListedContainer, combine, pods_error

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Watch:
    pod_ids: tuple[str, ...] | None  # None: pod list unknown (unreadable .pods volume)
    runtime_id: str


@dataclass(frozen=True)
class StreamEvent:
    """The parts of a Podman event the monitor reads."""

    type: str
    actor_id: str
    pod_id: str


EVENT_FILTERS = {"type": ["container", "pod"]}


def parse_event(line: bytes) -> StreamEvent | None:
    """One line of ``GET /libpod/events``; None for lines that are not events."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    actor = data.get("Actor")
    actor = actor if isinstance(actor, dict) else {}
    attributes = actor.get("Attributes")
    attributes = attributes if isinstance(attributes, dict) else {}
    return StreamEvent(
        type=str(data.get("Type") or ""),
        actor_id=str(actor.get("ID") or data.get("id") or ""),
        pod_id=str(attributes.get("podId") or ""),
    )


class KubeMonitor(MonitorCore[list[ListedContainer]]):
    """Watches kube workloads by pod id; all state lives on the event loop."""

    def __init__(
        self,
        api: KubeApi,
        connection: PodmanConnection,
        timings: MonitorTimings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(connection, name="kube", filters=EVENT_FILTERS, timings=timings, clock=clock)
        self._api = api
        self._watched: dict[InstanceName, _Watch] = {}
        self._last: dict[InstanceName, ExecutionState] = {}
        self._pod_owner: dict[str, InstanceName] = {}
        self._container_owner: dict[str, InstanceName] = {}
        self._listed: dict[InstanceName, _Watch] = {}

    # --- what the runtime calls (on the event loop) ------------------------------

    def watch(self, instance: InstanceName, pod_ids: Sequence[str] | None, runtime_id: str) -> None:
        """Follow ``instance``; its first state is emitted by the next relist."""
        self.unwatch(instance)
        pods = None if pod_ids is None else tuple(pod_ids)
        self._watched[instance] = _Watch(pods, runtime_id)
        for pod in pods or ():
            self._pod_owner[pod] = instance
        self.request_relist()

    def unwatch(self, instance: InstanceName) -> None:
        """Stop following ``instance`` (after its delete); nothing more is emitted for it."""
        self._watched.pop(instance, None)
        self._last.pop(instance, None)
        self._pod_owner = {p: i for p, i in self._pod_owner.items() if i != instance}
        self._container_owner = {c: i for c, i in self._container_owner.items() if i != instance}

    def latest_state(self, instance: InstanceName) -> ExecutionState:
        """The state last observed for a watched instance (the pods error while none is known yet)."""
        state = self._last.get(instance)
        if state is not None:
            return state
        watch = self._watched.get(instance)
        if watch is not None and watch.pod_ids is None:
            return combine(None, [])
        return pods_error()

    def events(self) -> AsyncIterator[StateChange]:
        """Run the monitor while the caller iterates; one endless stream of changes."""
        return self.changes()

    # --- what the skeleton asks ------------------------------------------------------

    def _wants_listing(self) -> bool:
        return bool(self._watched)

    def _list_call(self) -> Callable[[], list[ListedContainer]]:
        self._listed = dict(self._watched)
        pod_ids = sorted({pod for w in self._listed.values() for pod in (w.pod_ids or ())})
        return functools.partial(self._api.containers_of_pods, pod_ids)

    def _apply_listing(
        self, listing: list[ListedContainer], seq_at_start: int, report_all: bool
    ) -> list[StateChange]:
        if report_all:
            self._last.clear()
        changes = []
        for instance, watch in self._listed.items():
            if self._watched.get(instance) is not watch:
                continue  # deleted or re-created while we were asking
            own = [c for c in listing if c.pod in (watch.pod_ids or ())]
            for container in own:
                if container.id:
                    self._container_owner[container.id] = instance
            change = self._changed(instance, watch, combine(watch.pod_ids, own))
            if change is not None:
                changes.append(change)
        return changes

    def _outage_changes(self) -> list[StateChange]:
        changes = []
        for instance, watch in self._watched.items():
            change = self._changed(instance, watch, pods_error())
            if change is not None:
                changes.append(change)
        return changes

    def _latest(self) -> Sequence[StateChange]:
        return [
            StateChange(instance=instance, runtime_id=watch.runtime_id, state=self._last[instance])
            for instance, watch in self._watched.items()
            if instance in self._last
        ]

    def _changed(self, instance: InstanceName, watch: _Watch, state: ExecutionState) -> StateChange | None:
        if self._last.get(instance) == state:
            return None
        self._last[instance] = state
        logger.debug("workload %s: %s", instance, state)
        return StateChange(instance=instance, runtime_id=watch.runtime_id, state=state)

    def _on_event(self, line: bytes) -> None:
        """Relist if the event concerns a watched pod or one of its known containers."""
        event = parse_event(line)
        if event is None:
            return
        if (
            event.pod_id in self._pod_owner
            or event.actor_id in self._pod_owner
            or event.actor_id in self._container_owner
        ):
            self.request_relist()
