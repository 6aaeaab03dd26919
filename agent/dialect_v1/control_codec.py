"""Protobuf <-> domain for a workload's v1.0.1 control interface (control_api + ank_base).

The relay's I/O splits the FIFO byte stream into frames (``control_interface.framing``)
and hands each payload here; what goes back to the workload comes out of here as
a payload for the relay to frame. Nothing else on the control-interface side
touches ``control_api``.

A workload speaks ``ToAnkaios``: first a ``hello`` with its protocol version,
then ``request`` frames. The agent answers with ``FromAnkaios``:
``controlInterfaceAccepted`` once, then ``response`` frames, and at the end
possibly ``connectionClosed`` with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from ankaios_agent.agent.errors import ConversionError
from ankaios_agent.agent.model import ControlHello, Request, RequestKind, Response, WorkloadRequest
from ankaios_agent.proto import ank_base_pb2 as base
from ankaios_agent.proto import control_api_pb2 as ctl

ACCESS_DENIED = "Access denied"
INITIAL_HELLO_MISSING = "Initial Hello missing!"
UNDECODABLE = "Could not decode protobuf data"


@dataclass(frozen=True)
class Accepted:
    """The agent accepted the workload's hello."""


@dataclass(frozen=True)
class Closed:
    """The agent ended the control interface; nothing follows."""

    reason: str


_KINDS = {kind.value: kind for kind in RequestKind}


def _workload_request(wire: base.Request) -> WorkloadRequest:
    kind = _KINDS[wire.WhichOneof("RequestContent")]
    request_id = wire.requestId
    wire.ClearField("requestId")
    # The server gets the fields this protocol knows, as from the reference agent, which
    # decodes a workload's request and encodes it again.
    wire.DiscardUnknownFields()
    request = Request(request_id=request_id, body=wire.SerializeToString())
    if kind is RequestKind.COMPLETE_STATE:
        inner = wire.completeStateRequest
        return WorkloadRequest(
            request,
            kind,
            masks=tuple(inner.fieldMask),
            subscribe_for_events=inner.subscribeForEvents,
        )
    if kind is RequestKind.UPDATE_STATE:
        update = wire.updateStateRequest
        return WorkloadRequest(
            request, kind, masks=tuple(update.updateMask), has_new_state=update.HasField("newState")
        )
    if kind is RequestKind.LOGS:
        names = tuple(n.workloadName for n in wire.logsRequest.workloadNames)
        return WorkloadRequest(request, kind, log_workloads=names)
    return WorkloadRequest(request, kind)


def decode_to_ankaios(payload: bytes) -> ControlHello | WorkloadRequest | None:
    """One frame from a workload; None for a frame without content (an empty frame too).

    Raises ConversionError for bytes that are not a ToAnkaios message.
    """
    wire = ctl.ToAnkaios()
    try:
        wire.ParseFromString(payload)
    except DecodeError as err:
        raise ConversionError(f"not a control-interface message: {err}") from err
    kind = wire.WhichOneof("ToAnkaiosEnum")
    if kind == "hello":
        return ControlHello(protocol_version=wire.hello.protocolVersion)
    if kind == "request":
        return _workload_request(wire.request)
    return None


def encode_hello(hello: ControlHello) -> bytes:
    """A workload's hello (for test workloads and round trips)."""
    return ctl.ToAnkaios(hello=ctl.Hello(protocolVersion=hello.protocol_version)).SerializeToString()


def encode_request(request: Request) -> bytes:
    """A workload's request frame (for test workloads); ConversionError for a body that is none."""
    try:
        wire = base.Request.FromString(request.body)
    except DecodeError as err:
        raise ConversionError(f"request {request.request_id!r} has an undecodable body: {err}") from err
    wire.requestId = request.request_id
    return ctl.ToAnkaios(request=wire).SerializeToString()


def logs_cancel_body() -> bytes:
    """The body (no id) of the agent's own request to stop a log collection nobody reads."""
    return base.Request(logsCancelRequest=base.LogsCancelRequest()).SerializeToString()


def encode_accepted() -> bytes:
    return ctl.FromAnkaios(controlInterfaceAccepted=ctl.ControlInterfaceAccepted()).SerializeToString()


def encode_connection_closed(reason: str) -> bytes:
    return ctl.FromAnkaios(connectionClosed=ctl.ConnectionClosed(reason=reason)).SerializeToString()


def encode_response(response: Response) -> bytes:
    """A server response for the workload; ``request_id`` already without the routing prefix.

    Raises ConversionError when the body is not an ank_base.Response.
    """
    wire = ctl.FromAnkaios()
    try:
        wire.response.ParseFromString(response.body)
    except DecodeError as err:
        raise ConversionError(f"response {response.request_id!r} has an undecodable body: {err}") from err
    wire.response.requestId = response.request_id
    return wire.SerializeToString()


def encode_error_response(request_id: str, message: str = ACCESS_DENIED) -> bytes:
    """The agent's own answer to a request it does not forward (id exactly as the workload sent it)."""
    return ctl.FromAnkaios(
        response=base.Response(requestId=request_id, error=base.Error(message=message))
    ).SerializeToString()


def decode_from_ankaios(payload: bytes) -> Accepted | Closed | Response:
    """What a workload reads (for test workloads); ConversionError for anything else."""
    wire = ctl.FromAnkaios()
    try:
        wire.ParseFromString(payload)
    except DecodeError as err:
        raise ConversionError(f"not a control-interface answer: {err}") from err
    kind = wire.WhichOneof("FromAnkaiosEnum")
    if kind == "controlInterfaceAccepted":
        return Accepted()
    if kind == "connectionClosed":
        return Closed(wire.connectionClosed.reason)
    if kind == "response":
        request_id = wire.response.requestId
        wire.response.ClearField("requestId")
        return Response(request_id=request_id, body=wire.response.SerializeToString())
    raise ConversionError("a control-interface answer without content")
