"""The workload-state store and the stopping hysteresis.

Pure logic: no I/O, no asyncio. The store holds the last known ExecutionState
of this agent's workloads (after the hysteresis) and of other agents'
workloads (as the server sent them). It feeds the dependency checks of the
scheduler and the hysteresis; nothing else reads it. Besides, it remembers
the last full WorkloadState of every own workload, so the manager can re-send
them after a reconnect.

How states are keyed is a rule of the session's dialect (behaviour "v1.0.1:
store keys"): v0.3.1 keeps one state per workload name (a state of a new
instance replaces the old one's, a ``Removed`` of any instance clears the
name); v1.0.1 keeps one per instance, so that during an update the old
instance's state and the new one's are both known, and ``Removed`` clears just
that instance. Either way :meth:`StateStore.states` answers with every state
known under a workload name, which is what a dependency names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from ankaios_agent.agent.model import ExecutionState, InstanceName, State, StateKind, WorkloadState

_T = TypeVar("_T", ExecutionState, WorkloadState)

# The stopping hysteresis as a transition table: while the stored state is one of the
# HOLDING states, an incoming state from the SUPPRESSED set is replaced by the
# stored one; every other pair lets the incoming state through.
HOLDING: frozenset[State] = frozenset({State.STOPPING_REQUESTED_AT_RUNTIME, State.STOPPING_WAITING_TO_STOP})
SUPPRESSED: frozenset[State] = frozenset(
    {
        State.RUNNING_OK,
        State.SUCCEEDED_OK,
        State.FAILED_EXEC_FAILED,
        State.FAILED_LOST,
        State.FAILED_UNKNOWN,
    }
)
TRANSITIONS: Mapping[State, frozenset[State]] = {held: SUPPRESSED for held in HOLDING}
"""stored state -> incoming states that are replaced by the stored one."""


def next_state(old: ExecutionState | None, new: ExecutionState) -> ExecutionState:
    """The state that is stored and sent for an own workload.

    Compares state and substate only; when the incoming state is suppressed the
    stored one is kept *including* its additionalInfo.
    """
    if old is not None and new.state in TRANSITIONS.get(old.state, frozenset()):
        return old
    return new


class StateStore:
    """Last known states under each workload name, own and other agents'."""

    def __init__(self, *, per_instance: Callable[[], bool] = lambda: False) -> None:
        """``per_instance``: the current session's rule, read at every store and removal, so a
        server of the other version changes the keying of what comes next. A name stored per
        instance and then stored by name keeps just the new state."""
        self._per_instance = per_instance
        # workload name -> instance -> state, oldest first (a store moves an entry to the end)
        self._states: dict[str, dict[InstanceName, ExecutionState]] = {}
        self._own: dict[str, dict[InstanceName, WorkloadState]] = {}

    def get(self, workload: str) -> ExecutionState | None:
        """The newest state stored under ``workload``, or None."""
        by_instance = self._states.get(workload)
        return by_instance[next(reversed(by_instance))] if by_instance else None

    def states(self, workload: str) -> list[ExecutionState]:
        """Every state known under ``workload`` (several only when keyed per instance)."""
        by_instance = self._states.get(workload)
        return list(by_instance.values()) if by_instance else []

    def __contains__(self, workload: object) -> bool:
        return workload in self._states

    def apply_own(self, state: WorkloadState) -> WorkloadState:
        """Hysteresis, then store; returns the state to send (the first two steps of the own-state path)."""
        instance = state.instance
        # Only this agent's own last state holds: another agent's state under the same
        # name (a workload moving here) must not turn this agent's Running into its Stopping.
        own = self._own.get(instance.workload, {})
        held = own.get(instance) if self._per_instance() else next(reversed(own.values()), None)
        effective = WorkloadState(instance, next_state(held.state if held else None, state.state))
        if effective.state.state.kind is StateKind.REMOVED:
            self._remove(self._states, instance)
            self._remove(self._own, instance)
        else:
            self._put(self._states, instance, effective.state)
            self._put(self._own, instance, effective)
        return effective

    def store_others(self, states: Iterable[WorkloadState]) -> None:
        """States of other agents' workloads, as received: no hysteresis."""
        for state in states:
            if state.state.state.kind is StateKind.REMOVED:
                self._remove(self._states, state.instance)
            else:
                self._put(self._states, state.instance, state.state)

    def own_states(self) -> list[WorkloadState]:
        """The last state sent for every own instance that is not Removed, by workload name."""
        return [state for name in sorted(self._own) for state in self._own[name].values()]

    def _put(self, table: dict[str, dict[InstanceName, _T]], instance: InstanceName, value: _T) -> None:
        if not self._per_instance():
            table[instance.workload] = {instance: value}
            return
        by_instance = table.setdefault(instance.workload, {})
        by_instance.pop(instance, None)
        by_instance[instance] = value

    def _remove(self, table: dict[str, dict[InstanceName, _T]], instance: InstanceName) -> None:
        if not self._per_instance():
            table.pop(instance.workload, None)
            return
        by_instance = table.get(instance.workload)
        if by_instance is not None:
            by_instance.pop(instance, None)
            if not by_instance:
                del table[instance.workload]
