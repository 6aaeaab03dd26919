"""One control loop per workload (spec §6): create, retry, restart, update, delete.

Each loop is an asyncio task that takes commands strictly in order from an
unbounded queue behind ``WorkloadCommands`` (STYLE 3; unbounded so the manager
never blocks on a loop, spec §11 item 22). Runtime state changes arrive on the
same queue and are handled level-triggered (STYLE 5): a change only counts when
it is about the loop's *current* instance and runtime id, and a repeat of the
last observed state is ignored, so duplicated or stale events cannot restart a
workload twice.

Reported sequences (spec §6.2-6.6, exact strings of Appendix B):

* create: ``Pending(Starting)/"Triggered at runtime."`` before every attempt,
  ``Pending(StartingFailed)/<error>`` after a failed one; the first retry is
  immediate, then one every ``create_retry_interval`` until ``create_retries``
  is exceeded, then ``Pending(StartingFailed)/"No more retries."``;
* update: ``Stopping(RequestedAtRuntime)``[old] -> delete -> ``Removed``[old]
  -> create[new]; never two containers of one workload at once;
* delete: ``Stopping(RequestedAtRuntime)`` -> ``Removed``, or
  ``Stopping(DeleteFailed)/<error>``;
* restart (policy of §6.6, back-off of DESIGN decision 6): the exit state stays
  visible during the back-off, then the update sequence with the same spec.

Improvements over the reference: a bad runtimeConfig or an unusable control
interface is not retried (``<reason>`` then ``No more retries.``); a resumed
workload keeps its control-interface folder for later restarts (§11 item 26);
a failed delete is retried with back-off until the container is gone, then the loop ends
(never orphaned, §11 item 27; the reference leaves the container running for good).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from ankaios_agent.agent.errors import ControlInterfaceError, WorkloadConfigError
from ankaios_agent.agent.model import (
    NO_MORE_RETRIES,
    ExecutionState,
    InstanceName,
    RestartPolicy,
    State,
    WorkloadSpec,
    WorkloadState,
)
from ankaios_agent.agent.ports import ControlInterfaceHost, Runtime, StateChange, StateReporter
from ankaios_agent.agent.timings import AgentTimings, Clock

log = logging.getLogger(__name__)

_RESTART_ON: Mapping[RestartPolicy, frozenset[State]] = {
    RestartPolicy.NEVER: frozenset(),
    RestartPolicy.ON_FAILURE: frozenset({State.FAILED_EXEC_FAILED}),
    RestartPolicy.ALWAYS: frozenset({State.FAILED_EXEC_FAILED, State.SUCCEEDED_OK}),
}


def restart_wanted(policy: RestartPolicy, state: ExecutionState) -> bool:
    """spec §6.6: only ExecFailed (and Succeeded for ALWAYS); Lost and Unknown never restart."""
    return state.state in _RESTART_ON[policy]


# --- commands -------------------------------------------------------------------


@dataclass(frozen=True)
class _Create:
    spec: WorkloadSpec


@dataclass(frozen=True)
class _Resume:
    spec: WorkloadSpec
    runtime_id: str
    state: ExecutionState


@dataclass(frozen=True)
class _Update:
    spec: WorkloadSpec | None  # None: delete only (UpdateDeleteOnly)
    old: InstanceName | None  # the instance the server asked to replace


@dataclass(frozen=True)
class _Delete:
    old: InstanceName


@dataclass(frozen=True)
class _Observed:
    change: StateChange


@dataclass(frozen=True)
class _Retry:
    generation: int


@dataclass(frozen=True)
class _Restart:
    generation: int


_Command = _Create | _Resume | _Update | _Delete | _Observed | _Retry | _Restart


class WorkloadCommands:
    """The sender side of one loop's command queue (verb methods, never a raw queue)."""

    def __init__(self, queue: asyncio.Queue[_Command]) -> None:
        self._queue = queue

    def create(self, spec: WorkloadSpec) -> None:
        self._queue.put_nowait(_Create(spec))

    def resume(self, spec: WorkloadSpec, runtime_id: str, state: ExecutionState) -> None:
        """Adopt an existing container of ``spec`` (spec §6.7): no create, no Pending state."""
        self._queue.put_nowait(_Resume(spec, runtime_id, state))

    def update(self, spec: WorkloadSpec, old: InstanceName | None = None) -> None:
        self._queue.put_nowait(_Update(spec, old))

    def update_delete_only(self, old: InstanceName | None = None) -> None:
        self._queue.put_nowait(_Update(None, old))

    def delete(self, old: InstanceName) -> None:
        self._queue.put_nowait(_Delete(old))

    def state_changed(self, change: StateChange) -> None:
        self._queue.put_nowait(_Observed(change))


