"""v1.0.1 control-interface frames: what a workload sends, what the agent answers."""

from __future__ import annotations

import pytest

from ankaios_agent.agent.dialect_v1 import control_codec as codec
from ankaios_agent.agent.errors import ConversionError
from ankaios_agent.agent.model import ControlHello, Request, RequestKind, Response, WorkloadRequest
from ankaios_agent.control_interface.framing import frame
from ankaios_agent.proto import ank_base_pb2 as base
from ankaios_agent.proto import control_api_pb2 as ctl

NAME = base.WorkloadInstanceName(workloadName="web_1", agentName="agent_A", id="x")


def _frame(request: base.Request) -> bytes:
    return ctl.ToAnkaios(request=request).SerializeToString()


def test_a_hello_decodes_with_its_version_as_sent() -> None:
    payload = ctl.ToAnkaios(hello=ctl.Hello(protocolVersion=" 1.0.0")).SerializeToString()
    assert codec.decode_to_ankaios(payload) == ControlHello(" 1.0.0")
    assert codec.encode_hello(ControlHello(" 1.0.0")) == payload


def test_the_hello_is_field_2_of_field_1_on_the_wire() -> None:
    """Hello's only field is number 2 and ToAnkaios.hello is number 1: 0a 07 12 05 '1.0.1'."""
    assert codec.encode_hello(ControlHello("1.0.1")) == bytes.fromhex("0a 07 12 05 31 2e 30 2e 31")


@pytest.mark.parametrize("payload", [b"", ctl.ToAnkaios().SerializeToString()])
def test_a_frame_without_content_is_none(payload: bytes) -> None:
    assert codec.decode_to_ankaios(payload) is None


def test_undecodable_bytes_are_a_conversion_error() -> None:
    with pytest.raises(ConversionError, match="not a control-interface message"):
        codec.decode_to_ankaios(b"\x1a\x05ab")


# (the request as the workload sends it, what authorization sees)
REQUESTS: list[tuple[str, base.Request, RequestKind, dict[str, object]]] = [
    (
        "complete state",
        base.Request(
            requestId="7@x",
            completeStateRequest=base.CompleteStateRequest(fieldMask=["desiredState", "agents"]),
        ),
        RequestKind.COMPLETE_STATE,
        {"masks": ("desiredState", "agents")},
    ),
    (
        "events",
        base.Request(requestId="", completeStateRequest=base.CompleteStateRequest(subscribeForEvents=True)),
        RequestKind.COMPLETE_STATE,
        {"subscribe_for_events": True},
    ),
    (
        "update",
        base.Request(
            requestId="u",
            updateStateRequest=base.UpdateStateRequest(newState=base.CompleteState(), updateMask=["a.b"]),
        ),
        RequestKind.UPDATE_STATE,
        {"masks": ("a.b",), "has_new_state": True},
    ),
    (
        "update without new state",
        base.Request(requestId="u", updateStateRequest=base.UpdateStateRequest(updateMask=["a"])),
        RequestKind.UPDATE_STATE,
        {"masks": ("a",)},
    ),
    (
        "logs",
        base.Request(requestId="l", logsRequest=base.LogsRequest(workloadNames=[NAME], follow=True)),
        RequestKind.LOGS,
        {"log_workloads": ("web_1",)},
    ),
    (
        "logs cancel",
        base.Request(requestId="l", logsCancelRequest=base.LogsCancelRequest()),
        RequestKind.LOGS_CANCEL,
        {},
    ),
    (
        "events cancel",
        base.Request(requestId="e", eventsCancelRequest=base.EventsCancelRequest()),
        RequestKind.EVENTS_CANCEL,
        {},
    ),
    ("no content", base.Request(requestId="n"), RequestKind.NONE, {}),
]


@pytest.mark.parametrize(
    ("wire", "kind", "fields"), [(w, k, f) for _, w, k, f in REQUESTS], ids=[n for n, _, _, _ in REQUESTS]
)
def test_a_request_decodes_with_what_authorization_needs(
    wire: base.Request, kind: RequestKind, fields: dict[str, object]
) -> None:
    decoded = codec.decode_to_ankaios(_frame(wire))
    assert isinstance(decoded, WorkloadRequest)
    body = base.Request()
    body.CopyFrom(wire)
    body.ClearField("requestId")
    expected = WorkloadRequest(Request(wire.requestId, body.SerializeToString()), kind, **fields)  # type: ignore[arg-type]
    assert decoded == expected
    assert codec.encode_request(decoded.request) == _frame(wire)


