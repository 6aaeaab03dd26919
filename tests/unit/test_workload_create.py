"""The pure parts of a create attempt: what a retryable failure reports, which runtime runs it."""

from __future__ import annotations

import pytest

from ankaios_agent.agent.fakes import FakeRuntime
from ankaios_agent.agent.lifecycle_rules import V0_3_RULES, V1_RULES, LifecycleRules
from ankaios_agent.agent.model import ExecutionState
from ankaios_agent.agent.unsupported_runtime import UnsupportedRuntime
from ankaios_agent.agent.workload_create import retry_state, runtime_for
from tests.unit.lifecycle_support import spec


@pytest.mark.parametrize(
    ("rules", "number", "expected"),
    [
        (V0_3_RULES, 0, ExecutionState.starting_failed("busy")),
        (V1_RULES, 1, ExecutionState.retrying(1, "busy")),
        (V1_RULES, 7, ExecutionState.retrying(7, "busy")),
    ],
)
def test_a_retryable_failure_is_numbered_only_when_retrying_without_limit(
    rules: LifecycleRules, number: int, expected: ExecutionState
) -> None:
    assert retry_state(rules, number, "busy") == expected


def test_a_workload_of_a_runtime_the_agent_lacks_gets_the_stand_in() -> None:
    podman = FakeRuntime()
    assert runtime_for({"podman": podman}, spec("a")) is podman
    other = runtime_for({"podman": podman}, spec("a", runtime="other"))
    assert isinstance(other, UnsupportedRuntime)
