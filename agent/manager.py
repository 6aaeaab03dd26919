"""The manager: the one place that turns server messages into workload operations.

It consumes FromServer messages strictly in order:

* ``UpdateWorkload`` -> operations -> scheduler -> execution on the workload table;
* ``UpdateWorkloadState`` -> the states of other agents' workloads go into the
  store, and a non-empty batch re-evaluates the queue;
* ``Response`` -> the control-interface router (also every event of a
  workload's subscription: the router looks only at the request id);
* ``LogsRequest`` / ``LogsCancelRequest`` -> the log collector
  (``agent.log_collector``), which reads the workloads' logs through their
  runtimes; all collections stop when the server stream breaks with an error
  (``on_session_ended``) and at shutdown;
* ``DesiredState`` (v0.3.1: the answer to the agent's own request after each
  hello) or ``ServerHello`` (v1.0.1: the server's list after each hello) ->
  the session rules of the current dialect -> a ``DesiredSnapshot`` -> ``reconcile``.

``reconcile(snapshot)`` does not care how the snapshot was obtained: the
connection tells ``on_connected`` which dialect the new session speaks, and the
manager follows that dialect's rules (``agent.session``) and switches the
lifecycle rules the loops read (``RulesHolder``). Workloads, loops and
containers are the same whichever dialect is current, so a server swapped for
another version adopts them like a reconnect.

Adoption without lost exits: the runtimes are listed afresh whenever a listing
decides something (each reconciliation, and an UpdateWorkload that names a
workload without a loop), and the latest state change of an instance that no
loop owns yet is kept from the start of that listing on and handed to the loop
that adopts the instance, so an exit between listing and adoption is not lost.

Own states take one path in place, through a work list rather than a bounded
channel, so no number of waiting workloads can deadlock it: hysteresis ->
store -> re-evaluation -> send, one WorkloadState per message, in order.
Runtime state changes are routed to the loop owning the workload. Executing an
operation never awaits: the loops do the slow work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Collection, Mapping
from pathlib import Path

from ankaios_agent.agent import dialects
from ankaios_agent.agent.errors import RuntimeFailure
from ankaios_agent.agent.lifecycle_rules import Dialect, RulesHolder
from ankaios_agent.agent.log_collector import (
    LogCollector,
    LogMessage,
    LogSink,
    LogTarget,
    Unavailable,
    log_target,
)
from ankaios_agent.agent.model import (
    DeleteRequest,
    DesiredState,
    ExecutionState,
    FromServerMessageV1,
    InstanceName,
    LogsCancelRequest,
    LogsRequest,
    Response,
    ServerHello,
    StateKind,
    UpdateWorkload,
    UpdateWorkloadState,
    WorkloadSpec,
    WorkloadState,
)
from ankaios_agent.agent.ports import ControlInterfaceHost, MessageSink, Runtime, StateChange
from ankaios_agent.agent.reconcile import (
    DesiredSnapshot,
    Leftover,
    Plan,
    forgotten_instances,
    plan_added,
    plan_desired,
    queued_instances,
)
from ankaios_agent.agent.scheduler import (
    Create,
    Decision,
    Delete,
    Operation,
    Scheduler,
    Update,
    UpdateDeleteOnly,
)
from ankaios_agent.agent.session import SessionRules
from ankaios_agent.agent.state_store import StateStore
from ankaios_agent.agent.timings import AgentTimings, Clock, SystemClock
from ankaios_agent.agent.workload_loop import WorkloadLoop, removed_without_running
from ankaios_agent.agent.workload_phase import Phase
from ankaios_agent.agent.workload_table import WorkloadTable

log = logging.getLogger(__name__)

__all__ = ["Manager"]

# Loop phases in which the workload's container (or pods) exist, so its log can be read.
_HAS_CONTAINER = frozenset({Phase.RUNNING, Phase.RESTART_WAIT, Phase.DELETING})
# How long shutdown waits for the log collections to let go of their runtime streams.
_LOGS_STOP_TIMEOUT = 0.3


class _DirectLogSink:
    """Log messages straight into a sink that has no back-pressure (tests, embedding)."""

    def __init__(self, sink: MessageSink) -> None:
        self._sink = sink

    async def put(self, msg: LogMessage) -> None:
        self._sink.send(msg)


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
        rules: RulesHolder | None = None,
        run_folder: Path | None = None,
        log_sink: LogSink | None = None,
    ) -> None:
        self._agent_name = agent_name
        self._rules = rules if rules is not None else RulesHolder()
        self._run_folder = run_folder  # holds each instance's folder <workload>.<id>
        self._runtimes = dict(runtimes)
        self._ci = control_interfaces
        self._sink = sink
        self._timings = timings
        self._clock: Clock = clock or SystemClock()
        self._store = StateStore(per_instance=lambda: self._rules.current.states_per_instance)
        self._scheduler = Scheduler()
        self._table = WorkloadTable(self._new_loop)
        # One per dialect, kept across sessions; the v0.3.1 one until a session says otherwise.
        self._session: SessionRules = dialects.V0_3.session_rules(sink, agent_name)
        self._session_rules: dict[Dialect, SessionRules] = {Dialect.V0_3: self._session}
        # The latest change of each own instance that no loop owned when it came (see the docstring).
        self._unrouted: dict[InstanceName, StateChange] = {}
        self._pending_states: deque[WorkloadState] = deque()
        # Ended containers the next Create of that very instance starts again.
        self._reuse_ids: dict[InstanceName, str] = {}
        self._draining = False
        # What went out since the latest hello: only states missing from it are re-sent.
        self._sent_this_session: dict[str, WorkloadState] = {}
        self._dispatchers: list[asyncio.Task[None]] = []
        self._shutdown: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._logs = LogCollector(self._log_target, log_sink or _DirectLogSink(sink))

    # --- public surface ----------------------------------------------------------

    @property
    def table(self) -> WorkloadTable:
        return self._table

    @property
    def logs(self) -> LogCollector:
        """The running log collections."""
        return self._logs

    @property
    def rules(self) -> RulesHolder:
        """The lifecycle rules of the current session, read by the workload loops."""
        return self._rules

    async def handle(self, msg: FromServerMessageV1) -> None:
        """One message from the server; the connection awaits this strictly in arrival order."""
        if self._shutdown is not None:
            log.info("shutting down: ignoring %s", type(msg).__name__)
            return
        match msg:
            case UpdateWorkload():
                await self._on_update_workload(msg)
            case UpdateWorkloadState(states):
                # The server never sends an agent its own states; if one came, it must not
                # disturb the hysteresis of the agent's own workloads.
                states = tuple(s for s in states if s.instance.agent != self._agent_name)
                self._store.store_others(states)
                if states:
                    self._run(self._scheduler.reevaluate(self._store.states))
            case Response():
                self._ci.route(msg)
            case DesiredState() | ServerHello():
                snapshot = self._session.snapshot(msg)
                if snapshot is not None:
                    await self.reconcile(snapshot)
            case LogsRequest():
                self._logs.start(msg)
            case LogsCancelRequest():
                # Sent to every agent whenever any campaign ends; unknown ids are ignored.
                self._logs.cancel(msg)

    async def on_connected(self, dialect: Dialect = Dialect.V0_3) -> None:
        """After each hello: a new session of ``dialect``; its rules say how to get the snapshot."""
        self._sent_this_session = {}
        session = self._session_rules.get(dialect)
        if session is None:
            session = dialects.BY_DIALECT[dialect].session_rules(self._sink, self._agent_name)
            self._session_rules[dialect] = session
        self._session = session
        self._rules.use(session.lifecycle)
        self._ci.use_dialect(dialect)
        session.start()

    async def on_session_ended(self, clean: bool) -> None:
        """The server stream ended: a broken one took the server's log campaigns with it."""
        if clean:
            if self._logs.active:
                log.info("the server closed the stream cleanly; log collections keep running")
            return
        if self._logs.active:
            log.info("the server stream broke; stopping every log collection")
        await self._logs.stop_all()

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
            # Retrieve every dispatcher's end, also when run() itself is cancelled.
            await asyncio.gather(*self._dispatchers, return_exceptions=True)

    async def shutdown(self) -> None:
        """Stop the loops without deleting any container, close the control interfaces. Idempotent."""
        if self._shutdown is None:
            self._stopping.set()
            self._shutdown = asyncio.ensure_future(self._shut_down())
        await asyncio.shield(self._shutdown)

    def report(self, state: WorkloadState) -> None:
        """The own-state path (the workload loops' StateReporter)."""
        self._pending_states.append(state)
        if self._draining:
            return  # the running drain below sends it after the current state, in order
        self._draining = True
        try:
            while self._pending_states:
                effective = self._store.apply_own(self._pending_states.popleft())
                self._run(self._scheduler.reevaluate(self._store.states))
                self._sink.send(effective)
                if effective.state.state.kind is StateKind.REMOVED:
                    # Nothing left to re-send for it; keeps a long session's map from growing.
                    self._sent_this_session.pop(effective.instance.workload, None)
                else:
                    self._sent_this_session[effective.instance.workload] = effective
        finally:
            self._draining = False

    async def reconcile(self, snapshot: DesiredSnapshot) -> None:
        """Make the agent match a complete snapshot of its desired workloads.

        Unchanged workloads keep running untouched, changed ones are replaced,
        what is not listed is deleted (also when the list is empty); running
        leftovers of listed instances are adopted, other leftovers removed.
        """
        leftovers = await self._list_leftovers()
        held = self._held_instances(snapshot.workloads, leftovers.values())
        plan = plan_desired(
            snapshot.workloads, self._table.specs(), self._scheduler.entries(), leftovers, self._reusable()
        )
        log.info(
            "reconciled with the server: %d kept, %d adopted, %d operations, %d leftovers to remove",
            len(plan.kept),
            len(plan.adopt),
            len(plan.operations),
            len(plan.remove),
        )
        # States that went into a dying stream may never have reached the server: send the current
        # state of every own workload that was not sent since the latest hello, and Removed again
        # for what the server still lists but the agent already removed, before the
        # reconciliation's own changes follow.
        for state in self._store.own_states():
            if self._sent_this_session.get(state.instance.workload) != state:
                self._sink.send(state)
                self._sent_this_session[state.instance.workload] = state
        for instance in forgotten_instances(snapshot.known_instances, self._agent_name, held):
            log.info(
                "the server still lists %s, which is already removed; reporting it removed again", instance
            )
            self._sink.send(WorkloadState(instance, ExecutionState.removed()))
        self._carry_out(plan)
        self._run(self._scheduler.schedule(plan.operations, self._store.states))

    # --- UpdateWorkload ------------------------------------------------------------------

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
            # Only a workload without any loop can adopt a container: list only then.
            unowned = any(not self._table.is_busy(name) for name in added)
            leftovers = await self._list_leftovers() if unowned else {}
            plan = plan_added(
                added.values(), self._table.specs(), self._scheduler.queued, leftovers, self._reusable()
            )
            for op in plan.operations:
                if isinstance(op, Update):
                    log.warning("workload %s already exists, updating without delete dependencies", op.name)
            self._carry_out(plan)
            operations.extend(plan.operations)
        self._run(self._scheduler.schedule(operations, self._store.states))

    # --- reconciliation helpers ---------------------------------------------------------------

    def _held_instances(
        self, desired: Collection[WorkloadSpec], leftovers: Collection[Collection[Leftover]]
    ) -> set[InstanceName]:
        """Every instance the agent runs, waits to run, is deleting, finds on a runtime or is told to run."""
        held = self._table.held_instances() | queued_instances(self._scheduler.entries())
        held.update(spec.instance for spec in desired)
        held.update(leftover.owned.instance for found in leftovers for leftover in found)
        return held

    async def _list_leftovers(self) -> dict[str, list[Leftover]]:
        """Containers of this agent that no loop owns, listed now.

        Changes kept before this listing are older than what it returns; changes
        that come while it runs are newer and are kept for the adopting loop.
        """
        self._unrouted.clear()
        found: dict[str, list[Leftover]] = {}
        for name, runtime in self._runtimes.items():
            try:
                owned = await runtime.list_owned()
            except RuntimeFailure as err:
                log.warning("cannot list the workloads on runtime %s, treating it as empty: %s", name, err)
                continue
            except Exception:
                log.exception(
                    "internal error of the agent listing the workloads on runtime %s; treating it as empty",
                    name,
                )
                continue
            for item in owned:
                if item.instance.agent != self._agent_name or self._table.is_busy(item.instance.workload):
                    continue
                found.setdefault(item.instance.workload, []).append(Leftover(name, item))
        return found

    def _carry_out(self, plan: Plan) -> None:
        for removal in plan.remove:
            leftover = removal.leftover
            self._table.remove_leftover(leftover.runtime, leftover.owned, report_states=removal.report_states)
        for spec, leftover in plan.adopt:
            commands = self._table.start(spec).commands
            commands.resume(spec, leftover.owned.runtime_id, leftover.owned.state)
            # An exit that came after the listing: the loop sees it right after adopting.
            change = self._unrouted.pop(leftover.owned.instance, None)
            if change is not None:
                log.debug("workload %s: handing over %s observed before its loop existed", spec.name, change)
                commands.state_changed(change)
        for spec, leftover in plan.reuse:
            self._reuse_ids[spec.instance] = leftover.owned.runtime_id

    def _reusable(self) -> frozenset[str]:
        """The runtimes whose ended containers a Create starts again, under the current rules."""
        if not self._rules.current.reuse_succeeded:
            return frozenset()
        return frozenset(name for name, runtime in self._runtimes.items() if runtime.reuses_containers)

    # --- executing operations ----------------------------------------------------------------

    def _run(self, decision: Decision) -> None:
        for op in decision.ready:
            try:
                self._execute(op)
            except Exception:
                log.exception(
                    "workload %s: internal error of the agent executing %s", op.name, type(op).__name__
                )
        for state in decision.report:
            self.report(state)

    def _execute(self, op: Operation) -> None:
        loop = self._table.loop(op.name)
        match op:
            case Create(spec):
                reuse_id = self._reuse_ids.pop(spec.instance, None)
                if not self._runtime_known(spec):
                    return
                if loop is not None:  # a queued create is dropped when a newer operation comes; stay safe
                    self._table.set_spec(spec)
                    loop.commands.update(spec, None)
                else:
                    self._table.start(spec).commands.create(spec, reuse_id)
            case Update(spec, request):
                if not self._runtime_known(spec):
                    self._delete(request)
                elif loop is None:
                    log.info("workload %s not found, recreating", spec.name)
                    self._report_removed_without_running(request, spec)
                    self._table.start(spec).commands.create(spec)
                else:
                    self._table.set_spec(spec)
                    loop.commands.update(spec, request.instance)
            case UpdateDeleteOnly(request):
                if loop is not None:
                    loop.commands.update_delete_only(request.instance)
                else:
                    self._report_removed_without_running(request, None)
            case Delete(request):
                self._delete(request)

    def _runtime_known(self, spec: WorkloadSpec) -> bool:
        """Whether to run ``spec``: a workload for a runtime this agent lacks either gets a loop
        that reports it unsupported, or (v0.3.1) is not scheduled and nothing is reported for it."""
        if spec.runtime in self._runtimes:
            return True
        if self._rules.current.run_unknown_runtimes:
            log.warning("workload %s: runtime %r is not available on this agent", spec.name, spec.runtime)
            return True
        log.warning("workload %s: could not find runtime %r, not scheduled", spec.name, spec.runtime)
        return False

    def _report_removed_without_running(self, request: DeleteRequest, new: WorkloadSpec | None) -> None:
        """The instance an update replaces had no loop (it still waited in the queue): the server
        still has its row and `ank` waits for its Removed."""
        if removed_without_running(request.instance, None, None if new is None else new.instance):
            self.report(WorkloadState(request.instance, ExecutionState.removed()))

    def _delete(self, request: DeleteRequest) -> None:
        """Delete the managed workload; one that is not managed (queued, unknown runtime) is Removed."""
        if not self._table.delete(request):
            log.info("workload %s is already gone; reporting it removed", request.instance)
            self.report(WorkloadState(request.instance, ExecutionState.removed()))

    def _log_target(self, name: str) -> LogTarget | Unavailable:
        loop = self._table.loop(name)
        spec = self._table.specs().get(name)
        if loop is None or spec is None:
            return log_target(None, False, None)
        return log_target(spec.instance, loop.phase in _HAS_CONTAINER, self._runtimes.get(spec.runtime))

    def _new_loop(self, name: str, after: Collection[asyncio.Task[None]]) -> WorkloadLoop:
        return WorkloadLoop(
            name,
            runtimes=self._runtimes,
            control_interfaces=self._ci,
            reporter=self,
            timings=self._timings,
            clock=self._clock,
            after=after,
            rules=self._rules,
            run_folder=self._run_folder,
        )

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
            except RuntimeFailure as err:
                log.warning("event stream of runtime %s failed; subscribing again: %s", runtime.name, err)
            except Exception:
                log.exception("event stream of runtime %s failed; subscribing again", runtime.name)
            await self._clock.sleep(self._timings.event_resubscribe_delay)

    def _route(self, change: StateChange) -> None:
        if self._table.route(change):
            return
        if change.instance.agent == self._agent_name:
            # Kept for a loop that may adopt the instance next (bounded: one per own instance).
            self._unrouted[change.instance] = change
        log.debug("no workload loop for %s yet; state %s kept for adoption", change.instance, change.state)

    # --- shutdown ---------------------------------------------------------------------------

    async def _shut_down(self) -> None:
        log.info("shutdown: stopping log collections")
        try:
            async with asyncio.timeout(_LOGS_STOP_TIMEOUT):
                await self._logs.stop_all()
        except TimeoutError:
            log.warning(
                "shutdown: log collections did not end within %.1f s; not waiting", _LOGS_STOP_TIMEOUT
            )
        log.info("shutdown: stopping runtime event dispatch")
        for task in self._dispatchers:
            task.cancel()
        log.info("shutdown: stopping the workload loops (containers keep running)")
        stopped = await self._table.stop()
        log.info("shutdown: %d workload loops stopped", stopped)
        for task in self._dispatchers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        log.info("shutdown: closing control interfaces")
        try:
            await self._ci.close()
        except Exception:
            log.exception("shutdown: closing the control interfaces failed")
        log.info("shutdown: manager done")
