"""In-memory doubles of the lifecycle layer's ports, for anyone driving a Manager without Podman.

* ``FakeRuntime`` implements ``agent.ports.Runtime`` in memory: scriptable
  create/delete failures, exits, pre-existing containers, and an event stream.
* ``FakeControlInterfaceHost`` implements ``agent.ports.ControlInterfaceHost``.
* ``RecordingSink`` implements ``agent.ports.MessageSink`` and records in order.
* ``FakeClock`` implements ``agent.timings.Clock``: sleeping advances time at once.

They hold no threads and no real sleeps, so the whole manager runs in
microseconds on top of them.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ankaios_agent.agent.errors import ControlInterfaceError, RuntimeCreateFailed, RuntimeDeleteFailed
from ankaios_agent.agent.lifecycle_rules import Dialect
from ankaios_agent.agent.model import (
    DesiredStateRequest,
    ExecutionState,
    InstanceName,
    Response,
    ToServerMessageV1,
    WorkloadSpec,
    WorkloadState,
)
from ankaios_agent.agent.ports import CreateRequest, OwnedWorkload, StateChange
from ankaios_agent.agent.workload_file_writer import FileMount


class FakeClock:
    """An injectable clock; every requested delay is recorded in ``sleeps``.

    ``auto=True``: sleeping returns at once and advances ``now``. ``auto=False``:
    a sleep returns only when the test has ``advance()``d the clock far enough,
    so a test can look at what happens *before* a delay has passed.
    """

    def __init__(self, start: float = 1000.0, *, auto: bool = True) -> None:
        self.now = start
        self.auto = auto
        self.sleeps: list[float] = []
        self._advanced: asyncio.Event | None = None

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.auto:
            self.now += seconds
            await asyncio.sleep(0)
            return
        target = self.now + seconds
        if self._advanced is None:
            self._advanced = asyncio.Event()
        while self.now < target:
            self._advanced.clear()
            await self._advanced.wait()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        if self._advanced is not None:
            self._advanced.set()


@dataclass
class FakeContainer:
    instance: InstanceName
    runtime_id: str
    state: ExecutionState
    control_dir: Path | None = None
    file_mounts: tuple[FileMount, ...] = ()
    starts: int = 1


@dataclass
class FakeRuntime:
    """An in-memory Runtime. States of created containers start as ``start_state``.

    A create with a ``reuse_id`` starts that container again (same runtime id); when
    it fails, the container is removed, as the podman runtime does.
    """

    name: str = "podman"
    reuses_containers: bool = True
    start_state: ExecutionState = field(default_factory=ExecutionState.running)
    containers: dict[InstanceName, FakeContainer] = field(default_factory=dict)
    calls: list[tuple[str, InstanceName]] = field(default_factory=list)
    requests: list[CreateRequest] = field(default_factory=list)
    peak_per_workload: dict[str, int] = field(default_factory=dict)
    list_error: Exception | None = None
    _create_errors: dict[str, deque[Exception]] = field(default_factory=dict)
    _always_failing: dict[str, Exception] = field(default_factory=dict)
    _delete_errors: dict[str, deque[Exception]] = field(default_factory=dict)
    _listeners: list[asyncio.Queue[StateChange | Exception]] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    # --- scripting -------------------------------------------------------------

    def fail_creates(self, workload: str, *reasons: str) -> None:
        """The next ``len(reasons)`` creates of ``workload`` fail with these texts."""
        queue = self._create_errors.setdefault(workload, deque())
        queue.extend(_CreateFailure(reason) for reason in reasons)

    def fail_creates_always(self, workload: str, error: Exception | str) -> None:
        self._always_failing[workload] = error if isinstance(error, Exception) else _CreateFailure(error)

    def stop_failing(self, workload: str) -> None:
        self._always_failing.pop(workload, None)
        self._create_errors.pop(workload, None)

    def fail_deletes(self, workload: str, *reasons: str | Exception) -> None:
        """The next deletes of ``workload`` fail: a text as RuntimeDeleteFailed, an exception as is."""
        queue = self._delete_errors.setdefault(workload, deque())
        queue.extend(r if isinstance(r, Exception) else _DeleteFailure(r) for r in reasons)

    def add_existing(self, instance: InstanceName, state: ExecutionState | None = None) -> str:
        """A container left from an earlier agent run; returns its runtime id."""
        runtime_id = f"{self.name}-old-{next(self._ids)}"
        self.containers[instance] = FakeContainer(instance, runtime_id, state or ExecutionState.running())
        return runtime_id

    def exit(self, workload: str, exit_code: int) -> None:
        """The container of ``workload`` exits; the state change is emitted."""
        container = self.container(workload)
        container.state = (
            ExecutionState.succeeded() if exit_code == 0 else ExecutionState.exec_failed(exit_code)
        )
        self.emit(container)

    def set_state(self, workload: str, state: ExecutionState) -> None:
        container = self.container(workload)
        container.state = state
        self.emit(container)

    def vanish(self, workload: str) -> None:
        """The container disappears by itself (e.g. ``--rm``): Failed(Lost)."""
        container = self.container(workload)
        del self.containers[container.instance]
        self._emit(StateChange(container.instance, container.runtime_id, ExecutionState.lost()))

    def break_event_streams(self, error: Exception | None = None) -> None:
        """Every open ``events()`` stream raises ``error`` (like a dropped REST connection)."""
        for queue in self._listeners:
            queue.put_nowait(error or ConnectionError("event stream broke"))

    def emit(self, container: FakeContainer) -> None:
        self._emit(StateChange(container.instance, container.runtime_id, container.state))

    # --- inspection ---------------------------------------------------------------

    def container(self, workload: str) -> FakeContainer:
        matches = [c for c in self.containers.values() if c.instance.workload == workload]
        if len(matches) != 1:
            raise AssertionError(f"expected one container of {workload!r}, found {len(matches)}")
        return matches[0]

    def created(self, workload: str | None = None) -> list[InstanceName]:
        return [i for op, i in self.calls if op == "create" and workload in (None, i.workload)]

    def deleted(self, workload: str | None = None) -> list[InstanceName]:
        return [i for op, i in self.calls if op == "delete" and workload in (None, i.workload)]

    @property
    def subscribers(self) -> int:
        return len(self._listeners)

    # --- the Runtime protocol --------------------------------------------------------

    async def create(self, request: CreateRequest) -> str:
        spec, control_dir = request.spec, request.control_dir
        self.calls.append(("create", spec.instance))
        self.requests.append(request)
        await asyncio.sleep(0)
        try:
            self._scripted_failure(spec)
        except Exception:
            if request.reuse_id is not None:
                self.containers.pop(spec.instance, None)
            raise
        if request.reuse_id is not None:
            return self._start_again(spec.instance, request.reuse_id)
        if spec.instance in self.containers:
            raise RuntimeCreateFailed(spec.instance, f"name {spec.instance} is already in use")
        runtime_id = f"{self.name}-{next(self._ids)}"
        container = FakeContainer(
            spec.instance, runtime_id, self.start_state, control_dir, request.file_mounts
        )
        self.containers[spec.instance] = container
        count = sum(1 for c in self.containers.values() if c.instance.workload == spec.name)
        self.peak_per_workload[spec.name] = max(self.peak_per_workload.get(spec.name, 0), count)
        self.emit(container)  # may reach the loop before create returns, like a real event stream
        return runtime_id

    def _scripted_failure(self, spec: WorkloadSpec) -> None:
        scripted = self._create_errors.get(spec.name)
        if scripted:
            raise RuntimeCreateFailed(spec.instance, str(scripted.popleft()))
        always = self._always_failing.get(spec.name)
        if always is not None:
            if isinstance(always, _CreateFailure):
                raise RuntimeCreateFailed(spec.instance, str(always))
            raise always

    def _start_again(self, instance: InstanceName, runtime_id: str) -> str:
        container = self.containers.get(instance)
        if container is None or container.runtime_id != runtime_id:
            raise RuntimeCreateFailed(instance, f"no such container {runtime_id}")
        container.state = self.start_state
        container.starts += 1
        self.emit(container)
        return runtime_id

    def reused(self, workload: str | None = None) -> list[str]:
        """The runtime ids of every create that asked to start a container again."""
        return [
            r.reuse_id for r in self.requests if r.reuse_id is not None and workload in (None, r.spec.name)
        ]

    async def delete(self, instance: InstanceName) -> None:
        self.calls.append(("delete", instance))
        await asyncio.sleep(0)
        scripted = self._delete_errors.get(instance.workload)
        if scripted:
            error = scripted.popleft()
            if isinstance(error, _DeleteFailure):
                raise RuntimeDeleteFailed(instance, str(error))
            raise error
        container = self.containers.pop(instance, None)
        if container is not None:
            self._emit(StateChange(instance, container.runtime_id, ExecutionState.lost()))

    async def list_owned(self) -> list[OwnedWorkload]:
        if self.list_error is not None:
            raise self.list_error
        return [OwnedWorkload(c.instance, c.runtime_id, c.state) for c in self.containers.values()]

    def events(self) -> AsyncIterator[StateChange]:
        return self._stream()

    async def _stream(self) -> AsyncIterator[StateChange]:
        queue: asyncio.Queue[StateChange | Exception] = asyncio.Queue()
        self._listeners.append(queue)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            self._listeners.remove(queue)

    def _emit(self, change: StateChange) -> None:
        for queue in self._listeners:
            queue.put_nowait(change)


class _CreateFailure(Exception):
    pass


class _DeleteFailure(Exception):
    pass


@dataclass
class FakeControlInterfaceHost:
    """Records every call; ``broken`` workload names (and names with '/') cannot get FIFOs."""

    base: Path = Path("/fake/run/agent_io")
    broken: set[str] = field(default_factory=set)
    folders: dict[str, Path] = field(default_factory=dict)
    ensured: list[InstanceName] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    routed: list[Response] = field(default_factory=list)
    dialects: list[Dialect] = field(default_factory=list)
    closed: bool = False

    async def ensure(self, instance: InstanceName) -> Path:
        self.ensured.append(instance)
        if "/" in instance.workload or instance.workload in self.broken:
            raise ControlInterfaceError(instance.workload, "the workload name cannot be a folder name")
        path = self.base / instance.folder_name
        self.folders[instance.workload] = path
        return path

    def use_dialect(self, dialect: Dialect) -> None:
        self.dialects.append(dialect)

    async def ensure_for(self, spec: WorkloadSpec) -> Path | None:
        """Every workload gets a folder, whatever its rules (the v0.3.1 way)."""
        return await self.ensure(spec.instance)

    async def remove(self, workload: str) -> None:
        self.removed.append(workload)
        self.folders.pop(workload, None)

    def route(self, response: Response) -> None:
        self.routed.append(response)

    async def close(self) -> None:
        self.closed = True


@dataclass
class RecordingSink:
    """Records every message sent to the server, in order."""

    messages: list[ToServerMessageV1] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set on every send; a waiter clears it before it looks again."""

    def send(self, msg: ToServerMessageV1) -> None:
        self.messages.append(msg)
        self.changed.set()

    def states(self, workload: str | None = None) -> list[WorkloadState]:
        return [
            m
            for m in self.messages
            if isinstance(m, WorkloadState) and workload in (None, m.instance.workload)
        ]

    def trace(self, workload: str) -> list[tuple[str, ExecutionState]]:
        """(instance id, state) of every state sent for ``workload``, in order."""
        return [(s.instance.id, s.state) for s in self.states(workload)]

    def requests(self) -> list[DesiredStateRequest]:
        return [m for m in self.messages if isinstance(m, DesiredStateRequest)]

    def clear(self) -> None:
        self.messages.clear()
