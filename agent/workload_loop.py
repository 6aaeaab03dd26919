"""One control loop per workload: create, retry, restart, update, delete.

Each loop is an asyncio task that takes commands strictly in order from an
unbounded queue behind ``WorkloadCommands`` (unbounded so the manager never
blocks on a loop). Runtime state changes arrive on the same queue and are
handled level-triggered: a change only counts when it is about the loop's
*current* instance and runtime id, and a repeat of the last observed state is
ignored, so duplicated or stale events cannot restart a workload twice. Where
the loop is (idle, waiting to retry, running, ...) is the ``Phase`` of
``agent.workload_phase``; every move goes through its transition table.

Reported sequences (the exact strings the server and ``ank`` look for):

* create and its retries: one attempt at a time through
  ``agent.workload_create``, whose docstring gives the states of both dialects;
* update: ``Stopping(RequestedAtRuntime)``[old] -> delete -> ``Removed``[old]
  -> create[new]; never two containers of one workload at once;
* delete: ``Stopping(RequestedAtRuntime)`` -> ``Removed``, or
  ``Stopping(DeleteFailed)/<error>`` first when the runtime refuses;
* restart (restart policy, with back-off, decided in ``agent.workload_restart``):
  the exit state stays visible during the back-off, then the update sequence
  with the same spec, or (v1.0.1, a container that ended with success, where
  the runtime can) the same container started again.

The rules of the dialect are read from the ``RulesHolder`` at every decision,
so a server of the other version changes what happens next. With the v1.0.1
rules the instance's folder goes with it: ``files/`` after an update removed
the old container, the whole folder on delete or when the id changes.

Beyond the reference agent: a resumed workload keeps its control-interface
folder for later restarts; a failed delete is retried with capped back-off
until the container is gone, then the loop ends (the reference leaves the
container running with no owner). The removal of a leftover container, one no
loop owns, is such a delete too, optionally without states.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Mapping
from pathlib import Path

from ankaios_agent.agent.errors import RuntimeFailure
from ankaios_agent.agent.instance_folder import Clean, InstanceFolders
from ankaios_agent.agent.lifecycle_rules import RulesHolder
from ankaios_agent.agent.model import (
    NO_MORE_RETRIES,
    ExecutionState,
    InstanceName,
    State,
    WorkloadSpec,
    WorkloadState,
)
from ankaios_agent.agent.ports import (
    ControlInterfaceHost,
    OwnedWorkload,
    Runtime,
    StateChange,
    StateReporter,
)
from ankaios_agent.agent.timings import AgentTimings, Clock
from ankaios_agent.agent.workload_commands import (
    Command,
    CommandTimer,
    CreateCommand,
    DeleteCommand,
    Observed,
    RemoveLeftover,
    ResumeCommand,
    TimerFired,
    UpdateCommand,
    WorkloadCommands,
)
from ankaios_agent.agent.workload_control_dir import ControlDir
from ankaios_agent.agent.workload_create import (
    Abandoned,
    Created,
    Retryable,
    attempt_create,
    internal_error_text,
    retry_state,
    runtime_for,
)
from ankaios_agent.agent.workload_phase import WAITING, Event, Phase, next_phase
from ankaios_agent.agent.workload_restart import next_restart, restart_wanted, reusable_id

log = logging.getLogger(__name__)

_WITHOUT_INSTANCE: frozenset[Phase] = frozenset({Phase.IDLE, Phase.RETRY_WAIT, Phase.GAVE_UP, Phase.DONE})


def removed_without_running(
    old: InstanceName | None, current: InstanceName | None, new: InstanceName | None
) -> bool:
    """Whether the server's instance ``old`` gets a Removed of its own, without any runtime call.

    That is when no loop ran it (its create still waited in the queue when a newer operation
    replaced it) and it is not the instance that runs next: otherwise its row would stay at
    the server and ``ank`` would wait for it.
    """
    return old is not None and old not in (current, new)


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
        rules: RulesHolder | None = None,
        run_folder: Path | None = None,
    ) -> None:
        self.name = name
        self._rules = rules if rules is not None else RulesHolder()
        self._folders = InstanceFolders(name, run_folder, self._rules)
        self._runtimes = runtimes
        self._reporter = reporter
        self._timings = timings
        self._clock = clock
        # Tasks to wait for before the first command, e.g. a loop still deleting a container of
        # the same name: never two containers of one workload at once. Tasks, not a coroutine: a
        # loop stopped before it ever ran must not leave a coroutine that was never awaited.
        self._after = tuple(after)
        self._queue: asyncio.Queue[Command] = asyncio.Queue()
        self.commands = WorkloadCommands(self._queue)
        self._phase = Phase.IDLE
        self._spec: WorkloadSpec | None = None
        self._runtime: Runtime | None = None
        self._runtime_id: str | None = None
        self._control_dir = ControlDir(name, control_interfaces)
        self._retry_count = 1
        self._retry_number = 0  # the retry scheduled last when retrying forever; 0: none yet
        self._timer = CommandTimer(name, self._queue, clock)
        self._last_observed: ExecutionState | None = None
        self._running_since: float | None = None
        self._restarts = 0
        self._silent = False  # a leftover replaced by the same instance: the server has one row for both
        self._task: asyncio.Task[None] | None = None

    # --- life of the task -------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"workload_loop:{self.name}")

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    @property
    def phase(self) -> Phase:
        return self._phase

    async def stop(self) -> None:
        """Stop the loop without touching the container (agent shutdown).

        Returns at once even when a runtime call is in flight: the call's thread is
        left to finish on its own.
        """
        self._timer.cancel()
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
                # A bug in the agent: one workload's surprise must never end its loop or the agent.
                log.exception(
                    "workload %s: internal error of the agent while handling %s", self.name, command
                )
                finished = False
            if finished:
                self._timer.cancel()
                return

    async def _handle(self, command: Command) -> bool:
        match command:
            case CreateCommand(spec, reuse_id):
                self._spec = spec
                await self._create(reuse_id)
            case ResumeCommand(spec, runtime_id, state):
                await self._resume(spec, runtime_id, state)
            case UpdateCommand(spec, old):
                self._move(Event.REPLACING)
                self._restarts = 0
                await self._update(spec, old)
            case DeleteCommand(old):
                self._move(Event.DELETE_REQUESTED)
                await self._delete(old)
                return True
            case RemoveLeftover(runtime, owned, report_states):
                await self._remove_leftover(runtime, owned, report_states)
                return True
            case Observed(change):
                self._on_change(change)
            case TimerFired(restart) if self._timer.is_pending(command):
                self._timer.cancel()
                if not restart and self._phase is Phase.RETRY_WAIT:
                    await self._retry()
                elif restart and self._phase is Phase.RESTART_WAIT and self._spec is not None:
                    reuse_id = reusable_id(
                        self._rules.current, self._runtime, self._runtime_id, self._last_observed
                    )
                    if reuse_id is not None:
                        self._move(Event.REUSING)
                        log.info("workload %s: starting its container again (restart policy)", self.name)
                        await self._create(reuse_id)
                    else:
                        self._move(Event.REPLACING)
                        log.info("workload %s: restarting (restart policy)", self.name)
                        await self._update(self._spec, None)
            case TimerFired():
                log.debug("workload %s: ignoring an outdated retry or restart", self.name)
        return False

    # --- phase and reporting ---------------------------------------------------------

    def _move(self, event: Event) -> None:
        """The one place where the phase changes and what a phase change implies is reset."""
        old = self._phase
        new = next_phase(old, event)
        if old in WAITING:
            # A newer command or the timer's own firing supersedes a pending retry or restart.
            self._timer.cancel()
        if new in _WITHOUT_INSTANCE:
            self._runtime_id = None
            self._last_observed = None
            self._running_since = None
        self._phase = new

    def _report(self, instance: InstanceName, state: ExecutionState) -> None:
        if not self._silent:
            self._reporter.report(WorkloadState(instance, state))

    # --- create and retry ---------------------------------------------------------------

    async def _create(self, reuse_id: str | None = None) -> None:
        self._retry_count = 1
        self._retry_number = 0
        rules = self._rules.current
        if rules.retry_forever:
            assert self._spec is not None
            self._report(self._spec.instance, ExecutionState.starting())
        if not await self._attempt(reuse_id):
            return
        if rules.retry_forever:
            self._timer.schedule(self._timings.create_retry_delay(self._retry_number), restart=False)
        else:
            self._timer.schedule(0, restart=False)  # the first retry is immediate

    async def _retry(self) -> None:
        if not await self._attempt(None):
            return
        if self._rules.current.retry_forever:
            self._timer.schedule(self._timings.create_retry_delay(self._retry_number), restart=False)
            return
        self._retry_count += 1
        if self._retry_count > self._timings.create_retries:
            assert self._spec is not None
            log.warning("workload %s: giving up after %d create retries", self.name, self._retry_count - 1)
            self._move(Event.CREATE_ABANDONED)
            self._report(self._spec.instance, ExecutionState.starting_failed(NO_MORE_RETRIES))
            return
        self._timer.schedule(self._timings.create_retry_interval, restart=False)

    async def _attempt(self, reuse_id: str | None) -> bool:
        """One create attempt and what its outcome changes; True when it is to be retried."""
        spec = self._spec
        assert spec is not None
        rules = self._rules.current
        outcome = await attempt_create(
            self.name,
            spec,
            reuse_id,
            rules=rules,
            runtime=runtime_for(self._runtimes, spec),
            control_dir=self._control_dir,
            folders=self._folders,
            report=self._report,
        )
        match outcome:
            case Created(runtime, runtime_id):
                self._runtime = runtime
                self._runtime_id = runtime_id
                self._move(Event.CREATED)
                verb = "started again" if reuse_id is not None else "created"
                log.info("workload %s: %s %s (runtime id %s)", self.name, verb, spec.instance, runtime_id)
                return False
            case Retryable(reason):
                self._move(Event.CREATE_FAILED)
                if rules.retry_forever:
                    self._retry_number += 1
                self._report(spec.instance, retry_state(rules, self._retry_number, reason))
                return True
            case Abandoned(state):
                self._give_up(spec, state)
                return False

    def _give_up(self, spec: WorkloadSpec, state: ExecutionState) -> None:
        """A failure retrying cannot fix: its reason, then (v0.3.1) the CLI's final state."""
        self._move(Event.CREATE_ABANDONED)
        self._report(spec.instance, state)
        if not self._rules.current.final_failure_alone:
            self._report(spec.instance, ExecutionState.starting_failed(NO_MORE_RETRIES))

    # --- resume -------------------------------------------------------------------------

    async def _resume(self, spec: WorkloadSpec, runtime_id: str, state: ExecutionState) -> None:
        self._spec = spec
        self._runtime = self._runtimes[spec.runtime]  # adopted from that very runtime's list
        self._move(Event.ADOPTED)
        self._runtime_id = runtime_id
        problem = await self._control_dir.prepare(spec)
        if problem is not None:
            log.warning("workload %s: adopted without control interface: %s", self.name, problem)
        log.info("workload %s: adopted running %s (runtime id %s)", self.name, spec.instance, runtime_id)
        self._observe(state)

    # --- update and delete --------------------------------------------------------------------

    async def _update(self, new: WorkloadSpec | None, old: InstanceName | None) -> None:
        # Like the reference, the old control interface goes before the old container when the
        # new instance needs another one (new id or other access rules).
        if self._control_dir.is_replaced_by(new):
            await self._control_dir.release()
        current = self._spec
        if current is not None:
            # The files go once the old container is gone; the whole folder when the id changes.
            clean = Clean.FOLDER if new is not None and new.instance != current.instance else Clean.FILES
            if not await self._stop_instance(current.instance, clean=clean):
                self._move(Event.KEPT)
                return  # the old instance stays, the new spec is not applied
            self._move(Event.REMOVED)
        self._report_also_removed(old, current, new)
        self._retry_count = 1
        if new is not None:
            self._spec = new
            await self._create()

    async def _delete(self, old: InstanceName) -> None:
        await self._control_dir.release()
        current = self._spec
        await self._delete_for_good(old if current is None else current.instance, Clean.FOLDER)
        self._report_also_removed(old, current, None)
        log.info("workload %s: deleted", self.name)

    async def _remove_leftover(self, runtime: str, owned: OwnedWorkload, report_states: bool) -> None:
        self._runtime = self._runtimes[runtime]
        self._move(Event.ADOPTED)
        self._runtime_id = owned.runtime_id
        self._move(Event.DELETE_REQUESTED)
        self._silent = not report_states
        log.info("removing leftover %s from runtime %s", owned.instance, runtime)
        # A silent removal makes way for the same instance: its folder is about to be used again.
        await self._delete_for_good(owned.instance, Clean.FOLDER if report_states else Clean.FILES)

    async def _delete_for_good(self, instance: InstanceName, clean: Clean) -> None:
        """Delete ``instance`` and keep retrying until it works, e.g. once Podman is back.

        Giving up would leave the container running with no loop owning it until the next
        server reconnect or agent restart: the server's delete would be lost.
        Stopping(DeleteFailed) is reported once; Removed follows when a delete succeeds.
        """
        attempt = 0
        while not await self._stop_instance(
            instance, report_requested=attempt == 0, quiet=attempt > 0, clean=clean
        ):
            attempt += 1
            await self._clock.sleep(self._timings.delete_retry_delay(attempt))
        self._move(Event.DELETED)

    async def _stop_instance(
        self,
        instance: InstanceName,
        *,
        report_requested: bool = True,
        quiet: bool = False,
        clean: Clean = Clean.NOTHING,
    ) -> bool:
        """Stopping(RequestedAtRuntime) -> runtime delete -> (folder clean-up) -> Removed, for ``instance``.

        False when the runtime refused: Stopping(DeleteFailed) was reported unless ``quiet``.
        """
        if report_requested:
            self._report(instance, ExecutionState.requested_at_runtime())
        if self._runtime_id is not None and self._runtime is not None:
            try:
                await self._runtime.delete(instance)
            except RuntimeFailure as err:
                reason = str(err) or type(err).__name__
                if quiet:
                    log.warning(
                        "workload %s: delete of %s still failing (next retry in at most %.0f s): %s",
                        self.name,
                        instance,
                        self._timings.delete_retry_cap,
                        reason,
                    )
                else:
                    log.error("workload %s: delete of %s failed: %s", self.name, instance, reason)
                    self._report(instance, ExecutionState.delete_failed(reason))
                return False
            except Exception as err:
                log.exception("workload %s: internal error of the agent deleting %s", self.name, instance)
                if not quiet:
                    self._report(instance, ExecutionState.delete_failed(internal_error_text(err)))
                return False
        self._runtime_id = None
        self._last_observed = None
        self._running_since = None
        await self._folders.clean(instance, clean)
        self._report(instance, ExecutionState.removed())
        return True

    def _report_also_removed(
        self, old: InstanceName | None, current: WorkloadSpec | None, new: WorkloadSpec | None
    ) -> None:
        current_instance = None if current is None else current.instance
        if removed_without_running(old, current_instance, None if new is None else new.instance):
            assert old is not None
            self._report(old, ExecutionState.removed())

    # --- runtime states and restart policy -------------------------------------------------------

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
        if self._phase is Phase.RUNNING and restart_wanted(spec.restart_policy, state):
            self._schedule_restart()

    def _schedule_restart(self) -> None:
        delay, self._restarts = next_restart(
            self._timings, self._restarts, self._running_since, self._clock.monotonic()
        )
        self._move(Event.ENDED_FOR_RESTART)
        log.info("workload %s: restart %d in %.1f s (restart policy)", self.name, self._restarts, delay)
        self._timer.schedule(delay, restart=True)
