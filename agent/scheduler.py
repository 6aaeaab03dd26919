"""The dependency scheduler: which operations may run now, which must wait.

Pure logic: no I/O, no asyncio, nothing is sent from here. Every call returns
a ``Decision`` with the operations that are ready (in order) and the waiting
states to report (``Pending(WaitingToStart)``, ``Stopping(WaitingToStop)``);
the manager executes and reports them.

Beyond the reference: a new operation for a workload name drops any queued
entry for that name, so a stale Create can never run later
with an old spec.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ankaios_agent.agent.model import (
    AddCondition,
    DeleteCondition,
    DeleteRequest,
    ExecutionState,
    State,
    WorkloadSpec,
    WorkloadState,
)

log = logging.getLogger(__name__)

StateLookup = Callable[[str], Sequence[ExecutionState]]
"""The store's view: every last known state under a workload name (empty when unknown).

One state per name in v0.3.1; in v1.0.1 one per instance, e.g. the old and the
new instance of a dependency during its update."""


# --- operations ---------------------------------------------


@dataclass(frozen=True)
class Create:
    spec: WorkloadSpec

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Update:
    """Delete the instance of ``delete``, then create ``spec`` (same workload name)."""

    spec: WorkloadSpec
    delete: DeleteRequest

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class UpdateDeleteOnly:
    """The first half of an update whose create must wait; only the scheduler makes it."""

    delete: DeleteRequest

    @property
    def name(self) -> str:
        return self.delete.name


@dataclass(frozen=True)
class Delete:
    delete: DeleteRequest

    @property
    def name(self) -> str:
        return self.delete.name


Operation = Create | Update | UpdateDeleteOnly | Delete


# --- queue entries --------------------------------------------------


@dataclass(frozen=True)
class QueuedCreate:
    spec: WorkloadSpec


@dataclass(frozen=True)
class QueuedDelete:
    delete: DeleteRequest


@dataclass(frozen=True)
class UpdateCreate:
    """Old instance already deleted (or being deleted); the create waits for its add conditions."""

    spec: WorkloadSpec
    delete: DeleteRequest


@dataclass(frozen=True)
class UpdateDelete:
    """The whole update waits for the delete conditions of the old instance."""

    spec: WorkloadSpec
    delete: DeleteRequest


QueueEntry = QueuedCreate | QueuedDelete | UpdateCreate | UpdateDelete


@dataclass
class Decision:
    ready: list[Operation] = field(default_factory=list)
    report: list[WorkloadState] = field(default_factory=list)

    def extend(self, other: Decision) -> None:
        self.ready.extend(other.ready)
        self.report.extend(other.report)


# --- condition evaluation ------------------------------------------

_ADD_FULFILLED_BY: Mapping[AddCondition, State] = {
    AddCondition.RUNNING: State.RUNNING_OK,
    AddCondition.SUCCEEDED: State.SUCCEEDED_OK,
    AddCondition.FAILED: State.FAILED_EXEC_FAILED,
}

_PENDING_NOT_WAITING = frozenset(
    {State.PENDING_INITIAL, State.PENDING_STARTING, State.PENDING_STARTING_FAILED}
)


def add_condition_met(condition: AddCondition, state: ExecutionState | None) -> bool:
    """A missing dependency is *not* fulfilled; only the exact substate counts."""
    return state is not None and state.state is _ADD_FULFILLED_BY[condition]


def delete_condition_met(condition: DeleteCondition, state: ExecutionState | None) -> bool:
    """A missing dependent *is* fulfilled; Pending(WaitingToStart) fulfils every delete condition."""
    if state is None or state.state is State.PENDING_WAITING_TO_START:
        return True
    if state.state in _PENDING_NOT_WAITING:
        return False
    if condition is DeleteCondition.RUNNING:
        return state.state is State.RUNNING_OK
    return state.state is not State.RUNNING_OK


def add_conditions_met(spec: WorkloadSpec, lookup: StateLookup) -> bool:
    """Each dependency is met by *one* of its known instances (none known: not met)."""
    return all(
        any(add_condition_met(cond, state) for state in lookup(dep))
        for dep, cond in spec.dependencies.items()
    )


def delete_conditions_met(request: DeleteRequest, lookup: StateLookup) -> bool:
    """Each dependent is met by *all* of its known instances (none known: met)."""
    return all(
        all(delete_condition_met(cond, state) for state in lookup(dep))
        for dep, cond in request.dependencies.items()
    )


def _waiting_to_start(spec: WorkloadSpec) -> WorkloadState:
    return WorkloadState(spec.instance, ExecutionState.waiting_to_start())


def _waiting_to_stop(request: DeleteRequest) -> WorkloadState:
    return WorkloadState(request.instance, ExecutionState.waiting_to_stop())


class Scheduler:
    """The waiting queue, keyed by workload name (a new entry replaces an older one)."""

    def __init__(self) -> None:
        self._queue: dict[str, QueueEntry] = {}

    def queued(self, workload: str) -> QueueEntry | None:
        return self._queue.get(workload)

    def entries(self) -> dict[str, QueueEntry]:
        """A copy of the queue, by workload name."""
        return dict(self._queue)

    def __len__(self) -> int:
        return len(self._queue)

    def schedule(self, operations: Iterable[Operation], lookup: StateLookup) -> Decision:
        """New operations from an UpdateWorkload, then one re-evaluation."""
        decision = Decision()
        for op in operations:
            dropped = self._queue.pop(op.name, None)
            if dropped is not None:
                log.info("workload %s: dropping its queued %s for a newer operation", op.name, _kind(dropped))
            decision.extend(self._accept(op, lookup))
        decision.extend(self.reevaluate(lookup))
        return decision

    def _accept(self, op: Operation, lookup: StateLookup) -> Decision:
        match op:
            case Create(spec):
                if add_conditions_met(spec, lookup):
                    return Decision(ready=[op])
                self._queue[op.name] = QueuedCreate(spec)
                return Decision(report=[_waiting_to_start(spec)])
            case Update(spec, request):
                if not delete_conditions_met(request, lookup):
                    self._queue[op.name] = UpdateDelete(spec, request)
                    return Decision(report=[_waiting_to_stop(request)])
                if add_conditions_met(spec, lookup):
                    return Decision(ready=[op])
                self._queue[op.name] = UpdateCreate(spec, request)
                return Decision(ready=[UpdateDeleteOnly(request)], report=[_waiting_to_start(spec)])
            case Delete(request):
                if delete_conditions_met(request, lookup):
                    return Decision(ready=[op])
                self._queue[op.name] = QueuedDelete(request)
                return Decision(report=[_waiting_to_stop(request)])
            case UpdateDeleteOnly():
                log.warning("workload %s: UpdateDeleteOnly is never scheduled from outside; ignored", op.name)
                return Decision()

    def reevaluate(self, lookup: StateLookup) -> Decision:
        """Check every queued entry again; waiting entries stay silently."""
        decision = Decision()
        entries, self._queue = self._queue, {}
        for name, entry in entries.items():
            match entry:
                case QueuedCreate(spec):
                    if add_conditions_met(spec, lookup):
                        decision.ready.append(Create(spec))
                        continue
                case UpdateCreate(spec, request):
                    if add_conditions_met(spec, lookup):
                        decision.ready.append(Update(spec, request))
                        continue
                case UpdateDelete(spec, request):
                    if delete_conditions_met(request, lookup):
                        if add_conditions_met(spec, lookup):
                            decision.ready.append(Update(spec, request))
                            continue
                        decision.ready.append(UpdateDeleteOnly(request))
                        decision.report.append(_waiting_to_start(spec))
                        self._queue[name] = UpdateCreate(spec, request)
                        continue
                case QueuedDelete(request):
                    if delete_conditions_met(request, lookup):
                        decision.ready.append(Delete(request))
                        continue
            self._queue[name] = entry
        return decision


def _kind(entry: QueueEntry) -> str:
    return type(entry).__name__
