"""Domain additions for v1.0.1: part of what makes a spec "changed", empty under v0.3.1."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ankaios_agent.agent import conversion as v0
from ankaios_agent.agent.model import (
    AccessRules,
    Base64Content,
    ExecutionState,
    InstanceName,
    LogRule,
    Operation,
    State,
    StateRule,
    TextContent,
    UpdateWorkload,
    WorkloadFile,
    WorkloadSpec,
)
from ankaios_agent.proto import ankaios_pb2 as pb

BASE = WorkloadSpec(InstanceName("web", "agent_A", "1"), "podman", "image: x")


@pytest.mark.parametrize(
    "changed",
    [
        replace(BASE, tags=(("a", "b"),)),
        replace(BASE, configs={"port": "web_port"}),
        replace(BASE, files=(WorkloadFile("/etc/x", TextContent("1")),)),
        replace(BASE, files=(WorkloadFile("/etc/x", Base64Content("1")),)),
        replace(BASE, control_interface_access=AccessRules(allow=(LogRule(("*",)),))),
        replace(BASE, control_interface_access=AccessRules(deny=(StateRule(Operation.READ, ()),))),
    ],
    ids=["tags", "configs", "text file", "binary file", "allow rule", "deny rule"],
)
def test_a_spec_that_differs_only_in_a_v1_field_is_a_different_spec(changed: WorkloadSpec) -> None:
    """Same instance name, other files/rules/tags/configs: the planner must see an update."""
    assert changed.instance == BASE.instance
    assert changed != BASE
    assert replace(changed) == changed


def test_rule_order_is_part_of_the_spec() -> None:
    a, b = StateRule(Operation.READ, ("x",)), LogRule(("y",))
    assert AccessRules((a, b)) != AccessRules((b, a))


def test_configs_are_frozen() -> None:
    source = {"a": "b"}
    spec = replace(BASE, configs=source)
    source["c"] = "d"
    assert dict(spec.configs) == {"a": "b"}
    with pytest.raises(TypeError):
        spec.configs["x"] = "y"  # type: ignore[index]


def test_a_control_interface_is_wanted_only_with_allow_rules() -> None:
    assert not AccessRules().needs_control_interface
    assert not AccessRules(deny=(LogRule(("*",)),)).needs_control_interface
    assert AccessRules(allow=(StateRule(Operation.NOTHING, ()),)).needs_control_interface


def test_the_v031_dialect_leaves_the_v1_fields_empty() -> None:
    wire = pb.FromServer(
        updateWorkload=pb.UpdateWorkload(
            addedWorkloads=[
                pb.AddedWorkload(
                    instanceName=pb.WorkloadInstanceName(workloadName="web", agentName="agent_A", id="1"),
                    runtime="podman",
                    runtimeConfig="image: x",
                    tags=[pb.Tag(key="k", value="v")],
                )
            ]
        )
    )
    decoded = v0.from_server(wire, "agent_A")
    assert isinstance(decoded, UpdateWorkload)
    (spec,) = decoded.added
    assert (spec.configs, spec.files, spec.control_interface_access) == ({}, (), AccessRules())


@pytest.mark.parametrize(
    ("state", "expected", "info"),
    [
        (ExecutionState.retrying(1, "image not found"), State.PENDING_STARTING, "Retry 1: image not found"),
        (ExecutionState.unsupported_runtime(), State.PENDING_STARTING_FAILED, "Unsupported Runtime"),
        (
            ExecutionState.files_failed("write failed for '/x': 'denied'"),
            State.PENDING_STARTING_FAILED,
            "Failed to create workload file: 'write failed for '/x': 'denied''",
        ),
    ],
)
def test_v1_state_texts(state: ExecutionState, expected: State, info: str) -> None:
    assert (state.state, state.info) == (expected, info)
