"""One monitor for all kube workloads: one Podman event subscription plus relist.

Kube pods' containers carry no agent label, so the monitor cannot ask Podman
for "this agent's containers". It watches by pod ids instead (from create or
from the ``.pods`` bookkeeping volume after an agent restart):

* a dedicated thread follows Podman's event stream (container and pod
  events) and, for any event about a watched pod or one of its known
  containers, marks the monitor dirty; events only mean "something changed";
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
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agent.blocking import run_blocking
from agent.model import ExecutionState, InstanceName
from runtimes.podman.client import PodmanConnection
from runtimes.podman_kube.kube_api import KubeApi, KubeApiError
from runtimes.podman_kube.states import combine, pods_error
from runtimes.protocol import StateChange

logger = logging.getLogger("runtimes.podman_kube.monitor")


@dataclass(frozen=True)
class KubeMonitorTimings:
    relist_interval_s: float = 5.0
    outage_grace_s: float = 10.0
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 5.0


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
        timings: KubeMonitorTimings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._connection = connection
        self._timings = timings or KubeMonitorTimings()
        self._clock = clock
        self._watched: dict[InstanceName, _Watch] = {}
        self._last: dict[InstanceName, ExecutionState] = {}
        self._pod_owner: dict[str, InstanceName] = {}
        self._container_owner: dict[str, InstanceName] = {}
        self._changes: asyncio.Queue[StateChange] = asyncio.Queue()
        self._dirty = asyncio.Event()
        self._outage_since: float | None = None
        self._running = False
        self._stream_response: Any = None  # set by the reader thread; closed to stop it

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
        stop = threading.Event()
        loop = asyncio.get_running_loop()
        reader = threading.Thread(
            target=self._follow_events, args=(loop, stop), name="kube-events", daemon=True
        )
        reader.start()
        relist = asyncio.create_task(self._relist_loop(), name="kube-relist")
        try:
            while True:
                yield await self._changes.get()
        finally:
            stop.set()
            response = self._stream_response
            if response is not None:
                with contextlib.suppress(Exception):
                    response.close()  # unblocks the reader thread
            relist.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relist
            self._running = False

    # --- relist (event loop) ---------------------------------------------------------

    async def _relist_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), timeout=self._timings.relist_interval_s)
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
            self._dirty.set()  # retry soon rather than at the next interval
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

    # --- event stream (dedicated thread) --------------------------------------------

    def _on_event(self, event: StreamEvent) -> None:
        """Called on the loop for each Podman event: relist if it concerns a watched pod."""
        if (
            event.pod_id in self._pod_owner
            or event.actor_id in self._pod_owner
            or event.actor_id in self._container_owner
        ):
            self._dirty.set()

    def _on_stream_connected(self) -> None:
        self._dirty.set()  # whatever happened while disconnected shows up in a relist

    def _follow_events(self, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        """Read Podman's event stream until ``stop``; reconnect with back-off."""
        delay = self._timings.reconnect_min_s
        while not stop.is_set():
            client = self._connection.stream_client()
            try:
                params = {"stream": "true", "filters": json.dumps({"type": ["container", "pod"]})}
                response: Any = client.api.get("/events", params=params, stream=True, timeout=(5, None))
                if response.status_code >= 400:
                    raise KubeApiError(f"event stream refused: HTTP {response.status_code}")
                if not _post(loop, self._on_stream_connected):
                    return
                delay = self._timings.reconnect_min_s
                self._stream_response = response
                if stop.is_set():  # stopped between connect and publishing the response
                    return
                for line in response.iter_lines():
                    if stop.is_set():
                        return
                    event = parse_event(line) if line else None
                    if event is not None and not _post(loop, self._on_event, event):
                        return
            except Exception as err:  # any transport failure: reconnect
                if stop.is_set():
                    return
                logger.warning("kube event stream lost (%s); reconnecting in %.1fs", err, delay)
            finally:
                self._stream_response = None
                with contextlib.suppress(Exception):
                    client.close()  # type: ignore[no-untyped-call]
            if stop.wait(delay):
                return
            delay = min(delay * 2, self._timings.reconnect_max_s)


def _post(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: object) -> bool:
    """Hand ``fn(*args)`` to the loop; False once the loop is gone."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        return False
    return True