def test_fields_this_protocol_does_not_know_do_not_reach_the_body() -> None:
    known = base.Request(requestId="7", completeStateRequest=base.CompleteStateRequest(fieldMask=["a"]))
    # Field 127 as a varint, inside the Request: a field of no message in this protocol.
    request = known.SerializeToString() + b"\xf8\x07\x01"
    decoded = codec.decode_to_ankaios(b"\x1a" + bytes([len(request)]) + request)
    assert isinstance(decoded, WorkloadRequest)
    assert decoded.request == Request(
        "7", base.Request(completeStateRequest=known.completeStateRequest).SerializeToString()
    )


@pytest.mark.parametrize(
    ("name", "forwardable"),
    [(n, n not in ("no content", "update without new state")) for n, _, _, _ in REQUESTS],
)
def test_only_requests_the_server_can_take_are_forwardable(name: str, forwardable: bool) -> None:
    (wire,) = [w for n, w, _, _ in REQUESTS if n == name]
    decoded = codec.decode_to_ankaios(_frame(wire))
    assert isinstance(decoded, WorkloadRequest)
    assert decoded.forwardable is forwardable


def test_the_agents_answers_to_a_workload() -> None:
    assert ctl.FromAnkaios.FromString(codec.encode_accepted()).WhichOneof("FromAnkaiosEnum") == (
        "controlInterfaceAccepted"
    )
    assert codec.decode_from_ankaios(codec.encode_accepted()) == codec.Accepted()
    closed = codec.encode_connection_closed(codec.INITIAL_HELLO_MISSING)
    assert ctl.FromAnkaios.FromString(closed).connectionClosed.reason == "Initial Hello missing!"
    assert codec.decode_from_ankaios(closed) == codec.Closed("Initial Hello missing!")


def test_access_denied_is_answered_with_the_id_as_the_workload_sent_it() -> None:
    wire = ctl.FromAnkaios.FromString(codec.encode_error_response("42@x"))
    assert wire.response.requestId == "42@x"
    assert wire.response.error.message == "Access denied"


def test_a_server_response_reaches_the_workload_with_its_own_id() -> None:
    content = base.Response(UpdateStateSuccess=base.UpdateStateSuccess(addedWorkloads=["a.1.b"]))
    payload = codec.encode_response(Response("42", content.SerializeToString()))
    wire = ctl.FromAnkaios.FromString(payload)
    assert wire.response.requestId == "42"
    assert wire.response.UpdateStateSuccess.addedWorkloads == ["a.1.b"]
    assert codec.decode_from_ankaios(payload) == Response("42", content.SerializeToString())


def test_an_undecodable_response_body_is_a_conversion_error() -> None:
    with pytest.raises(ConversionError, match="'42'"):
        codec.encode_response(Response("42", b"\xff"))
    with pytest.raises(ConversionError):
        codec.decode_from_ankaios(b"")


MASK = b"desiredState.workloads"


@pytest.mark.parametrize(
    ("payload", "framed"),
    [
        (codec.encode_hello(ControlHello("1.0.0")), bytes.fromhex("09 0a 07 12 05 31 2e 30 2e 30")),
        (codec.encode_hello(ControlHello("1.0.1")), bytes.fromhex("09 0a 07 12 05 31 2e 30 2e 31")),
        (codec.encode_accepted(), bytes.fromhex("02 22 00")),
        (
            codec.encode_connection_closed("Initial Hello missing!"),
            bytes.fromhex("1a 2a 18 0a 16") + b"Initial Hello missing!",
        ),
        (
            codec.encode_error_response("req1"),
            bytes.fromhex("19 1a 17 0a 04 72 65 71 31 1a 0f 0a 0d") + b"Access denied",
        ),
        (codec.encode_error_response(""), bytes.fromhex("13 1a 11 1a 0f 0a 0d") + b"Access denied"),
        (
            codec.encode_request(
                Request(
                    "req1",
                    base.Request(
                        completeStateRequest=base.CompleteStateRequest(fieldMask=[MASK.decode()])
                    ).SerializeToString(),
                )
            ),
            bytes.fromhex("22 1a 20 0a 04 72 65 71 31 1a 18 0a 16") + MASK,
        ),
        (ctl.ToAnkaios().SerializeToString(), bytes.fromhex("00")),
    ],
    ids=["hello 1.0.0", "hello 1.0.1", "accepted", "closed", "denied", "denied, no id", "request", "empty"],
)
def test_frames_are_byte_exact(payload: bytes, framed: bytes) -> None:
    """The bytes a Rust peer produces for the same frames (length prefix + payload)."""
    assert frame(payload) == framed
