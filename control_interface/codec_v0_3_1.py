"""The v0.3.1 control-interface codec: ``ToServer`` frames in, ``FromServer`` frames out.

This module and ``agent.conversion`` are the only places on the control-interface
path that touch generated protobuf code. A frame is parsed once here; the request
inside is checked once by converting it into the domain model, where anything the
server could not take is refused, and what passed is serialized once without its id:
the connection puts the routed id in front of those bytes instead of encoding the
domain content again (except for an update that carries workload states, which the
conversion normalises, so it is encoded again from its content). Responses
arrive as the serialised ``ankaios.Response`` without its id (serialised once by
the conversion of the server stream); the frame is assembled around those bytes
without parsing them again.

Only ``ToServer.request`` with content is forwarded; the other kinds belong to
the agent itself and are dropped, so a workload can neither impersonate the
agent nor crash the connection with a hello of its own.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from ankaios_agent.agent.conversion import control_request_content
from ankaios_agent.agent.errors import ConversionError
from ankaios_agent.agent.model import Request, Response, UpdateStateRequest
from ankaios_agent.agent.wire_format import encode_varint
from ankaios_agent.control_interface.codec import Decoded, Dropped, DropReason, Rejected, ResponseGate
from ankaios_agent.control_interface.framing import frame, frame_field
from ankaios_agent.proto import ankaios_pb2 as pb

_FORBIDDEN_KINDS = {
    "agentHello": DropReason.AGENT_HELLO,
    "goodbye": DropReason.GOODBYE,
    "updateWorkloadState": DropReason.UPDATE_WORKLOAD_STATE,
}

# Wire tags (field number << 3 | length-delimited): FromServer.response = 3, Response.requestId = 1.
_FROM_SERVER_RESPONSE_TAG = b"\x1a"
_RESPONSE_REQUEST_ID_TAG = b"\x0a"


class CodecV0_3_1:  # noqa: N801 (the version is part of the name)
    """Stateless; one instance serves every relay."""

    def decode(self, payload: bytes) -> Decoded:
        if not payload:
            return Dropped(DropReason.EMPTY)
        message = pb.ToServer()
        try:
            message.ParseFromString(payload)
        except DecodeError as err:
            return Dropped(DropReason.UNDECODABLE, str(err))
        kind = message.WhichOneof("ToServerEnum")
        if kind is None:
            return Dropped(DropReason.EMPTY)
        if kind != "request":
            return Dropped(_FORBIDDEN_KINDS[kind])
        request = message.request
        if request.WhichOneof("RequestContent") is None:
            return Dropped(DropReason.REQUEST_WITHOUT_CONTENT, f"request id {request.requestId!r}")
        try:
            content = control_request_content(request)
        except ConversionError as err:
            return Rejected(request.requestId, str(err))
        request_id = request.requestId
        if (
            isinstance(content, UpdateStateRequest)
            and content.new_state is not None
            and content.new_state.workload_states
        ):
            # The conversion normalises workload states (sub-state numbers, a missing execution
            # state), so such an update goes out encoded again from its content.
            return Request(request_id, content=content)
        # Serialized once more, here, without the id and without fields this protocol does
        # not know: the same as the content encoded again, and the connection frames these
        # bytes instead of building the message again.
        request.ClearField("requestId")
        request.DiscardUnknownFields()
        return Request(request_id, request.SerializeToString(), content)

    def encode_response(self, response: Response) -> bytes:
        request_id = response.request_id.encode("utf-8")
        # Protobuf allows fields in any order, so the id can simply precede the body's fields;
        # the body never carries an id of its own (the conversion clears it).
        id_length = encode_varint(len(request_id))
        return frame_field(
            _FROM_SERVER_RESPONSE_TAG, _RESPONSE_REQUEST_ID_TAG, id_length, request_id, response.body
        )

    def encode_error(self, request_id: str, message: str) -> bytes:
        wire = pb.FromServer(response=pb.Response(requestId=request_id, error=pb.Error(message=message)))
        return frame(wire.SerializeToString())

    def stream_corrupt(self) -> Decoded | None:
        return None

    def writer_left(self) -> None:
        """No session state: every writer is served alike."""

    @property
    def gate(self) -> ResponseGate:
        return ResponseGate.PASS

    def on_undelivered(self, response: Response) -> Request | None:
        return None
