"""The manager: the one place that turns server messages into workload operations.

It consumes FromServer messages strictly in order (spec §4, §11 item 31):

* ``UpdateWorkload`` -> operations (spec §4.3) -> scheduler (§5) -> execution (§4.4);
* ``UpdateWorkloadState`` -> the states of other agents' workloads go into the
  store, and a non-empty batch re-evaluates the queue (§5.4);
* ``Response`` -> the control-interface router;
* ``DesiredState`` (the answer to its own request after each hello) ->
  reconciliation (DESIGN decisions 2 and 3, ``agent.reconcile``).

Own states take the path of spec §9.1 in place, through a work list rather than
a bounded channel, so no number of waiting workloads can deadlock it (§11 item
22): hysteresis -> store -> re-evaluation -> send, one WorkloadState per message,
in order. Runtime state changes are routed to the loop owning the workload.
Executing an operation never awaits: the loops do the slow work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping

from ankaios_agent.agent.model import (
    AGENT_REQUEST_PREFIX,
    DeleteRequest,
    DesiredState,
    DesiredStateRequest,
    ExecutionState,
    FromServerMessage,
    Response,
    StateKind,
    UpdateWorkload,
    UpdateWorkloadState,
    WorkloadSpec,
    WorkloadState,
)
from ankaios_agent.agent.ports import ControlInterfaceHost, MessageSink, Runtime, StateChange
from ankaios_agent.agent.reconcile import Leftover, Plan, Removal, plan_added, plan_desired
from ankaios_agent.agent.scheduler import (
    Create,
    Decision,
    Delete,
    Operation,
    Scheduler,
    Update,
    UpdateDeleteOnly,
)
from ankaios_agent.agent.state_store import StateStore
from ankaios_agent.agent.timings import AgentTimings, Clock, SystemClock
from ankaios_agent.agent.workload_loop import WorkloadLoop

log = logging.getLogger(__name__)


class Manager:
    def __init__(
        self,
        agent_name: str,
        runtimes: Mapping[str, Runtime],
        control_interfaces: ControlInterfaceHost,
        sink: MessageSink,
        timings: AgentTimings,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._agent_name = agent_name
        self._runtimes = dict(runtimes)
        self._ci = control_interfaces
        self._sink = sink
        self._timings = timings
        self._clock: Clock = clock or SystemClock()
        self._store = StateStore()
        self._scheduler = Scheduler()
        self._loops: dict[str, WorkloadLoop] = {}
        self._specs: dict[str, WorkloadSpec] = {}  # the spec each managed loop was last told to run
        self._retiring: set[WorkloadLoop] = set()  # deleting, no longer addressable
        self._cleanups: dict[str, asyncio.Task[None]] = {}  # removal of leftovers, per workload name
        self._leftovers: dict[str, list[Leftover]] | None = None  # None: list the runtimes first
        self._pending_states: deque[WorkloadState] = deque()
        self._draining = False
        # What went out since the latest hello: only states missing from it are re-sent (DESIGN 2).
        self._sent_this_session: dict[str, WorkloadState] = {}
        self._reconcile_seq = 0
        self._awaited_reconcile: str | None = None
        self._dispatchers: list[asyncio.Task[None]] = []
        self._shutdown: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # --- public surface ----------------------------------------------------------

    async def handle(self, msg: FromServerMessage) -> None:
        """One message from the server; the connection awaits this strictly in arrival order."""
        if self._shutdown is not None:
            log.info("shutting down: ignoring %s", type(msg).__name__)
            return
        match msg:
            case UpdateWorkload():
                await self._on_update_workload(msg)
            case UpdateWorkloadState(states):
                # The server never sends an agent its own states (spec §5.6); if one came, it must not
                # disturb the hysteresis of the agent's own workloads.
                states = tuple(s for s in states if s.instance.agent != self._agent_name)
                self._store.store_others(states)
                if states:
                    self._run(self._scheduler.reevaluate(self._store.get))
            case Response():
                self._ci.route(msg)
            case DesiredState():
                await self._on_desired_state(msg)

    async def on_connected(self) -> None:
        """After each hello: ask for the desired state, reconcile when it arrives (DESIGN decision 2)."""
        self._reconcile_seq += 1
        self._awaited_reconcile = f"{AGENT_REQUEST_PREFIX}reconcile-{self._reconcile_seq}"
        self._leftovers = None  # containers may have changed while the agent was away
        self._sent_this_session = {}
        self._sink.send(DesiredStateRequest(self._awaited_reconcile))

    async def run(self) -> None:
        """Route every runtime's state changes to the workload loops until cancelled."""
        self._dispatchers = [
            asyncio.create_task(self._dispatch_events(runtime), name=f"events:{name}")
            for name, runtime in self._runtimes.items()
        ]
        try:
            # The stop event keeps run() alive until shutdown even without any runtime.
            await asyncio.gather(*self._dispatchers, self._stopping.wait())
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._shutdown is None or (current is not None and current.cancelling()):
                raise
            # shutdown() stopped the dispatchers: a normal end, not a cancellation of run().
        finally:
            for task in self._dispatchers:
                task.cancel()
            # Retrieve every dispatcher's end (STYLE 11), also when run() itself is cancelled.
            await asyncio.gather(*self._dispatchers, return_exceptions=True)

    async def shutdown(self) -> None:
        """Stop the loops without deleting any container, close the control interfaces. Idempotent."""
        if self._shutdown is None:
            self._stopping.set()
            self._shutdown = asyncio.ensure_future(self._shut_down())
        await asyncio.shield(self._shutdown)

    def report(self, state: WorkloadState) -> None:
        """The own-state path of spec §9.1 (the workload loops' StateReporter)."""
        self._pending_states.append(state)
        if self._draining:
            return  # the running drain below sends it after the current state, in order
        self._draining = True
        try:
            while self._pending_states:
                effective = self._store.apply_own(self._pending_states.popleft())
                self._run(self._scheduler.reevaluate(self._store.get))
                self._sink.send(effective)
                if effective.state.state.kind is StateKind.REMOVED:
                    # Nothing left to re-send for it; keeps a long session's map from growing.
                    self._sent_this_session.pop(effective.instance.workload, None)
                else:
                    self._sent_this_session[effective.instance.workload] = effective
        finally:
            self._draining = False

    # --- UpdateWorkload (spec §4.3) -----------------------------------------------------

    async def _on_update_workload(self, msg: UpdateWorkload) -> None:
        added: dict[str, WorkloadSpec] = {}
        for spec in msg.added:
            if spec.name in added:
                log.warning("workload %s is listed twice in one update; using the last entry", spec.name)
            added[spec.name] = spec
        operations: list[Operation] = []
        for request in msg.deleted:
            replacement = added.pop(request.name, None)
            operations.append(Delete(request) if replacement is None else Update(replacement, request))
        if added:
            leftovers = await self._list_leftovers()
            plan = plan_added(added.values(), self._specs, self._scheduler.queued, leftovers)
            self._leftovers = plan.leftovers
            for op in plan.operations:
                if isinstance(op, Update):
                    log.warning("workload %s already exists, updating without delete dependencies", op.name)
            self._carry_out(plan)
            operations.extend(plan.operations)
        self._run(self._scheduler.schedule(operations, self._store.get))

    # --- reconciliation (DESIGN decisions 2 and 3) -----------------------------------------

    async def _on_desired_state(self, msg: DesiredState) -> None:
        if msg.request_id != self._awaited_reconcile:
            log.debug("ignoring the answer to an earlier reconciliation request %s", msg.request_id)
            return
        self._awaited_reconcile = None
        if msg.error is not None:
            log.warning("cannot reconcile, the server answered with an error: %s", msg.error)
            return
        leftovers = await self._list_leftovers()
        plan = plan_desired(msg.workloads, self._specs, self._scheduler.entries(), leftovers)
        self._leftovers = {}
        log.info(
            "reconciled with the server: %d kept, %d adopted, %d operations, %d leftovers to remove",
            len(plan.kept),
            len(plan.adopt),
            len(plan.operations),
            len(plan.remove),
        )
        # States that went into a dying stream may never have reached the server: send the current
        # state of every own workload that was not sent since the latest hello, before the
        # reconciliation's own changes follow.
        for state in self._store.own_states():
            if self._sent_this_session.get(state.instance.workload) != state:
                self._sink.send(state)
                self._sent_this_session[state.instance.workload] = state
        self._carry_out(plan)
        self._run(self._scheduler.schedule(plan.operations, self._store.get))

    async def _list_leftovers(self) -> dict[str, list[Leftover]]:
        """Containers of this agent that no loop owns, listed once per connection."""
        if self._leftovers is not None:
            return self._leftovers
        found: dict[str, list[Leftover]] = {}
        for name, runtime in self._runtimes.items():
            try:
                owned = await runtime.list_owned()
            except Exception as err:
                log.warning("cannot list the workloads on runtime %s, treating it as empty: %s", name, err)
                continue
            for item in owned:
                if item.instance.agent != self._agent_name or self._is_busy(item.instance.workload):
                    continue
                found.setdefault(item.instance.workload, []).append(Leftover(name, item))
        self._leftovers = found
        return found

    def _is_busy(self, workload: str) -> bool:
        cleanup = self._cleanups.get(workload)
        return (
            workload in self._loops
            or any(loop.name == workload for loop in self._retiring)
            or (cleanup is not None and not cleanup.done())
        )

    def _carry_out(self, plan: Plan) -> None:
        by_name: dict[str, list[Removal]] = {}
        for removal in plan.remove:
            by_name.setdefault(removal.leftover.name, []).append(removal)
        for name, removals in by_name.items():
            task = asyncio.create_task(self._remove_leftovers(removals), name=f"cleanup:{name}")
            self._cleanups[name] = task
            task.add_done_callback(self._forget_cleanup)
        for spec, leftover in plan.adopt:
            loop = self._start_loop(spec)
            if loop is not None:
                loop.commands.resume(spec, leftover.owned.runtime_id, leftover.owned.state)

    def _forget_cleanup(self, task: asyncio.Task[None]) -> None:
        """A finished clean-up needs no waiting; without this, undesired names piled up."""
        for name, cleanup in list(self._cleanups.items()):
            if cleanup is task:
                del self._cleanups[name]

    async def _remove_leftovers(self, removals: list[Removal]) -> None:
        for removal in removals:
            instance = removal.leftover.owned.instance
            runtime = self._runtimes[removal.leftover.runtime]
            log.info("removing leftover %s from runtime %s", instance, runtime.name)
            if removal.report_states:
                self.report(WorkloadState(instance, ExecutionState.requested_at_runtime()))
            attempt = 0
            while True:
                try:
                    await runtime.delete(instance)
                    break
                except Exception as err:
                    # Giving up would keep the leftover running until the next reconnect (e.g.
                    # Podman was down): retry with the workload loops' delete back-off.
                    attempt += 1
                    delay = self._timings.delete_retry_delay(attempt)
                    log.error("could not remove leftover %s (retry in %.0f s): %s", instance, delay, err)
                    if removal.report_states and attempt == 1:
                        self.report(WorkloadState(instance, ExecutionState.delete_failed(str(err))))
                    await self._clock.sleep(delay)
            if removal.report_states:
                self.report(WorkloadState(instance, ExecutionState.removed()))

    # --- executing operations (spec §4.4) ----------------------------------------------------

    def _run(self, decision: Decision) -> None:
        for op in decision.ready:
            try:
                self._execute(op)
            except Exception:
                log.exception("workload %s: could not execute %s", op.name, type(op).__name__)
        for state in decision.report:
            self.report(state)

    def _execute(self, op: Operation) -> None:
        loop = self._loops.get(op.name)
        match op:
            case Create(spec):
                if loop is not None:  # cannot happen with §11 item 25; stay safe anyway
                    self._specs[spec.name] = spec
                    loop.commands.update(spec, None)
                elif (new_loop := self._start_loop(spec)) is not None:
                    new_loop.commands.create(spec)
            case Update(spec, request):
                if spec.runtime not in self._runtimes:
                    self._warn_unknown_runtime(spec)
                    self._execute(Delete(request))
                elif loop is None:
                    log.info("workload %s not found, recreating", spec.name)
                    self._report_unmanaged_removed(request, spec)
                    self._execute(Create(spec))
                else:
                    self._specs[spec.name] = spec
                    loop.commands.update(spec, request.instance)
            case UpdateDeleteOnly(request):
                if loop is not None:
                    loop.commands.update_delete_only(request.instance)
                else:
                    self._report_unmanaged_removed(request, None)
            case Delete(request):
                self._delete(request)

    def _report_unmanaged_removed(self, request: DeleteRequest, new: WorkloadSpec | None) -> None:
        """The instance an update replaces had no loop (it still waited in the queue): the server
        still has its row and `ank` waits for its Removed (spec §11 items 2, 3)."""
        if new is None or request.instance != new.instance:
            self.report(WorkloadState(request.instance, ExecutionState.removed()))

    def _delete(self, request: DeleteRequest) -> None:
        loop = self._loops.pop(request.name, None)
        self._specs.pop(request.name, None)
        if loop is None:
            log.info("workload %s is already gone; reporting it removed", request.instance)
            self.report(WorkloadState(request.instance, ExecutionState.removed()))
            return
        self._retiring.add(loop)
        if loop.task is not None:
            loop.task.add_done_callback(lambda _task: self._retiring.discard(loop))
        loop.commands.delete(request.instance)

    def _start_loop(self, spec: WorkloadSpec) -> WorkloadLoop | None:
        if spec.runtime not in self._runtimes:
            self._warn_unknown_runtime(spec)
            return None
        # Never two containers of one workload at once (spec §11 items 9, 21): the new loop starts
        # only after leftover removal and any loop still deleting this workload have finished.
        before = [loop.task for loop in self._retiring if loop.name == spec.name and loop.task is not None]
        cleanup = self._cleanups.pop(spec.name, None)
        if cleanup is not None:
            before.append(cleanup)
        loop = WorkloadLoop(
            spec.name,
            runtimes=self._runtimes,
            control_interfaces=self._ci,
            reporter=self,
            timings=self._timings,
            clock=self._clock,
            after=[task for task in before if not task.done()],
        )
        self._loops[spec.name] = loop
        self._specs[spec.name] = spec
        loop.start()
        return loop

    @staticmethod
    def _warn_unknown_runtime(spec: WorkloadSpec) -> None:
        log.warning("workload %s: could not find runtime %r, not scheduled", spec.name, spec.runtime)

    # --- runtime events -----------------------------------------------------------------------

    async def _dispatch_events(self, runtime: Runtime) -> None:
        while True:
            try:
                stream = runtime.events()
                aclose = getattr(stream, "aclose", None)
                try:
                    async for change in stream:
                        self._route(change)
                finally:
                    if aclose is not None:
                        await aclose()
                log.warning("event stream of runtime %s ended; subscribing again", runtime.name)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event stream of runtime %s failed; subscribing again", runtime.name)
            await self._clock.sleep(self._timings.event_resubscribe_delay)

    def _route(self, change: StateChange) -> None:
        loop = self._loops.get(change.instance.workload)
        if loop is None:
            log.debug("no workload loop for %s; state %s ignored", change.instance, change.state)
            return
        loop.commands.state_changed(change)

    # --- shutdown (STYLE 11) -------------------------------------------------------------------

    async def _shut_down(self) -> None:
        log.info("shutdown: stopping runtime event dispatch")
        for task in self._dispatchers:
            task.cancel()
        for task in self._cleanups.values():
            task.cancel()
        loops = [*self._loops.values(), *self._retiring]
        log.info("shutdown: stopping %d workload loops (containers keep running)", len(loops))
        await asyncio.gather(*(loop.stop() for loop in loops), return_exceptions=True)
        for task in [*self._dispatchers, *self._cleanups.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        log.info("shutdown: closing control interfaces")
        try:
            await self._ci.close()
        except Exception:
            log.exception("shutdown: closing the control interfaces failed")
        log.info("shutdown: manager done")
