"""The v1.0.1 control-interface codec: version rule, handshake, authorization, frames."""

from __future__ import annotations

import logging

import pytest

from ankaios_agent.agent.dialect_v1 import control_codec
from ankaios_agent.agent.model import AccessRules, LogRule, Operation, Request, Response, StateRule
from ankaios_agent.control_interface.authorizer import Authorizer
from ankaios_agent.control_interface.codec import (
    Accepted,
    Answered,
    Closed,
    Dropped,
    DropReason,
    ResponseGate,
)
from ankaios_agent.control_interface.codec_v1 import CodecV1, protocol_major
from ankaios_agent.control_interface.framing import FrameDecoder
from ankaios_agent.proto import ank_base_pb2 as base
from ankaios_agent.proto import control_api_pb2 as ctl

READ_ALL = AccessRules(allow=(StateRule(Operation.READ, ("*",)),))


def codec(rules: AccessRules = READ_ALL, *, resumed: bool = False) -> CodecV1:
    return CodecV1("wl", Authorizer.from_rules(rules, strict=True), resumed=resumed)


def hello(version: str = "1.0.0") -> bytes:
    return ctl.ToAnkaios(hello=ctl.Hello(protocolVersion=version)).SerializeToString()


def get_state(request_id: str = "req1", *masks: str) -> bytes:
    return ctl.ToAnkaios(
        request=base.Request(
            requestId=request_id, completeStateRequest=base.CompleteStateRequest(fieldMask=list(masks))
        )
    ).SerializeToString()


def update_state(request_id: str = "u1", *masks: str, with_state: bool = True) -> bytes:
    inner = base.UpdateStateRequest(updateMask=list(masks))
    if with_state:
        inner.newState.desiredState.apiVersion = "v1"
    return ctl.ToAnkaios(
        request=base.Request(requestId=request_id, updateStateRequest=inner)
    ).SerializeToString()


def payload_of(frame: bytes) -> bytes:
    (payload,) = FrameDecoder().feed(frame)
    return payload


def closed_reason(result: object) -> str:
    assert isinstance(result, Closed)
    wire = ctl.FromAnkaios.FromString(payload_of(result.frame))
    assert wire.connectionClosed.reason == result.reason
    return result.reason


@pytest.mark.parametrize(
    ("version", "major"),
    [
        ("1.0.1", 1),
        ("1.0.0", 1),
        ("1.5.0", 1),
        ("1.0.1-rc1", 1),
        ("1.0.0+abc", 1),
        ("1.0.0-alpha.1+build.007", 1),
        ("2.0.0", 2),
        ("0.3.1", 0),
        ("v1.0.1", None),
        ("1.0", None),
        ("1", None),
        ("01.0.0", None),
        ("1.0.0-01", None),
        (" 1.0.0", None),
        ("1.0.0\n", None),
        ("", None),
        ("1.0.0-", None),
        ("1.0.0+", None),
        ("1.0.0-a..b", None),
        (f"1.{1 << 64}.0", None),
        (f"1.{(1 << 64) - 1}.0", 1),
        ("\u0661.0.0", None),  # a non-ASCII digit is not a SemVer digit
    ],
)
def test_protocol_major(version: str, major: int | None) -> None:
    assert protocol_major(version) == major


def test_sdk_hello_is_accepted_with_the_exact_frame() -> None:
    c = codec()
    gate_before_hello = c.gate
    assert gate_before_hello is ResponseGate.HOLD
    result = c.decode(bytes.fromhex("0a07120531 2e302e30".replace(" ", "")))
    assert isinstance(result, Accepted)
    assert result.frame == bytes.fromhex("022200")
    assert c.gate is ResponseGate.PASS


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        (get_state(), "Initial Hello missing!"),
        (b"", "Initial Hello missing!"),
        (b"\xff\xff", "Could not decode protobuf data"),
        (hello("2.0.0"), "Unsupported protocol version '2.0.0'. Currently supported '1'"),
        (hello("0.3.1"), "Unsupported protocol version '0.3.1'. Currently supported '1'"),
        (hello("v1.0.1"), "Unsupported protocol version 'v1.0.1'. Currently supported '1'"),
        (hello(""), "Unsupported protocol version ''. Currently supported '1'"),
    ],
)
def test_a_bad_first_frame_closes_with_the_reference_reason(first: bytes, reason: str) -> None:
    c = codec()
    assert closed_reason(c.decode(first)) == reason
    assert c.gate is ResponseGate.DROP
    assert c.decode(hello()) == Dropped(DropReason.AFTER_CLOSE)


