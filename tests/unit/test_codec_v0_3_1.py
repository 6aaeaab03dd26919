"""The v0.3.1 control-interface codec: one parse per frame, checked requests, framed responses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ankaios_agent.agent import conversion
from ankaios_agent.agent.model import (
    CompleteStateRequest,
    Request,
    Response,
    RestartPolicy,
    UpdateStateRequest,
)
from ankaios_agent.agent.wire_format import serialized
from ankaios_agent.control_interface.codec import Dropped, DropReason, Rejected
from ankaios_agent.control_interface.codec_v0_3_1 import CodecV0_3_1
from ankaios_agent.control_interface.framing import FrameDecoder
from ankaios_agent.proto import ankaios_pb2 as pb

CODEC = CodecV0_3_1()


def _to_server(**kwargs: object) -> bytes:
    return pb.ToServer(**kwargs).SerializeToString()  # type: ignore[arg-type]


def _update(new_state: pb.CompleteState, mask: tuple[str, ...] = ("desiredState.workloads.a",)) -> bytes:
    request = pb.Request(
        requestId="7", updateStateRequest=pb.UpdateStateRequest(newState=new_state, updateMask=mask)
    )
    return _to_server(request=request)


def _one_frame(data: bytes) -> pb.FromServer:
    (payload,) = FrameDecoder().feed(data)
    return pb.FromServer.FromString(payload)


def test_complete_state_request_becomes_domain_request_with_its_own_id() -> None:
    wire = pb.Request(requestId="42", completeStateRequest=pb.CompleteStateRequest(fieldMask=["a.b"]))
    result = CODEC.decode(_to_server(request=wire))
    body = pb.Request(completeStateRequest=pb.CompleteStateRequest(fieldMask=["a.b"])).SerializeToString()
    assert result == Request("42", body=body, content=CompleteStateRequest(("a.b",)))


def test_a_checked_request_leaves_as_the_bytes_protobuf_makes_with_the_routed_id() -> None:
    """The connection frames the checked body around the routed id instead of re-encoding it."""
    workload = pb.Workload(agent="agent_A", restartPolicy=pb.ON_FAILURE, runtime="podman", runtimeConfig="x")
    new_state = pb.CompleteState(desiredState=pb.State(apiVersion="v0.1", workloads={"a": workload}))
    result = CODEC.decode(_update(new_state))
    assert isinstance(result, Request)
    sent = conversion.encode(Request("wl@7", result.body, result.content))
    update = pb.UpdateStateRequest(newState=new_state, updateMask=["desiredState.workloads.a"])
    expected = pb.ToServer(request=pb.Request(requestId="wl@7", updateStateRequest=update))
    assert sent == expected.SerializeToString()
    assert serialized(sent) is sent


def _odd_states() -> pb.CompleteState:
    name = pb.WorkloadInstanceName(workloadName="a", agentName="agent_A", id="1")
    return pb.CompleteState(
        workloadStates=[
            pb.WorkloadState(instanceName=name, executionState=pb.ExecutionState(pending=99)),  # type: ignore[arg-type]
            pb.WorkloadState(instanceName=name),  # no execution state
        ]
    )


_WORKLOAD = pb.Workload(agent="agent_A", restartPolicy=pb.ALWAYS, runtime="podman", runtimeConfig="x")


@pytest.mark.parametrize(
    "frame_bytes",
    [
        _to_server(
            request=pb.Request(requestId="7", completeStateRequest=pb.CompleteStateRequest(fieldMask=["a"]))
        ),
        _update(pb.CompleteState(desiredState=pb.State(apiVersion="v0.1", workloads={"a": _WORKLOAD}))),
        _update(pb.CompleteState(startupState=pb.State(apiVersion="v0.1"), desiredState=pb.State())),
        _update(pb.CompleteState(), ()),
        _update(_odd_states()),
    ],
    ids=["complete state", "update", "update of both states", "empty update", "update with odd states"],
)
def test_what_the_server_gets_is_the_checked_content_encoded_again(frame_bytes: bytes) -> None:
    """The bytes path sends what encoding the domain content sends, normalisation included."""
    result = CODEC.decode(frame_bytes)
    assert isinstance(result, Request)
    assert result.content is not None
    wire = conversion.encode(Request("wl@7", result.body, result.content))
    assert wire is not None
    sent = pb.ToServer.FromString(serialized(wire))
    assert sent == conversion.to_server(Request("wl@7", content=result.content))


def test_fields_this_protocol_does_not_know_are_not_forwarded() -> None:
    known = pb.Request(requestId="1", completeStateRequest=pb.CompleteStateRequest(fieldMask=["a"]))
    # Field 127 as a varint: a field of no message in this protocol, inside the Request.
    request = known.SerializeToString() + b"\xf8\x07\x01"
    result = CODEC.decode(b"\x1a" + bytes([len(request)]) + request)
    assert isinstance(result, Request)
    assert result.request_id == "1"
    assert result.body == pb.Request(completeStateRequest=known.completeStateRequest).SerializeToString()


def test_update_state_request_round_trips_through_the_domain_model() -> None:
    """What leaves the agent is what the workload asked for, with the prefixed id."""
    workload = pb.Workload(
        agent="agent_A",
        restartPolicy=pb.ALWAYS,
        dependencies={"db": pb.ADD_COND_SUCCEEDED},
        tags=[pb.Tag(key="k", value="v")],
        runtime="podman",
        runtimeConfig="image: x\n",
    )
    state = pb.WorkloadState(
        instanceName=pb.WorkloadInstanceName(workloadName="a", agentName="agent_A", id="1"),
        executionState=pb.ExecutionState(additionalInfo="i", running=pb.RUNNING_OK),
    )
    new_state = pb.CompleteState(
        desiredState=pb.State(apiVersion="v0.1", workloads={"a": workload}), workloadStates=[state]
    )
    result = CODEC.decode(_update(new_state))
    assert isinstance(result, Request)
    assert isinstance(result.content, UpdateStateRequest)
    assert result.content.new_state is not None
    assert result.content.new_state.desired_state is not None
    assert result.content.new_state.desired_state.workloads["a"].restart_policy is RestartPolicy.ALWAYS
    sent = conversion.to_server(Request("wl@7", content=result.content))
    expected = pb.Request(
        requestId="wl@7",
        updateStateRequest=pb.UpdateStateRequest(newState=new_state, updateMask=["desiredState.workloads.a"]),
    )
    assert sent == pb.ToServer(request=expected)
    assert not sent.request.updateStateRequest.newState.HasField("startupState")


@pytest.mark.parametrize(
    ("new_state", "named"),
    [
        (
            pb.CompleteState(desiredState=pb.State(workloads={"a": pb.Workload(restartPolicy=7)})),  # type: ignore[arg-type]
            "restartPolicy has invalid value 7",
        ),
        (
            pb.CompleteState(startupState=pb.State(workloads={"a": pb.Workload(dependencies={"b": 9})})),  # type: ignore[dict-item]
            "add condition on 'b' has invalid value 9",
        ),
        (
            pb.CompleteState(workloadStates=[pb.WorkloadState(executionState=pb.ExecutionState())]),
            "workloadStates[0] has no instanceName",
        ),
    ],
)
def test_request_the_server_could_not_convert_is_rejected_with_the_reason(
    new_state: pb.CompleteState, named: str
) -> None:
    """The v0.3.1 server drops the whole agent for such a request: it must never be forwarded."""
    result = CODEC.decode(_update(new_state))
    assert isinstance(result, Rejected)
    assert result.request_id == "7"
    assert named in result.reason


def test_error_frame_answers_the_workload_with_its_own_id() -> None:
    message = _one_frame(CODEC.encode_error("7", "invalid request: bad"))
    assert message.response == pb.Response(requestId="7", error=pb.Error(message="invalid request: bad"))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (_to_server(agentHello=pb.AgentHello(agentName="evil")), DropReason.AGENT_HELLO),
        (_to_server(goodbye=pb.Goodbye()), DropReason.GOODBYE),
        (_to_server(updateWorkloadState=pb.UpdateWorkloadState()), DropReason.UPDATE_WORKLOAD_STATE),
        (b"", DropReason.EMPTY),
        (_to_server(request=pb.Request(requestId="1")), DropReason.REQUEST_WITHOUT_CONTENT),
        (b"\xff\xff\xff", DropReason.UNDECODABLE),
    ],
)
def test_only_requests_with_content_are_forwarded(payload: bytes, reason: DropReason) -> None:
    """Hello, goodbye, states, empty and content-less messages are dropped, never forwarded."""
    result = CODEC.decode(payload)
    assert isinstance(result, Dropped)
    assert result.reason is reason


def test_unknown_field_only_message_counts_as_empty() -> None:
    """A ToServer with no oneof member set (only unknown fields) is dropped as empty."""
    result = CODEC.decode(b"\x78\x01")  # field 15, varint 1: unknown to v0.3.1
    assert isinstance(result, Dropped)
    assert result.reason is DropReason.EMPTY


@given(st.binary(max_size=300))
def test_decode_never_raises_on_arbitrary_bytes(payload: bytes) -> None:
    """Nothing a workload writes can raise out of the codec."""
    assert isinstance(CODEC.decode(payload), Request | Dropped | Rejected)


@pytest.mark.parametrize("request_id", ["x@y", "", "ü" * 100])
def test_response_frame_carries_the_id_and_the_body_unchanged(request_id: str) -> None:
    """input receives varint + FromServer{response}, built around the body without parsing it."""
    body = pb.Response(error=pb.Error(message="nope")).SerializeToString()
    data = CODEC.encode_response(Response(request_id=request_id, body=body))
    assert data.endswith(body)  # the body's bytes go out as they are, never parsed and rebuilt
    message = _one_frame(data)
    assert message.WhichOneof("FromServerEnum") == "response"
    assert message.response.requestId == request_id
    assert message.response.error.message == "nope"


def test_response_from_the_server_is_serialised_once_and_framed_as_is() -> None:
    """The server stream's conversion and the codec together give the workload the server's response."""
    server = pb.Response(requestId="wl@a@b", UpdateStateSuccess=pb.UpdateStateSuccess(addedWorkloads=["x"]))
    converted = conversion.from_server(pb.FromServer(response=server), "agent_A")
    assert isinstance(converted, Response)
    message = _one_frame(CODEC.encode_response(Response("a@b", converted.body)))
    assert message.response == pb.Response(
        requestId="a@b", UpdateStateSuccess=pb.UpdateStateSuccess(addedWorkloads=["x"])
    )
