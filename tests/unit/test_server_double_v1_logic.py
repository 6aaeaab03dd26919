"""Pure parts of the v1.0.1 server double: object tree, masks, versions, names, delete graph."""

from __future__ import annotations

from typing import Any

import pytest

from ankaios_agent.proto import ank_base_pb2 as base
from ankaios_agent.proto import grpc_api_pb2 as api
from tests.server_double_v1 import events, peer, tree
from tests.server_double_v1.campaigns import LogCampaigns
from tests.server_double_v1.state import (
    DeleteGraph,
    Instance,
    StateError,
    apply_update,
    diff,
    protocol_version_supported,
    render_text,
    rendered_state,
    state_from_yaml,
    valid_workload_state,
    view,
)

TREE: dict[str, Any] = {
    "desiredState": {
        "apiVersion": "v1",
        "workloads": {"nginx": {"agent": "A", "tags": {"k": "v"}}, "db": {"agent": "B"}},
    },
    "workloadStates": {
        "A": {"nginx": {"1": {"state": "Running", "subState": "Ok", "additionalInfo": ""}}},
        "B": {"db": {"2": {"state": "Pending", "subState": "Initial", "additionalInfo": ""}}},
    },
    "agents": {"A": {"tags": {"x": "y"}}},
}


@pytest.mark.parametrize(
    ("masks", "expected"),
    [
        ([], {}),
        (["agents"], {"agents": {"A": {"tags": {"x": "y"}}}}),
        (
            ["desiredState.workloads.nginx.agent"],
            {"desiredState": {"apiVersion": "v1", "workloads": {"nginx": {"agent": "A"}}}},
        ),
        (["desiredState.workloads.missing"], {"desiredState": {"apiVersion": "v1"}}),
        (["workloadStates.*.db"], {"workloadStates": {"B": {"db": TREE["workloadStates"]["B"]["db"]}}}),
        (
            ["workloadStates.A.nginx.1.subState"],
            {"workloadStates": {"A": {"nginx": {"1": {"subState": "Ok", "state": "Running"}}}}},
        ),
        (["workloadStates.C", "nothing.at.all"], {}),
        (
            ["desiredState.workloads.*.agent"],
            {
                "desiredState": {
                    "apiVersion": "v1",
                    "workloads": {"nginx": {"agent": "A"}, "db": {"agent": "B"}},
                }
            },
        ),
    ],
)
def test_field_masks_select_existing_subtrees(masks: list[str], expected: dict[str, Any]) -> None:
    assert tree.select(TREE, masks) == expected


@pytest.mark.parametrize(
    ("masks", "expanded"),
    [
        (["desiredState.workloads"], ["desiredState.workloads", "desiredState.apiVersion"]),
        (["workloadStates.a.w.i.state"], ["workloadStates.a.w.i.state", "workloadStates.a.w.i.subState"]),
        (["workloadStates.a.w.i.subState"], ["workloadStates.a.w.i.subState", "workloadStates.a.w.i.state"]),
        (["workloadStates.a.state"], ["workloadStates.a.state"]),
        (["agents"], ["agents"]),
    ],
)
def test_field_mask_expansion(masks: list[str], expanded: list[str]) -> None:
    assert tree.expand_field_masks(masks) == expanded


@pytest.mark.parametrize(
    ("es", "display", "info"),
    [
        (base.ExecutionState(running=base.RUNNING_OK, additionalInfo=""), "Running(Ok)", ""),
        (
            base.ExecutionState(pending=base.PENDING_STARTING, additionalInfo="Retry 1: x"),
            "Pending(Starting)",
            "Retry 1: x",
        ),
        (base.ExecutionState(agentDisconnected=base.AGENT_DISCONNECTED), "AgentDisconnected", ""),
        (base.ExecutionState(stopping=base.STOPPING_DELETE_FAILED), "Stopping(DeleteFailed)", ""),
        (base.ExecutionState(failed=base.FAILED_EXEC_FAILED), "Failed(ExecFailed)", ""),
        (base.ExecutionState(notScheduled=base.NOT_SCHEDULED), "NotScheduled", ""),
        (base.ExecutionState(removed=base.REMOVED), "Removed", ""),
    ],
)
def test_execution_state_round_trips_through_the_tree(
    es: base.ExecutionState, display: str, info: str
) -> None:
    assert (view(es).display, view(es).info) == (display, info)
    assert tree.from_tree(tree.to_tree(es), base.ExecutionState) == es


def test_complete_state_round_trips_with_wrappers_and_configs() -> None:
    state = state_from_yaml(
        "apiVersion: v1\nworkloads:\n  w:\n    agent: A\n    runtime: podman\n    runtimeConfig: x\n"
        "    files: [{mountPoint: /a, binaryData: aGk=}]\n    configs: {c: conf}\n"
        "configs:\n  conf: {list: [a, b], text: t}\n"
    )
    complete = base.CompleteState(desiredState=state)
    complete.agents.agents["A"].status.cpu_usage.cpu_usage = 3
    assert tree.from_tree(tree.to_tree(complete), base.CompleteState) == complete
    assert tree.to_tree(state)["configs"] == {"conf": {"list": ["a", "b"], "text": "t"}}


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"state": "Sleeping"}, "unknown state"),
        ({"state": "Running", "subState": "Fast"}, "unknown sub-state"),
        ([], "expected a mapping"),
    ],
)
def test_bad_execution_state_trees_are_refused(node: Any, message: str) -> None:
    with pytest.raises(tree.TreeError, match=message):
        tree.from_tree(node, base.ExecutionState)