def test_initial_hello_missing_frame_bytes() -> None:
    result = codec().decode(get_state())
    assert isinstance(result, Closed)
    assert result.frame == bytes.fromhex("1a2a180a16") + b"Initial Hello missing!"


def test_closed_session_reopens_for_the_next_writer() -> None:
    c = codec()
    closed_reason(c.decode(get_state()))
    c.writer_left()
    assert c.gate is ResponseGate.HOLD
    # A fresh writer must start with a hello again.
    assert closed_reason(c.decode(get_state())) == "Initial Hello missing!"
    c.writer_left()
    assert isinstance(c.decode(hello()), Accepted)


def test_repeated_hellos_are_ignored_and_an_incompatible_one_closes() -> None:
    c = codec()
    assert isinstance(c.decode(hello()), Accepted)
    again = c.decode(hello("1.0.1"))
    assert isinstance(again, Dropped) and again.reason is DropReason.REPEATED_HELLO
    assert c.accepted_count == 1
    assert closed_reason(c.decode(hello("3.0.0"))).startswith("Unsupported protocol version '3.0.0'")


def test_a_reconnected_writer_is_accepted_once_more() -> None:
    c = codec()
    assert isinstance(c.decode(hello()), Accepted)
    c.writer_left()
    # Requests still flow without a new hello (the session survives a writer reconnect) ...
    assert isinstance(c.decode(get_state("r", "desiredState")), Request)
    # ... and the first hello of the new writer is answered, a second one is not.
    assert isinstance(c.decode(hello()), Accepted)
    assert isinstance(c.decode(hello()), Dropped)
    assert c.accepted_count == 2


def test_resumed_session_drops_leftovers_before_the_hello() -> None:
    c = codec(resumed=True)
    stale = c.decode(get_state("old"))
    assert isinstance(stale, Dropped) and stale.reason is DropReason.BEFORE_HELLO
    garbage = c.decode(b"\xff\xff")
    assert isinstance(garbage, Dropped) and garbage.reason is DropReason.BEFORE_HELLO
    assert c.stream_corrupt() is None
    assert isinstance(c.decode(hello()), Accepted)
    # Once accepted, the session is an ordinary one: a new writer must say hello first.
    assert isinstance(c.decode(hello()), Dropped)


def test_fresh_session_closes_on_a_corrupt_stream_but_serving_one_does_not() -> None:
    c = codec()
    assert closed_reason(c.stream_corrupt()) == "Could not decode protobuf data"
    serving = codec()
    serving.decode(hello())
    assert serving.stream_corrupt() is None


def test_serving_ignores_empty_and_undecodable_frames() -> None:
    c = codec()
    c.decode(hello())
    assert c.decode(b"") == Dropped(DropReason.EMPTY_TO_ANKAIOS)
    result = c.decode(b"\xff\xff")
    assert isinstance(result, Dropped) and result.reason is DropReason.UNDECODABLE_TO_ANKAIOS


def test_allowed_request_is_forwarded_with_its_own_id_and_body() -> None:
    c = codec()
    c.decode(hello())
    result = c.decode(get_state("req1", "desiredState.workloads"))
    assert isinstance(result, Request)
    assert result.request_id == "req1"
    wire = base.Request.FromString(result.body)
    assert wire.requestId == ""
    assert list(wire.completeStateRequest.fieldMask) == ["desiredState.workloads"]


def access_denied(result: object, request_id: str) -> None:
    assert isinstance(result, Answered)
    wire = ctl.FromAnkaios.FromString(payload_of(result.frame))
    assert wire.response.requestId == request_id
    assert wire.response.error.message == "Access denied"


def test_denied_request_is_answered_with_the_exact_frame() -> None:
    c = codec()
    c.decode(hello())
    result = c.decode(update_state("req1", "desiredState"))
    assert isinstance(result, Answered)
    assert result.frame == bytes.fromhex("191a170a04726571311a0f0a0d") + b"Access denied"
    empty = c.decode(update_state("", "desiredState"))
    assert isinstance(empty, Answered)
    assert empty.frame == bytes.fromhex("131a111a0f0a0d") + b"Access denied"


WRITE_TAGS = AccessRules(allow=(StateRule(Operation.WRITE, ("desiredState.workloads.*.tags",)),))
LOGS_OF_A = AccessRules(allow=(LogRule(("a_*",)),), deny=(LogRule(("a_secret",)),))


def logs(request_id: str, *names: str) -> bytes:
    return ctl.ToAnkaios(
        request=base.Request(
            requestId=request_id,
            logsRequest=base.LogsRequest(
                workloadNames=[base.WorkloadInstanceName(workloadName=n) for n in names]
            ),
        )
    ).SerializeToString()


