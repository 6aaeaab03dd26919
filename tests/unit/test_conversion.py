"""Protobuf <-> domain conversion (behaviour "Decoding", "Wire contract")."""

from __future__ import annotations

import hashlib
import logging
from typing import cast

import pytest

from ankaios_agent.agent import conversion
from ankaios_agent.agent.errors import ConversionError
from ankaios_agent.agent.model import (
    AGENT_REQUEST_PREFIX,
    AddCondition,
    CompleteStateRequest,
    DeleteCondition,
    DeleteRequest,
    DesiredState,
    DesiredStateRequest,
    ExecutionState,
    InstanceName,
    Request,
    Response,
    RestartPolicy,
    State,
    UpdateStateRequest,
    UpdateWorkload,
    UpdateWorkloadState,
    WorkloadSpec,
    WorkloadState,
)
from ankaios_agent.proto import ankaios_pb2 as pb

AGENT = "agent_A"
INST = InstanceName("nginx", AGENT, "abc")
WIRE_INST = pb.WorkloadInstanceName(workloadName="nginx", agentName=AGENT, id="abc")

# Every State with the oneof member and number it must have on the wire (behaviour "Wire contract").
WIRE_OF_STATE = {
    State.AGENT_DISCONNECTED: ("agentDisconnected", 0),
    State.PENDING_INITIAL: ("pending", 0),
    State.PENDING_WAITING_TO_START: ("pending", 1),
    State.PENDING_STARTING: ("pending", 2),
    State.PENDING_STARTING_FAILED: ("pending", 8),
    State.RUNNING_OK: ("running", 0),
    State.STOPPING: ("stopping", 0),
    State.STOPPING_WAITING_TO_STOP: ("stopping", 1),
    State.STOPPING_REQUESTED_AT_RUNTIME: ("stopping", 2),
    State.STOPPING_DELETE_FAILED: ("stopping", 8),
    State.SUCCEEDED_OK: ("succeeded", 0),
    State.FAILED_EXEC_FAILED: ("failed", 0),
    State.FAILED_UNKNOWN: ("failed", 1),
    State.FAILED_LOST: ("failed", 2),
    State.NOT_SCHEDULED: ("notScheduled", 0),
    State.REMOVED: ("removed", 0),
}


def test_every_state_is_in_the_table() -> None:
    assert set(WIRE_OF_STATE) == set(State)


@pytest.mark.parametrize("state", list(State))
def test_every_state_encodes_with_its_oneof_member_set_explicitly(state: State) -> None:
    """behaviour "Wire contract": the oneof case is set even for value 0, and survives the wire."""
    field, number = WIRE_OF_STATE[state]
    wire = conversion.execution_state_to_proto(ExecutionState(state, "info"))
    decoded = pb.ExecutionState.FromString(wire.SerializeToString())
    assert decoded.WhichOneof("ExecutionStateEnum") == field
    assert getattr(decoded, field) == number
    assert decoded.additionalInfo == "info"


@pytest.mark.parametrize("state", list(State))
def test_every_state_round_trips(state: State) -> None:
    """behaviour "Decoding": decoding what we encode gives the same state and info back."""
    original = ExecutionState(state, "x")
    assert conversion.execution_state_from_proto(conversion.execution_state_to_proto(original)) == original


def test_running_ok_is_on_the_wire_bytes() -> None:
    """behaviour "Wire contract": `running = RUNNING_OK = 0` must still be encoded (field 4, varint 0)."""
    wire = conversion.execution_state_to_proto(ExecutionState.running())
    assert wire.SerializeToString() == b"\x20\x00"


@pytest.mark.parametrize(
    ("field", "number", "expected"),
    [
        ("pending", 3, State.PENDING_STARTING_FAILED),
        ("pending", 99, State.PENDING_STARTING_FAILED),
        ("stopping", 3, State.STOPPING),
        ("stopping", 7, State.STOPPING),
        ("failed", 5, State.FAILED_UNKNOWN),
        ("running", 4, State.RUNNING_OK),
        ("succeeded", 1, State.SUCCEEDED_OK),
        ("removed", 3, State.REMOVED),
        ("agentDisconnected", 2, State.AGENT_DISCONNECTED),
        ("notScheduled", 1, State.NOT_SCHEDULED),
    ],
)
def test_unknown_substates_are_normalised(field: str, number: int, expected: State) -> None:
    """behaviour "Decoding": unknown substate integers map to the documented fallback."""
    wire = pb.ExecutionState(additionalInfo="i")
    setattr(wire, field, number)
    assert conversion.execution_state_from_proto(wire) == ExecutionState(expected, "i")