class _Attempt(enum.Enum):
    CREATED = enum.auto()
    RETRYABLE = enum.auto()
    FINAL = enum.auto()


class WorkloadLoop:
    """The control loop of one workload name."""

    def __init__(
        self,
        name: str,
        *,
        runtimes: Mapping[str, Runtime],
        control_interfaces: ControlInterfaceHost,
        reporter: StateReporter,
        timings: AgentTimings,
        clock: Clock,
        after: Collection[asyncio.Task[None]] = (),
    ) -> None:
        self.name = name
        self._runtimes = runtimes
        self._ci = control_interfaces
        self._reporter = reporter
        self._timings = timings
        self._clock = clock
        # Tasks to wait for before the first command, e.g. the silent delete of a leftover
        # container (spec §11 item 21). Tasks, not a coroutine: a loop stopped before it ever
        # ran must not leave a coroutine that was never awaited.
        self._after = tuple(after)
        self._queue: asyncio.Queue[_Command] = asyncio.Queue()
        self.commands = WorkloadCommands(self._queue)
        self._spec: WorkloadSpec | None = None
        self._runtime: Runtime | None = None
        self._runtime_id: str | None = None
        self._control_dir: Path | None = None
        self._control_folder: str | None = None
        self._retry_count = 1
        self._generation = 0
        self._timer: asyncio.Task[None] | None = None
        self._last_observed: ExecutionState | None = None
        self._running_since: float | None = None
        self._restarts = 0
        self._restart_pending = False
        self._task: asyncio.Task[None] | None = None

    # --- life of the task -------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"workload_loop:{self.name}")

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def stop(self) -> None:
        """Stop the loop without touching the container (agent shutdown)."""
        self._cancel_timer()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        if self._after:
            # asyncio.wait neither cancels these tasks nor raises their errors (they log their own).
            await asyncio.wait(self._after)
        while True:
            command = await self._queue.get()
            try:
                finished = await self._handle(command)
            except Exception:
                # One workload's surprise must never end its loop or the agent.
                log.exception("workload %s: unexpected error while handling %s", self.name, command)
                finished = False
            if finished:
                self._cancel_timer()
                return

    async def _handle(self, command: _Command) -> bool:
        match command:
            case _Create(spec):
                self._new_intent()
                self._spec = spec
                await self._create()
            case _Resume(spec, runtime_id, state):
                await self._resume(spec, runtime_id, state)
            case _Update(spec, old):
                self._new_intent()
                self._restarts = 0
                await self._update(spec, old)
            case _Delete(old):
                self._new_intent()
                await self._delete(old)
                return True
            case _Observed(change):
                self._on_change(change)
            case _Retry(generation):
                if generation == self._generation and self._runtime_id is None:
                    await self._retry()
            case _Restart(generation):
                if generation == self._generation and self._spec is not None:
                    self._new_intent()
                    log.info("workload %s: restarting (restart policy)", self.name)
                    await self._update(self._spec, None)
        return False

    # --- reporting and timers -----------------------------------------------------

    def _report(self, instance: InstanceName, state: ExecutionState) -> None:
        self._reporter.report(WorkloadState(instance, state))

    def _new_intent(self) -> None:
        """A new command supersedes pending retries and restarts (spec §6.3, §11 item 10)."""
        self._generation += 1
        self._restart_pending = False
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self, delay: float, command: _Command) -> None:
        self._cancel_timer()
        if delay <= 0:
            self._queue.put_nowait(command)
            return
        self._timer = asyncio.create_task(self._fire_after(delay, command), name=f"timer:{self.name}")

    async def _fire_after(self, delay: float, command: _Command) -> None:
        await self._clock.sleep(delay)
        self._queue.put_nowait(command)

    # --- control interface ---------------------------------------------------------

    async def _prepare_control_dir(self, spec: WorkloadSpec) -> str | None:
        """Make sure the FIFO folder of ``spec`` exists; returns an error text or None."""
        folder = spec.instance.folder_name
        if self._control_dir is not None and self._control_folder == folder:
            return None
        try:
            self._control_dir = await self._ci.ensure(spec.instance)
        except ControlInterfaceError as err:
            return err.reason
        self._control_folder = folder
        return None

    async def _release_control_dir(self) -> None:
        self._control_dir = None
        self._control_folder = None
        try:
            await self._ci.remove(self.name)
        except ControlInterfaceError as err:
            log.warning("workload %s: could not remove its control interface: %s", self.name, err.reason)
        except Exception:
            log.exception("workload %s: could not remove its control interface", self.name)

    # --- create and retry (spec §6.2, §6.3) -------------------------------------------

    async def _create(self) -> None:
        self._retry_count = 1
        if await self._attempt() is _Attempt.RETRYABLE:
            self._schedule(0, _Retry(self._generation))  # the first retry is immediate

    async def _retry(self) -> None:
        if await self._attempt() is not _Attempt.RETRYABLE:
            return
        self._retry_count += 1
        if self._retry_count > self._timings.create_retries:
            assert self._spec is not None
            log.warning("workload %s: giving up after %d create retries", self.name, self._retry_count - 1)
            self._report(self._spec.instance, ExecutionState.starting_failed(NO_MORE_RETRIES))
            return
        self._schedule(self._timings.create_retry_interval, _Retry(self._generation))

    async def _attempt(self) -> _Attempt:
        spec = self._spec
        assert spec is not None
        runtime = self._runtimes.get(spec.runtime)
        if runtime is None:  # the manager filters these; stay silent like spec §4.4
            log.warning("workload %s: runtime %r is not available; not created", self.name, spec.runtime)
            return _Attempt.FINAL
        problem = await self._prepare_control_dir(spec)
        if problem is not None:
            log.error("workload %s: control interface unusable: %s", self.name, problem)
            self._give_up(spec, problem)
            return _Attempt.FINAL
        self._report(spec.instance, ExecutionState.starting())
        self._running_since = None
        self._last_observed = None
        try:
            runtime_id = await runtime.create(spec, self._control_dir)
        except WorkloadConfigError as err:
            log.error("workload %s: unusable runtimeConfig: %s", self.name, err.reason)
            self._give_up(spec, err.reason)
            return _Attempt.FINAL
        except Exception as err:
            log.warning("workload %s: create failed: %s", self.name, err)
            self._report(spec.instance, ExecutionState.starting_failed(str(err) or type(err).__name__))
            return _Attempt.RETRYABLE
        self._runtime = runtime
        self._runtime_id = runtime_id
        log.info("workload %s: created %s (runtime id %s)", self.name, spec.instance, runtime_id)
        return _Attempt.CREATED

    def _give_up(self, spec: WorkloadSpec, reason: str) -> None:
        """A failure retrying cannot fix: the reason, then the CLI's final state."""
        self._report(spec.instance, ExecutionState.starting_failed(reason))
        self._report(spec.instance, ExecutionState.starting_failed(NO_MORE_RETRIES))

    # --- resume (spec §6.7) --------------------------------------------------------------

    async def _resume(self, spec: WorkloadSpec, runtime_id: str, state: ExecutionState) -> None:
        self._spec = spec
        self._runtime = self._runtimes.get(spec.runtime)
        self._runtime_id = runtime_id
        problem = await self._prepare_control_dir(spec)
        if problem is not None:
            log.warning("workload %s: adopted without control interface: %s", self.name, problem)
        log.info("workload %s: adopted running %s (runtime id %s)", self.name, spec.instance, runtime_id)
        self._observe(state)

    # --- update and delete (spec §6.4, §6.5) -------------------------------------------------

    async def _update(self, new: WorkloadSpec | None, old: InstanceName | None) -> None:
        if new is None or (self._control_folder not in (None, new.instance.folder_name)):
            await self._release_control_dir()
        current = self._spec
        if current is not None and not await self._remove_current(current.instance):
            return  # spec §6.4: the old instance stays, the new spec is not applied
        self._report_also_removed(old, current, new)
        self._retry_count = 1
        if new is not None:
            self._spec = new
            await self._create()

    async def _delete(self, old: InstanceName) -> None:
        await self._release_control_dir()
        current = self._spec
        instance = old if current is None else current.instance
        if not await self._remove_current(instance):
            await self._retry_delete(instance)
        self._report_also_removed(old, current, None)
        log.info("workload %s: deleted", self.name)

    async def _retry_delete(self, instance: InstanceName) -> None:
        """Keep deleting until it works, e.g. once Podman is back after an outage.

        Giving up would leave the container running with no loop owning it until the next server
        reconnect or agent restart: the server's delete would be lost. Stopping(DeleteFailed) was
        reported once; Removed follows when the delete finally succeeds.
        """
        assert self._runtime is not None
        attempt = 0
        while True:
            attempt += 1
            delay = self._timings.delete_retry_delay(attempt)
            await self._clock.sleep(delay)
            try:
                await self._runtime.delete(instance)
            except Exception as err:
                log.warning(
                    "workload %s: delete of %s still failing after %d retries (next in at most %.0f s): %s",
                    self.name,
                    instance,
                    attempt,
                    self._timings.delete_retry_cap,
                    err,
                )
                continue
            break
        self._runtime_id = None
        self._last_observed = None
        self._running_since = None
        self._report(instance, ExecutionState.removed())

    async def _remove_current(self, instance: InstanceName) -> bool:
        """Stopping(RequestedAtRuntime) -> runtime delete -> Removed, all for ``instance``."""
        self._report(instance, ExecutionState.requested_at_runtime())
        if self._runtime_id is not None and self._runtime is not None:
            try:
                await self._runtime.delete(instance)
            except Exception as err:
                log.error("workload %s: delete of %s failed: %s", self.name, instance, err)
                self._report(instance, ExecutionState.delete_failed(str(err) or type(err).__name__))
                return False
        self._runtime_id = None
        self._last_observed = None
        self._running_since = None
        self._report(instance, ExecutionState.removed())
        return True

    def _report_also_removed(
        self, old: InstanceName | None, current: WorkloadSpec | None, new: WorkloadSpec | None
    ) -> None:
        """The server may name an instance this loop never ran (its update was still queued when
        a newer one replaced it); report it Removed too, so no row stays behind at the server."""
        if old is None or (current is not None and old == current.instance):
            return
        if new is not None and old == new.instance:
            return
        self._report(old, ExecutionState.removed())

    # --- runtime states and restart policy (spec §6.6, DESIGN decision 6) -------------------------

    def _on_change(self, change: StateChange) -> None:
        spec = self._spec
        if spec is None or change.instance != spec.instance or change.runtime_id != self._runtime_id:
            log.debug("workload %s: ignoring state of a former instance: %s", self.name, change)
            return
        if change.state == self._last_observed:
            return
        self._observe(change.state)

    def _observe(self, state: ExecutionState) -> None:
        spec = self._spec
        assert spec is not None
        self._last_observed = state
        self._report(spec.instance, state)
        if state.state is State.RUNNING_OK and self._running_since is None:
            self._running_since = self._clock.monotonic()
        if not self._restart_pending and restart_wanted(spec.restart_policy, state):
            self._schedule_restart()

    def _schedule_restart(self) -> None:
        now = self._clock.monotonic()
        since = self._running_since
        if since is not None and now - since >= self._timings.restart_backoff_reset_after:
            self._restarts = 0
        delay = self._timings.restart_delay(self._restarts)
        self._restarts += 1
        self._restart_pending = True
        log.info("workload %s: restart %d in %.1f s (restart policy)", self.name, self._restarts, delay)
        self._schedule(delay, _Restart(self._generation))