def cancel(kind: str) -> bytes:
    request = base.Request(requestId="c")
    getattr(request, kind).SetInParent()
    return ctl.ToAnkaios(request=request).SerializeToString()


@pytest.mark.parametrize(
    ("rules", "frame", "allowed"),
    [
        (READ_ALL, get_state("r"), True),
        (READ_ALL, get_state("r", "desiredState.workloads.x"), True),
        (READ_ALL, update_state("u", "desiredState.workloads.x"), False),
        (WRITE_TAGS, update_state("u", "desiredState.workloads.nginx.tags"), True),
        (WRITE_TAGS, update_state("u", "desiredState.workloads.nginx"), False),
        (WRITE_TAGS, get_state("r", "desiredState.workloads.nginx.tags"), False),
        (LOGS_OF_A, logs("l", "a_one"), True),
        (LOGS_OF_A, logs("l", "a_one", "a_secret"), False),
        (LOGS_OF_A, logs("l", "b"), False),
        (LOGS_OF_A, logs("l"), True),
        (LOGS_OF_A, cancel("logsCancelRequest"), True),
        (LOGS_OF_A, cancel("eventsCancelRequest"), True),
        (READ_ALL, ctl.ToAnkaios(request=base.Request(requestId="n")).SerializeToString(), False),
        # Strict mode: a request "*" does not get past a deny rule naming what it expands to.
        (
            AccessRules(
                allow=(StateRule(Operation.READ, ("desiredState.workloads",)),),
                deny=(StateRule(Operation.READ, ("desiredState.workloads.secret",)),),
            ),
            get_state("r", "desiredState.workloads.*"),
            False,
        ),
    ],
)
def test_authorization_decides_before_anything_reaches_the_server(
    rules: AccessRules, frame: bytes, allowed: bool
) -> None:
    c = codec(rules)
    c.decode(hello())
    result = c.decode(frame)
    if allowed:
        assert isinstance(result, Request)
    else:
        request_id = ctl.ToAnkaios.FromString(frame).request.requestId
        access_denied(result, request_id)


def test_every_decision_is_logged_at_debug_with_the_workload(caplog: pytest.LogCaptureFixture) -> None:
    c = codec()
    c.decode(hello())
    with caplog.at_level(logging.DEBUG, logger="ankaios_agent.control_interface.codec_v1"):
        c.decode(get_state("ok"))
        c.decode(update_state("no", "desiredState"))
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(debug) == 2
    assert all("'wl'" in line for line in debug)
    assert "allowed" in debug[0] and "denied" in debug[1]


def test_allowed_update_without_new_state_is_answered_locally() -> None:
    c = codec(AccessRules(allow=(StateRule(Operation.WRITE, ("*",)),)))
    c.decode(hello())
    result = c.decode(update_state("u", "desiredState", with_state=False))
    assert isinstance(result, Answered)
    wire = ctl.FromAnkaios.FromString(payload_of(result.frame))
    assert wire.response.error.message == "The UpdateStateRequest does not contain a new state"


def test_response_frame_keeps_the_server_body_byte_for_byte() -> None:
    body = base.Response(
        completeStateResponse=base.CompleteStateResponse(
            alteredFields=base.AlteredFields(addedFields=["desiredState.workloads.x"])
        )
    ).SerializeToString()
    frame_bytes = codec().encode_response(Response(request_id="id@with@at", body=body))
    wire = ctl.FromAnkaios.FromString(payload_of(frame_bytes))
    assert wire.response.requestId == "id@with@at"
    assert list(wire.response.completeStateResponse.alteredFields.addedFields) == ["desiredState.workloads.x"]
    expected = ctl.FromAnkaios(response=base.Response.FromString(body)).SerializeToString()
    # With an empty id the frame equals what a protobuf serializer makes.
    assert payload_of(codec().encode_response(Response(request_id="", body=body))) == expected
    assert control_codec.decode_from_ankaios(payload_of(frame_bytes)) == Response("id@with@at", body)


def test_only_undelivered_log_entries_cancel_their_stream() -> None:
    entries = base.Response(
        logEntriesResponse=base.LogEntriesResponse(logEntries=[base.LogEntry(message="line")])
    ).SerializeToString()
    cancel = codec().on_undelivered(Response("logs-1", entries))
    assert cancel is not None and cancel.request_id == "logs-1"
    assert base.Request.FromString(cancel.body).WhichOneof("RequestContent") == "logsCancelRequest"
    for other in (
        base.Response(logsStopResponse=base.LogsStopResponse()),
        base.Response(completeStateResponse=base.CompleteStateResponse()),
        base.Response(error=base.Error(message="x")),
    ):
        assert codec().on_undelivered(Response("r", other.SerializeToString())) is None