def test_execution_state_without_oneof_is_failed_unknown_keeping_info() -> None:
    """behaviour "Decoding": no oneof member -> Failed(Unknown), additionalInfo kept."""
    state = conversion.execution_state_from_proto(pb.ExecutionState(additionalInfo="kept"))
    assert state == ExecutionState(State.FAILED_UNKNOWN, "kept")


def _from_server_states(*states: pb.WorkloadState) -> pb.FromServer:
    return pb.FromServer(updateWorkloadState=pb.UpdateWorkloadState(workloadStates=list(states)))


def test_workload_state_without_execution_state_is_unknown_with_reference_text() -> None:
    """behaviour "Decoding": 'Cannot covert, proceeding with unknown' (typo kept)."""
    msg = conversion.from_server(_from_server_states(pb.WorkloadState(instanceName=WIRE_INST)), AGENT)
    assert msg == UpdateWorkloadState(
        (WorkloadState(INST, ExecutionState(State.FAILED_UNKNOWN, "Cannot covert, proceeding with unknown")),)
    )


def test_workload_state_without_instance_name_is_dropped_with_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """behaviour "Decoding": the entry is dropped, the other entries are kept."""
    good = pb.WorkloadState(instanceName=WIRE_INST, executionState=pb.ExecutionState(running=pb.RUNNING_OK))
    bad = pb.WorkloadState(executionState=pb.ExecutionState(running=pb.RUNNING_OK))
    with caplog.at_level(logging.WARNING):
        msg = conversion.from_server(_from_server_states(bad, good), AGENT)
    assert msg == UpdateWorkloadState((WorkloadState(INST, ExecutionState.running()),))
    assert "without instance name" in caplog.text


def _added(**overrides: object) -> pb.AddedWorkload:
    fields: dict[str, object] = {
        "instanceName": WIRE_INST,
        "runtime": "podman",
        "runtimeConfig": "image: x",
        "restartPolicy": pb.ALWAYS,
        "dependencies": {"db": pb.ADD_COND_RUNNING, "init": pb.ADD_COND_SUCCEEDED, "f": pb.ADD_COND_FAILED},
        "tags": [pb.Tag(key="k", value="v")],
    }
    fields.update(overrides)
    return pb.AddedWorkload(**fields)  # type: ignore[arg-type]


def test_update_workload_decodes_every_field() -> None:
    """behaviour "Wire contract": AddedWorkload and DeletedWorkload, every enum value of the conditions."""
    wire = pb.FromServer(
        updateWorkload=pb.UpdateWorkload(
            addedWorkloads=[_added()],
            deletedWorkloads=[
                pb.DeletedWorkload(
                    instanceName=WIRE_INST,
                    dependencies={"a": pb.DEL_COND_RUNNING, "b": pb.DEL_COND_NOT_PENDING_NOR_RUNNING},
                )
            ],
        )
    )
    assert conversion.from_server(wire, AGENT) == UpdateWorkload(
        added=(
            WorkloadSpec(
                instance=INST,
                runtime="podman",
                runtime_config="image: x",
                restart_policy=RestartPolicy.ALWAYS,
                dependencies={
                    "db": AddCondition.RUNNING,
                    "init": AddCondition.SUCCEEDED,
                    "f": AddCondition.FAILED,
                },
                tags=(("k", "v"),),
            ),
        ),
        deleted=(
            DeleteRequest(INST, {"a": DeleteCondition.RUNNING, "b": DeleteCondition.NOT_PENDING_NOR_RUNNING}),
        ),
    )


@pytest.mark.parametrize("policy", [pb.NEVER, pb.ON_FAILURE, pb.ALWAYS])
def test_every_restart_policy_decodes(policy: int) -> None:
    msg = conversion.from_server(
        pb.FromServer(updateWorkload=pb.UpdateWorkload(addedWorkloads=[_added(restartPolicy=policy)])), AGENT
    )
    assert isinstance(msg, UpdateWorkload)
    assert msg.added[0].restart_policy == RestartPolicy(policy)