@pytest.mark.parametrize(
    ("version", "supported"),
    [
        ("1.0.1", True),
        ("1.0.0", True),
        ("1.99.7", True),
        ("1.0.1-rc.1", True),
        ("1.0.1+build", True),
        ("0.3.1", False),
        ("2.0.0", False),
        ("", False),
        ("v1.0.1", False),
        ("1.0", False),
        ("01.0.0", False),
        ("1.0.1 ", False),
    ],
)
def test_protocol_version_is_semver_with_major_one(version: str, supported: bool) -> None:
    assert protocol_version_supported(version) is supported


@pytest.mark.parametrize(
    ("agent", "dns_names", "refused"),
    [
        ("A", ["*"], False),
        ("A", ["A"], False),
        ("A", ["B", "A"], False),
        ("A", [], False),
        ("A", ["B"], True),
        ("A", ["a"], True),
        ("A", ["A*"], True),
    ],
)
def test_agent_name_against_certificate_names(agent: str, dns_names: list[str], refused: bool) -> None:
    assert (peer.name_refusal(agent, dns_names) is not None) is refused


def test_name_refusal_lists_the_names() -> None:
    assert peer.name_refusal("A", ["x", "y"]) == (
        """Agent name 'A' does not match SAN ["x", "y"] in agent certificates!"""
    )


def _state(yaml_workloads: str) -> base.State:
    return state_from_yaml(f"apiVersion: v1\nworkloads:\n{yaml_workloads}")


def test_diff_is_delete_plus_add_for_any_change() -> None:
    old = _state(
        "  a: {agent: A, runtime: p, runtimeConfig: x}\n  b: {agent: A, runtime: p, runtimeConfig: y}\n"
    )
    new = _state(
        "  a: {agent: A, runtime: p, runtimeConfig: x, tags: {t: v}}\n"
        "  b: {agent: A, runtime: p, runtimeConfig: y}\n"
        "  c: {agent: A, runtime: p, runtimeConfig: z}\n"
    )
    changes = diff(old, new)
    assert [n for n, _ in changes.deleted] == ["a"]
    assert [n for n, _ in changes.added] == ["a", "c"]


def test_delete_graph_only_for_running_conditions_and_forgotten() -> None:
    state = _state(
        "  a: {agent: A, runtime: p, runtimeConfig: x}\n"
        "  b: {agent: A, runtime: p, runtimeConfig: y, dependencies: {a: ADD_COND_RUNNING}}\n"
        "  c: {agent: A, runtime: p, runtimeConfig: z, dependencies: {a: ADD_COND_SUCCEEDED}}\n"
    )
    graph = DeleteGraph()
    graph.insert(state.workloads.workloads.items())
    assert graph.conditions("a") == {"b": api.DEL_COND_NOT_PENDING_NOR_RUNNING}
    assert graph.conditions("b") == {}
    graph.forget("a")
    assert graph.conditions("a") == {}


def test_update_mask_removes_what_the_new_state_lacks_and_copies_the_rest() -> None:
    current = base.CompleteState(
        desiredState=_state(
            "  a: {agent: A, runtime: p, runtimeConfig: x}\n  b: {agent: A, runtime: p, runtimeConfig: y}\n"
        )
    )
    new = base.CompleteState(desiredState=_state("  c: {agent: B, runtime: p, runtimeConfig: z}\n"))
    update = apply_update(current, new, ["desiredState.workloads.a", "desiredState.workloads.c"])
    assert sorted(update.desired.workloads.workloads) == ["b", "c"]
    assert update.desired.workloads.workloads["c"].agent == "B"


def test_update_mask_outside_desired_state_and_agents_is_refused() -> None:
    with pytest.raises(StateError, match="Unsupported update mask"):
        apply_update(base.CompleteState(), base.CompleteState(), ["workloadStates.A"])


@pytest.mark.parametrize(
    ("es", "valid"),
    [
        (base.ExecutionState(running=base.RUNNING_OK, additionalInfo=""), True),
        (base.ExecutionState(running=base.RUNNING_OK), False),
        (base.ExecutionState(additionalInfo=""), False),
    ],
)
def test_strict_workload_state_conversion(es: base.ExecutionState, valid: bool) -> None:
    name = base.WorkloadInstanceName(workloadName="w", agentName="A", id="1")
    assert valid_workload_state(base.WorkloadState(instanceName=name, executionState=es)) is valid
    assert not valid_workload_state(base.WorkloadState(executionState=es))


