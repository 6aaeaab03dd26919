"""The workload-state store and the stopping hysteresis.

Pure logic: no I/O, no asyncio. The store maps a *workload name* to its last
known ExecutionState, for this agent's workloads (after the hysteresis) and for
other agents' workloads (as the server sent them). It feeds the dependency
checks of the scheduler and the hysteresis; nothing else reads it. Besides,
it remembers the last full WorkloadState of every own workload, so the
manager can re-send them after a reconnect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ankaios_agent.agent.model import ExecutionState, State, StateKind, WorkloadState

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
    """Last known state per workload name, own and other agents'."""

    def __init__(self) -> None:
        self._states: dict[str, ExecutionState] = {}
        self._own: dict[str, WorkloadState] = {}

    def get(self, workload: str) -> ExecutionState | None:
        return self._states.get(workload)

    def __contains__(self, workload: object) -> bool:
        return workload in self._states

    def apply_own(self, state: WorkloadState) -> WorkloadState:
        """Hysteresis, then store; returns the state to send (the first two steps of the own-state path)."""
        name = state.instance.workload
        # Only this agent's own last state holds: another agent's state under the same
        # name (a workload moving here) must not turn this agent's Running into its Stopping.
        held = self._own.get(name)
        effective = WorkloadState(state.instance, next_state(held.state if held else None, state.state))
        if effective.state.state.kind is StateKind.REMOVED:
            self._states.pop(name, None)
            self._own.pop(name, None)
        else:
            self._states[name] = effective.state
            self._own[name] = effective
        return effective

    def store_others(self, states: Iterable[WorkloadState]) -> None:
        """States of other agents' workloads, as received: no hysteresis."""
        for state in states:
            name = state.instance.workload
            if state.state.state.kind is StateKind.REMOVED:
                self._states.pop(name, None)
            else:
                self._states[name] = state.state

    def own_states(self) -> list[WorkloadState]:
        """The last state sent for every own workload that is not Removed, by workload name."""
        return [self._own[name] for name in sorted(self._own)]