@pytest.mark.parametrize(
    "bad",
    [
        pb.UpdateWorkload(addedWorkloads=[_added(), _added(restartPolicy=3)]),
        pb.UpdateWorkload(addedWorkloads=[_added(dependencies={"db": 3})]),
        pb.UpdateWorkload(addedWorkloads=[_added(), pb.AddedWorkload(runtime="podman")]),
        pb.UpdateWorkload(
            addedWorkloads=[_added()],
            deletedWorkloads=[
                pb.DeletedWorkload(instanceName=WIRE_INST, dependencies={"x": cast(pb.DeleteCondition, 2)})
            ],
        ),
        pb.UpdateWorkload(deletedWorkloads=[pb.DeletedWorkload()]),
    ],
    ids=["restart-policy", "add-condition", "added-without-name", "delete-condition", "deleted-without-name"],
)
def test_one_bad_entry_drops_the_whole_update_workload_with_warning(
    bad: pb.UpdateWorkload, caplog: pytest.LogCaptureFixture
) -> None:
    """behaviour "Decoding": the whole UpdateWorkload goes; the warning names the workload."""
    with caplog.at_level(logging.WARNING, logger="ankaios_agent.agent.conversion"):
        assert conversion.from_server(pb.FromServer(updateWorkload=bad), AGENT) is None
    record = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(record) == 1
    assert "UpdateWorkload" in record[0].getMessage()
    if bad.addedWorkloads and bad.addedWorkloads[-1].HasField("instanceName") and not bad.deletedWorkloads:
        assert "'nginx'" in record[0].getMessage()


def test_from_server_without_content_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    """behaviour "Decoding": FromServer with no oneof member is dropped."""
    with caplog.at_level(logging.WARNING):
        assert conversion.from_server(pb.FromServer(), AGENT) is None
    assert "without content" in caplog.text


def test_response_without_content_is_dropped() -> None:
    """behaviour "Decoding": Response without content is dropped."""
    assert conversion.from_server(pb.FromServer(response=pb.Response(requestId="wl@1")), AGENT) is None


def test_response_body_is_opaque_bytes_without_request_id() -> None:
    """Brief contract: Response.body is the serialized Response with requestId cleared."""
    wire = pb.Response(requestId="wl@1", UpdateStateSuccess=pb.UpdateStateSuccess(addedWorkloads=["a.b.c"]))
    msg = conversion.from_server(pb.FromServer(response=wire), AGENT)
    assert isinstance(msg, Response)
    assert msg.request_id == "wl@1"
    body = pb.Response.FromString(msg.body)
    assert body.requestId == ""
    assert list(body.UpdateStateSuccess.addedWorkloads) == ["a.b.c"]


def test_response_complete_state_is_normalised_like_the_reference() -> None:
    """behaviour "Decoding": startupState and desiredState always set, unknown substates normalised."""
    bad_state = pb.ExecutionState(pending=cast(pb.Pending, 5))
    wire = pb.Response(
        requestId="wl@1",
        completeState=pb.CompleteState(
            workloadStates=[pb.WorkloadState(instanceName=WIRE_INST, executionState=bad_state)]
        ),
    )
    msg = conversion.from_server(pb.FromServer(response=wire), AGENT)
    assert isinstance(msg, Response)
    body = pb.Response.FromString(msg.body)
    assert body.completeState.HasField("startupState")
    assert body.completeState.HasField("desiredState")
    assert body.completeState.workloadStates[0].executionState.pending == pb.PENDING_STARTING_FAILED


def test_response_complete_state_with_invalid_enum_is_dropped() -> None:
    """behaviour "Decoding": a CompleteState holding a Workload with an invalid enum drops the response."""
    state = pb.State(workloads={"w": pb.Workload(agent="x", restartPolicy=cast(pb.RestartPolicy, 9))})
    wire = pb.Response(requestId="wl@1", completeState=pb.CompleteState(desiredState=state))
    assert conversion.from_server(pb.FromServer(response=wire), AGENT) is None


def _own_request_response(**content: object) -> pb.FromServer:
    return pb.FromServer(response=pb.Response(requestId=AGENT_REQUEST_PREFIX + "7", **content))  # type: ignore[arg-type]