def test_altered_paths_are_topmost_for_added_and_removed_and_leaves_for_updated() -> None:
    old = {"a": {"x": 1, "y": {"z": 2}}, "gone": {"deep": {"er": 1}}}
    new = {"a": {"x": 3, "y": {"z": 2}, "new": {"n": 1}}}
    assert events.altered_paths(old, new) == (["a.new"], ["a.x"], ["gone"])
    assert events.altered_paths(new, new) == ([], [], [])


@pytest.mark.parametrize(
    ("paths", "masks", "seen"),
    [
        (["workloadStates.A.w.1.state"], [], ["workloadStates.A.w.1.state"]),
        (["workloadStates.A.w.1.state"], ["workloadStates"], ["workloadStates.A.w.1.state"]),
        (["workloadStates.A.w.1.state"], ["workloadStates.*.w"], ["workloadStates.A.w.1.state"]),
        (["workloadStates.A.w.1.state"], ["workloadStates.B"], []),
        (["workloadStates.A"], ["workloadStates.*.w"], ["workloadStates.A.w"]),
        (["workloadStates.A"], ["workloadStates.A.other"], []),
    ],
)
def test_paths_within_subscription_masks(paths: list[str], masks: list[str], seen: list[str]) -> None:
    context = {"workloadStates": {"A": {"w": {"1": {"state": "Running"}}}}}
    assert events.paths_within(paths, masks, context) == seen


CONTEXT: dict[str, Any] = {"port": "8080", "web": {"host": "example", "ports": ["1", "2"]}}


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("no templates", "no templates"),
        ("port: {{port}}", "port: 8080"),
        ("{{ web.host }}:{{web.ports.1}}", "example:2"),
        ("{{web.ports.[0]}}", "1"),
        ("{{{port}}}", "8080"),
    ],
)
def test_render_text_resolves_plain_references(text: str, result: str) -> None:
    assert render_text(text, CONTEXT, "w") == result


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{missing}}", "cannot render '{{missing}}'"),
        ("{{web}}", "is not a string"),
        ("{{web.ports.7}}", "cannot render"),
        ("{{#each web.ports}}{{this}}{{/each}}", "plain references only"),
    ],
)
def test_render_text_refuses_what_it_cannot_render(text: str, message: str) -> None:
    with pytest.raises(StateError, match=message):
        render_text(text, CONTEXT, "w")


def test_rendered_state_fills_agent_runtime_config_and_files_and_empties_configs() -> None:
    state = state_from_yaml(
        "apiVersion: v1\nworkloads:\n  w:\n    agent: '{{where.agent}}'\n    runtime: podman\n"
        "    runtimeConfig: 'image: {{where.image}}'\n    configs: {where: site}\n"
        "    files: [{mountPoint: /f, data: 'on {{where.agent}}'}]\n"
        "configs:\n  site: {agent: agent_A, image: nginx}\n"
    )
    workload = rendered_state(state).workloads.workloads["w"]
    assert (workload.agent, workload.runtimeConfig) == ("agent_A", "image: nginx")
    assert workload.files.files[0].data == "on agent_A"
    assert workload.HasField("configs") and not workload.configs.configs
    assert state.workloads.workloads["w"].runtimeConfig == "image: {{where.image}}"


def test_a_missing_config_is_refused() -> None:
    with pytest.raises(StateError, match="references missing config 'nope'"):
        state_from_yaml(
            "apiVersion: v1\nworkloads:\n  w: {agent: A, runtime: p, runtimeConfig: x, configs: {a: nope}}\n"
        )


def test_log_campaigns_keep_existing_names_group_per_agent_and_clean_up_per_agent() -> None:
    def name(workload: str, agent: str) -> base.WorkloadInstanceName:
        return base.WorkloadInstanceName(workloadName=workload, agentName=agent, id="1")

    existing = [Instance("a", "A", "1"), Instance("b", "B", "1"), Instance("c", "B", "1")]
    campaigns = LogCampaigns()
    logs = base.LogsRequest(
        workloadNames=[name("a", "A"), name("b", "B"), name("c", "B"), name("x", "A")], tail=3
    )
    started = campaigns.start("R@w@1", "R", logs, existing)
    assert [n.workloadName for n in started.kept] == ["a", "b", "c"]
    assert {
        agent: [n.workloadName for n in part.workloadNames] for agent, part in started.per_agent.items()
    } == {
        "A": ["a"],
        "B": ["b", "c"],
    }
    assert all(part.tail == 3 for part in started.per_agent.values())
    assert (
        campaigns.start("R@w@2", "R", base.LogsRequest(workloadNames=[name("x", "A")]), existing).kept == []
    )
    assert campaigns.get("R@w@2") is None
    campaigns.start("S@w@1", "S", base.LogsRequest(workloadNames=[name("a", "A")]), existing)
    cleanup = campaigns.agent_gone("A")
    assert cleanup.cancelled == []
    assert [(r, n.workloadName) for r, n in cleanup.stopped] == [("R@w@1", "a"), ("S@w@1", "a")]
    assert campaigns.agent_gone("R").cancelled == ["R@w@1"]
    assert campaigns.get("R@w@1") is None and campaigns.get("S@w@1") is not None
