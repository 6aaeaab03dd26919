"""The restart-policy decisions of a workload loop, table by table."""

from __future__ import annotations

import pytest

from ankaios_agent.agent.fakes import FakeRuntime
from ankaios_agent.agent.lifecycle_rules import V0_3_RULES, V1_RULES, LifecycleRules
from ankaios_agent.agent.model import ExecutionState, RestartPolicy
from ankaios_agent.agent.timings import AgentTimings
from ankaios_agent.agent.unsupported_runtime import UnsupportedRuntime
from ankaios_agent.agent.workload_restart import next_restart, restart_wanted, reusable_id

SUCCEEDED = ExecutionState.succeeded()
EXEC_FAILED = ExecutionState.exec_failed(1)


@pytest.mark.parametrize(
    ("policy", "state", "wanted"),
    [
        (RestartPolicy.NEVER, EXEC_FAILED, False),
        (RestartPolicy.NEVER, SUCCEEDED, False),
        (RestartPolicy.ON_FAILURE, EXEC_FAILED, True),
        (RestartPolicy.ON_FAILURE, SUCCEEDED, False),
        (RestartPolicy.ALWAYS, EXEC_FAILED, True),
        (RestartPolicy.ALWAYS, SUCCEEDED, True),
        (RestartPolicy.ALWAYS, ExecutionState.running(), False),
        (RestartPolicy.ALWAYS, ExecutionState.lost(), False),
        (RestartPolicy.ALWAYS, ExecutionState.unknown(), False),
    ],
)
def test_only_exec_failed_and_for_always_succeeded_restart(
    policy: RestartPolicy, state: ExecutionState, wanted: bool
) -> None:
    assert restart_wanted(policy, state) is wanted


TIMINGS = AgentTimings(
    restart_backoff_initial=1.0,
    restart_backoff_factor=2.0,
    restart_backoff_cap=4.0,
    restart_backoff_reset_after=10.0,
)


@pytest.mark.parametrize(
    ("restarts", "running_since", "now", "expected"),
    [
        (0, None, 0.0, (0.0, 1)),  # the first restart of a crash loop is immediate
        (1, None, 0.0, (1.0, 2)),
        (2, 5.0, 6.0, (2.0, 3)),
        (3, 5.0, 14.9, (4.0, 4)),
        (10**6, None, 0.0, (4.0, 10**6 + 1)),  # stays at the cap
        (5, 5.0, 15.0, (0.0, 1)),  # ran long enough: starts over
        (5, 0.0, 100.0, (0.0, 1)),
    ],
)
def test_restart_back_off_grows_to_its_cap_and_starts_over_after_a_long_run(
    restarts: int, running_since: float | None, now: float, expected: tuple[float, int]
) -> None:
    assert next_restart(TIMINGS, restarts, running_since, now) == expected


@pytest.mark.parametrize(
    ("rules", "reuses", "observed", "expected"),
    [
        (V1_RULES, True, SUCCEEDED, "c1"),
        (V1_RULES, True, EXEC_FAILED, None),
        (V1_RULES, True, None, None),
        (V1_RULES, False, SUCCEEDED, None),
        (V0_3_RULES, True, SUCCEEDED, None),
    ],
)
def test_only_a_container_that_ended_with_success_is_started_again_where_the_rules_and_runtime_allow(
    rules: LifecycleRules, reuses: bool, observed: ExecutionState | None, expected: str | None
) -> None:
    runtime = FakeRuntime()
    runtime.reuses_containers = reuses
    assert reusable_id(rules, runtime, "c1", observed) == expected


def test_nothing_is_started_again_without_a_runtime_or_on_one_the_agent_lacks() -> None:
    assert reusable_id(V1_RULES, None, "c1", SUCCEEDED) is None
    assert reusable_id(V1_RULES, UnsupportedRuntime("other"), "c1", SUCCEEDED) is None