def test_answer_to_own_request_becomes_desired_state_of_this_agent_only() -> None:
    """behaviour "Reconciliation after a hello": only this agent's workloads, id = sha256(runtimeConfig)."""
    desired = pb.State(
        apiVersion="v0.1",
        workloads={
            "mine": pb.Workload(
                agent=AGENT,
                runtime="podman",
                runtimeConfig="config",
                restartPolicy=pb.ON_FAILURE,
                dependencies={"other": pb.ADD_COND_RUNNING},
                tags=[pb.Tag(key="a", value="b")],
            ),
            "theirs": pb.Workload(agent="agent_B", runtime="podman", runtimeConfig="c"),
        },
    )
    msg = conversion.from_server(
        _own_request_response(completeState=pb.CompleteState(desiredState=desired)), AGENT
    )
    expected_id = "b79606fb3afea5bd1609ed40b622142f1c98125abcfe89a76a661b0e8e343910"
    assert expected_id == hashlib.sha256(b"config").hexdigest()
    assert msg == DesiredState(
        request_id=AGENT_REQUEST_PREFIX + "7",
        workloads=(
            WorkloadSpec(
                instance=InstanceName("mine", AGENT, expected_id),
                runtime="podman",
                runtime_config="config",
                restart_policy=RestartPolicy.ON_FAILURE,
                dependencies={"other": AddCondition.RUNNING},
                tags=(("a", "b"),),
            ),
        ),
    )


def test_answer_to_own_request_with_error_becomes_desired_state_error() -> None:
    msg = conversion.from_server(_own_request_response(error=pb.Error(message="boom")), AGENT)
    assert msg == DesiredState(request_id=AGENT_REQUEST_PREFIX + "7", error="boom")


def test_own_desired_state_with_invalid_enum_reports_error_naming_workload() -> None:
    desired = pb.State(workloads={"mine": pb.Workload(agent=AGENT, restartPolicy=cast(pb.RestartPolicy, 7))})
    msg = conversion.from_server(
        _own_request_response(completeState=pb.CompleteState(desiredState=desired)), AGENT
    )
    assert isinstance(msg, DesiredState)
    assert msg.workloads == ()
    assert msg.error is not None and "'mine'" in msg.error


def test_agent_hello() -> None:
    """behaviour "Session": ToServer{agentHello{agentName}}."""
    assert conversion.agent_hello("n1") == pb.ToServer(agentHello=pb.AgentHello(agentName="n1"))


def test_workload_state_is_sent_one_per_message() -> None:
    """behaviour "Session": exactly one WorkloadState per updateWorkloadState."""
    wire = conversion.to_server(WorkloadState(INST, ExecutionState.removed()))
    assert list(wire.updateWorkloadState.workloadStates) == [
        pb.WorkloadState(instanceName=WIRE_INST, executionState=pb.ExecutionState(removed=pb.REMOVED))
    ]
    assert (
        wire.updateWorkloadState.workloadStates[0].executionState.WhichOneof("ExecutionStateEnum")
        == "removed"
    )


def test_request_is_encoded_with_its_prefixed_id() -> None:
    """A checked control-interface request leaves with the id it carries (already prefixed)."""
    wire = conversion.to_server(Request(request_id="wl@5", content=CompleteStateRequest(("a",))))
    assert wire.request == pb.Request(
        requestId="wl@5", completeStateRequest=pb.CompleteStateRequest(fieldMask=["a"])
    )


def test_update_state_request_without_new_state_keeps_the_absence() -> None:
    wire = conversion.to_server(Request("wl@5", content=UpdateStateRequest(None, ("desiredState",))))
    assert wire.request.HasField("updateStateRequest")
    assert not wire.request.updateStateRequest.HasField("newState")
    assert list(wire.request.updateStateRequest.updateMask) == ["desiredState"]


def test_request_body_gets_the_request_id() -> None:
    """A request with an opaque body (no checked content) gets its id set at the edge."""
    body = pb.Request(completeStateRequest=pb.CompleteStateRequest(fieldMask=["a"])).SerializeToString()
    wire = conversion.to_server(Request(request_id="wl@5", body=body))
    assert wire.request == pb.Request(
        requestId="wl@5", completeStateRequest=pb.CompleteStateRequest(fieldMask=["a"])
    )


def test_request_with_garbage_body_raises_conversion_error() -> None:
    with pytest.raises(ConversionError):
        conversion.to_server(Request(request_id="wl@5", body=b"\xff\xff\xff"))


def test_control_request_without_content_raises_conversion_error() -> None:
    with pytest.raises(ConversionError):
        conversion.control_request_content(pb.Request(requestId="1"))


def test_desired_state_request_asks_for_desired_workloads() -> None:
    """behaviour "Reconciliation after a hello": CompleteStateRequest with fieldMask
    desiredState.workloads."""
    wire = conversion.to_server(DesiredStateRequest(request_id=AGENT_REQUEST_PREFIX + "1"))
    assert wire == pb.ToServer(
        request=pb.Request(
            requestId=AGENT_REQUEST_PREFIX + "1",
            completeStateRequest=pb.CompleteStateRequest(fieldMask=["desiredState.workloads"]),
        )
    )
