"""One monitor for all kube workloads: one Podman event subscription plus relist.

Kube pods' containers carry no agent label, so the monitor cannot ask Podman
for "this agent's containers". It watches by pod ids instead (from create or
from the ``.pods`` bookkeeping volume after an agent restart):

* the podman monitor's ``EventStream`` thread follows Podman's event stream
  (container and pod events, unfiltered by label) and, for any event about a
  watched pod or one of its known containers, the monitor is marked dirty;
  events only mean "something changed";
* the relist, run on the event loop when dirty and every
  ``relist_interval_s``, asks Podman once for the containers of all watched
  pods and recombines each workload's state (spec §7.2.5); a change is
  emitted as a ``StateChange``. With nothing watched there is no REST call.

When Podman cannot be reached the last states stay; only an outage longer
than ``outage_grace_s`` reports ``Failed(Unknown)/"Error getting state from
pods."`` (the reference's text). The stream reconnects with back-off, and each
reconnect triggers a relist, so an exit during the outage is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from ankaios_agent.agent.blocking import run_blocking
from ankaios_agent.agent.model import ExecutionState, InstanceName
from ankaios_agent.agent.ports import StateChange
from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman.event_stream import following
from ankaios_agent.runtimes.podman.monitor import MonitorTimings
from ankaios_agent.runtimes.podman_kube.kube_api import KubeApi, KubeApiError
from ankaios_agent.runtimes.podman_kube.states import combine, pods_error

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


class KubeMonitor:
    """Watches kube workloads by pod id; all state lives on the event loop."""

    def __init__(
        self,
        api: KubeApi,
        connection: PodmanConnection,
        timings: MonitorTimings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._connection = connection
        self._timings = timings or MonitorTimings()
        self._clock = clock
        self._watched: dict[InstanceName, _Watch] = {}
        self._last: dict[InstanceName, ExecutionState] = {}
        self._pod_owner: dict[str, InstanceName] = {}
        self._container_owner: dict[str, InstanceName] = {}
        # Unbounded on purpose: entries are deduplicated per instance (only changes), and a
        # dropped change would never be sent again because ``_last`` already holds it.
        self._changes: asyncio.Queue[StateChange] = asyncio.Queue()
        self._dirty = asyncio.Event()
        self._outage_since: float | None = None
        self._running = False

    # --- what the runtime calls (on the event loop) ------------------------------

    def watch(self, instance: InstanceName, pod_ids: Sequence[str] | None, runtime_id: str) -> None:
        """Follow ``instance``; its first state is emitted by the next relist."""
        self.unwatch(instance)
        pods = None if pod_ids is None else tuple(pod_ids)
        self._watched[instance] = _Watch(pods, runtime_id)
        for pod in pods or ():
            self._pod_owner[pod] = instance
        self._dirty.set()

    def unwatch(self, instance: InstanceName) -> None:
        """Stop following ``instance`` (after its delete); nothing more is emitted for it."""
        self._watched.pop(instance, None)
        self._last.pop(instance, None)
        self._pod_owner = {p: i for p, i in self._pod_owner.items() if i != instance}
        self._container_owner = {c: i for c, i in self._container_owner.items() if i != instance}

    async def current_state(self, instance: InstanceName, pod_ids: Sequence[str] | None) -> ExecutionState:
        """The state right now, asked from Podman (used by list_owned)."""
        if pod_ids is None:
            return combine(None, [])
        try:
            containers = await run_blocking(self._api.containers_of_pods, list(pod_ids))
        except KubeApiError as err:
            logger.warning("workload %s: cannot list its pods' containers: %s", instance, err.reason)
            return pods_error()
        return combine(pod_ids, containers)

    async def events(self) -> AsyncIterator[StateChange]:
        """Run the monitor while the caller iterates; one endless stream of changes."""
        if self._running:
            raise RuntimeError("the kube monitor's events() is already being consumed")
        self._running = True
        events = following(
            self._connection, EVENT_FILTERS, timings=self._timings, listener=self, name="kube-events"
        )
        try:
            async with events:
                relist = asyncio.create_task(self._relist_loop(), name="kube-relist")
                try:
                    while True:
                        yield await self._changes.get()
                finally:
                    relist.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await relist
        finally:
            self._running = False

    # --- relist (event loop) ---------------------------------------------------------

    async def _relist_loop(self) -> None:
        while True:
            interval = self._timings.relist_interval_s
            if self._outage_since is not None:
                interval = self._timings.relist_retry_s
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.relist()
            except Exception:  # the monitor must outlive any surprise; the next relist retries
                logger.exception("kube relist failed unexpectedly")

    async def relist(self) -> None:
        """Ask Podman once for all watched pods' containers and emit what changed."""
        watched = dict(self._watched)
        if not watched:
            return
        pod_ids = sorted({pod for w in watched.values() for pod in (w.pod_ids or ())})
        try:
            containers = await run_blocking(self._api.containers_of_pods, pod_ids)
        except KubeApiError as err:
            self._on_outage(watched, err)
            return
        if self._outage_since is not None:
            logger.info("Podman answers again; kube workload states are current")
            self._outage_since = None
        for instance, watch in watched.items():
            if self._watched.get(instance) is not watch:
                continue  # deleted or re-created while we were asking
            own = [c for c in containers if c.pod in (watch.pod_ids or ())]
            for container in own:
                if container.id:
                    self._container_owner[container.id] = instance
            self._emit(instance, watch, combine(watch.pod_ids, own))

    def _on_outage(self, watched: dict[InstanceName, _Watch], err: KubeApiError) -> None:
        now = self._clock()
        if self._outage_since is None:
            self._outage_since = now
            logger.warning("cannot list kube workloads' containers, keeping last states: %s", err.reason)
            return
        if now - self._outage_since < self._timings.outage_grace_s:
            return
        for instance, watch in watched.items():
            self._emit(instance, watch, pods_error())

    def _emit(self, instance: InstanceName, watch: _Watch, state: ExecutionState) -> None:
        if self._last.get(instance) == state:
            return
        self._last[instance] = state
        logger.debug("workload %s: %s", instance, state)
        self._changes.put_nowait(StateChange(instance=instance, runtime_id=watch.runtime_id, state=state))

    # --- StreamListener: called on the loop by the EventStream thread ----------------

    def stream_up(self) -> None:
        logger.info("kube event stream connected; relisting watched pods")
        self._dirty.set()  # whatever happened while disconnected shows up in a relist

    def stream_down(self, reason: str) -> None:
        logger.warning("kube event stream lost (%s); reconnecting", reason)
        self._dirty.set()  # a failing relist starts the outage clock

    def event_line(self, line: bytes) -> None:
        """Relist if the event concerns a watched pod or one of its known containers."""
        event = parse_event(line)
        if event is None:
            return
        if (
            event.pod_id in self._pod_owner
            or event.actor_id in self._pod_owner
            or event.actor_id in self._container_owner
        ):
            self._dirty.set()
