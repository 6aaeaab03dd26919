"""The restart-policy decisions of a workload loop, as pure functions.

No I/O, no asyncio: the loop passes in what it observed and the time, and keeps
the results (the restart count, the timer) itself.

* Which ended states restart: ExecFailed for ``ON_FAILURE``, ExecFailed and
  Succeeded for ``ALWAYS``; Lost and Unknown never do.
* The back-off: the first restart of a crash loop is immediate, each further one
  waits longer up to ``restart_backoff_cap``; a workload that ran for
  ``restart_backoff_reset_after`` without interruption starts over at no delay.
  The exit state stays visible during the back-off.
* How: with the v1.0.1 rules a container that ended with success is started
  again where the runtime can (without Stopping/Removed); otherwise the restart
  is the update sequence with the same spec.
"""

from __future__ import annotations

from collections.abc import Mapping

from ankaios_agent.agent.lifecycle_rules import LifecycleRules
from ankaios_agent.agent.model import ExecutionState, RestartPolicy, State
from ankaios_agent.agent.ports import Runtime
from ankaios_agent.agent.timings import AgentTimings

_RESTART_ON: Mapping[RestartPolicy, frozenset[State]] = {
    RestartPolicy.NEVER: frozenset(),
    RestartPolicy.ON_FAILURE: frozenset({State.FAILED_EXEC_FAILED}),
    RestartPolicy.ALWAYS: frozenset({State.FAILED_EXEC_FAILED, State.SUCCEEDED_OK}),
}


def restart_wanted(policy: RestartPolicy, state: ExecutionState) -> bool:
    """Only ExecFailed (and Succeeded for ALWAYS) restart; Lost and Unknown never do."""
    return state.state in _RESTART_ON[policy]


def next_restart(
    timings: AgentTimings, restarts: int, running_since: float | None, now: float
) -> tuple[float, int]:
    """The delay before the next restart and the restart count after it.

    ``restarts`` is the count of restarts so far in this crash loop; it starts over
    when the instance has been running since ``running_since`` long enough.
    """
    if running_since is not None and now - running_since >= timings.restart_backoff_reset_after:
        restarts = 0
    return timings.restart_delay(restarts), restarts + 1


def reusable_id(
    rules: LifecycleRules,
    runtime: Runtime | None,
    runtime_id: str | None,
    observed: ExecutionState | None,
) -> str | None:
    """The id of the container to start again for a restart, or None to replace it."""
    if (
        rules.reuse_succeeded
        and runtime is not None
        and runtime.reuses_containers
        and observed is not None
        and observed.state is State.SUCCEEDED_OK
    ):
        return runtime_id
    return None
