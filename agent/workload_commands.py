"""The commands of one workload loop and their sender, ``WorkloadCommands``.

The manager and the workload table talk to a loop only through the verb methods
of ``WorkloadCommands``; the queue behind it is unbounded, so a sender never
waits for a busy loop. ``TimerFired`` is queued by the loop's own ``CommandTimer``,
the one retry or restart it has pending.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ankaios_agent.agent.model import ExecutionState, InstanceName, WorkloadSpec
from ankaios_agent.agent.ports import OwnedWorkload, StateChange
from ankaios_agent.agent.timings import Clock


@dataclass(frozen=True)
class CreateCommand:
    spec: WorkloadSpec
    reuse_id: str | None = None  # an ended container of this very instance to start again


@dataclass(frozen=True)
class ResumeCommand:
    spec: WorkloadSpec
    runtime_id: str
    state: ExecutionState


@dataclass(frozen=True)
class UpdateCommand:
    spec: WorkloadSpec | None  # None: delete only (UpdateDeleteOnly)
    old: InstanceName | None  # the instance the server asked to replace


@dataclass(frozen=True)
class DeleteCommand:
    old: InstanceName


@dataclass(frozen=True)
class RemoveLeftover:
    runtime: str
    owned: OwnedWorkload
    report_states: bool


@dataclass(frozen=True)
class Observed:
    change: StateChange


@dataclass(frozen=True, eq=False)
class TimerFired:
    """Fired by a timer; counts only while that timer is still the loop's current one."""

    restart: bool


Command = (
    CreateCommand | ResumeCommand | UpdateCommand | DeleteCommand | RemoveLeftover | Observed | TimerFired
)


class WorkloadCommands:
    """The sender side of one loop's command queue (verb methods, never a raw queue)."""

    def __init__(self, queue: asyncio.Queue[Command]) -> None:
        self._queue = queue

    def create(self, spec: WorkloadSpec, reuse_id: str | None = None) -> None:
        self._queue.put_nowait(CreateCommand(spec, reuse_id))

    def resume(self, spec: WorkloadSpec, runtime_id: str, state: ExecutionState) -> None:
        """Adopt an existing container of ``spec``: no create, no Pending state."""
        self._queue.put_nowait(ResumeCommand(spec, runtime_id, state))

    def update(self, spec: WorkloadSpec, old: InstanceName | None = None) -> None:
        self._queue.put_nowait(UpdateCommand(spec, old))

    def update_delete_only(self, old: InstanceName | None = None) -> None:
        self._queue.put_nowait(UpdateCommand(None, old))

    def delete(self, old: InstanceName) -> None:
        self._queue.put_nowait(DeleteCommand(old))

    def remove_leftover(self, runtime: str, owned: OwnedWorkload, *, report_states: bool) -> None:
        """Delete a container no loop owns, like any delete; silently when ``report_states`` is False."""
        self._queue.put_nowait(RemoveLeftover(runtime, owned, report_states))

    def state_changed(self, change: StateChange) -> None:
        self._queue.put_nowait(Observed(change))


class CommandTimer:
    """The one pending retry or restart of a loop: a ``TimerFired`` queued after a delay.

    Scheduling anew replaces what was pending; a ``TimerFired`` counts only while it is
    the pending one, so one already queued when it was cancelled or replaced is outdated.
    """

    def __init__(self, name: str, queue: asyncio.Queue[Command], clock: Clock) -> None:
        self._name = name
        self._queue = queue
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._pending: TimerFired | None = None

    def is_pending(self, command: TimerFired) -> bool:
        return command is self._pending

    def cancel(self) -> None:
        self._pending = None
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def schedule(self, delay: float, *, restart: bool) -> None:
        self.cancel()
        command = TimerFired(restart)
        self._pending = command
        if delay <= 0:
            self._queue.put_nowait(command)
            return
        self._task = asyncio.create_task(self._fire_after(delay, command), name=f"timer:{self._name}")

    async def _fire_after(self, delay: float, command: TimerFired) -> None:
        await self._clock.sleep(delay)
        self._queue.put_nowait(command)
