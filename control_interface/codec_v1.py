"""The v1.0.1 control-interface codec: ``ToAnkaios`` frames in, ``FromAnkaios`` frames out.

Unlike the v0.3.1 codec this one holds the state of one workload's session, so
the host makes one per relay. Each frame is parsed once (by
``agent.dialect_v1.control_codec``) and then:

* before the handshake, the first frame decides: a ``hello`` whose protocol
  version has the agent's major version is answered with
  ``controlInterfaceAccepted`` (the first frame the workload reads; responses
  that arrived meanwhile follow it); anything else ends the session with
  ``connectionClosed`` and the reference's reason text;
* after it, a ``request`` is authorised against the workload's rules; a
  denied one is answered locally with ``Access denied`` under the id the
  workload sent and never reaches the server; an allowed one is forwarded. A
  further compatible hello is ignored, an incompatible one ends the session.

Where we differ from the reference agent, on purpose and without changing what
a correct client sees:

* a closed session is not dead for good: once every writer has closed
  ``output`` (the client process ended or reopened its end), the next writer
  starts a new handshake;
* after such a reconnect the next compatible hello is accepted once more, so a
  client restarted by the restart policy can connect again (the reference
  ignores that hello and the client times out);
* a session on FIFOs that outlived an agent restart (the workload kept
  running) drops frames that come before the first hello instead of closing:
  they are leftovers the workload wrote while the previous agent was going
  away, and closing would cut off a client that is about to say hello;
* an allowed update without ``newState`` is answered with the server's own
  error text instead of being forwarded (the server would drop the agent's
  whole connection for it).
"""

from __future__ import annotations

import enum
import logging
import re

from ankaios_agent.agent.dialect_v1 import control_codec
from ankaios_agent.agent.errors import ConversionError
from ankaios_agent.agent.model import ControlHello, Request, RequestKind, Response, WorkloadRequest
from ankaios_agent.agent.wire_format import encode_varint
from ankaios_agent.control_interface import authorizer as auth
from ankaios_agent.control_interface.codec import (
    Accepted,
    Answered,
    Closed,
    Decoded,
    Dropped,
    DropReason,
    ResponseGate,
)
from ankaios_agent.control_interface.framing import frame, frame_field

log = logging.getLogger(__name__)

SUPPORTED_MAJOR = 1

MISSING_NEW_STATE = "The UpdateStateRequest does not contain a new state"
"""The server's own text for an update without a new state."""

_NUMBER = r"(?:0|[1-9][0-9]*)"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_ID = r"[0-9A-Za-z-]+"
_SEMVER = re.compile(
    rf"(?P<major>{_NUMBER})\.(?P<minor>{_NUMBER})\.(?P<patch>{_NUMBER})"
    rf"(?:-{_PRE_ID}(?:\.{_PRE_ID})*)?"
    rf"(?:\+{_BUILD_ID}(?:\.{_BUILD_ID})*)?"
)
_U64 = 1 << 64

# Wire tags (field number << 3 | length-delimited): FromAnkaios.response = 3, Response.requestId = 1.
_FROM_ANKAIOS_RESPONSE_TAG = b"\x1a"
_RESPONSE_REQUEST_ID_TAG = b"\x0a"
_LOG_ENTRIES_TAG = b"\x3a"  # Response.logEntriesResponse = 7
_LOGS_CANCEL_BODY = control_codec.logs_cancel_body()


def protocol_major(version: str) -> int | None:
    """The major version of a strict SemVer 2.0 string (no ``v``, no spaces); None if it is none."""
    match = _SEMVER.fullmatch(version)
    if match is None:
        return None
    numbers = [int(match.group(part)) for part in ("major", "minor", "patch")]
    if any(number >= _U64 for number in numbers):
        return None
    return numbers[0]


def unsupported_version_reason(version: str) -> str:
    return f"Unsupported protocol version '{version}'. Currently supported '{SUPPORTED_MAJOR}'"


def authorized_request(request: WorkloadRequest) -> auth.AuthorizedRequest:
    """What the authorizer looks at: the kind, the masks and the requested log workloads."""
    match request.kind:
        case RequestKind.COMPLETE_STATE:
            return auth.CompleteStateRequest(request.masks, request.subscribe_for_events)
        case RequestKind.UPDATE_STATE:
            return auth.UpdateStateRequest(request.masks)
        case RequestKind.LOGS:
            return auth.LogsRequest(request.log_workloads)
        case RequestKind.LOGS_CANCEL:
            return auth.LogsCancelRequest()
        case RequestKind.EVENTS_CANCEL:
            return auth.EventsCancelRequest()
        case RequestKind.NONE:
            return auth.EmptyRequest()


class _Phase(enum.Enum):
    AWAIT_HELLO = enum.auto()
    SERVING = enum.auto()
    CLOSED = enum.auto()


class CodecV1:
    """The session of one workload's v1.0.1 control interface; one instance per relay."""

    def __init__(self, workload: str, authorizer: auth.Authorizer, *, resumed: bool = False) -> None:
        """``resumed``: the FIFOs outlived an agent restart, so frames before the first hello
        are leftovers of the previous agent's session and are dropped rather than answered."""
        self.workload = workload
        self.authorizer = authorizer
        self._phase = _Phase.AWAIT_HELLO
        self._lenient = resumed
        self._accept_again = False
        self.accepted_count = 0
        """How many times this session answered a hello with an acceptance."""

    @property
    def gate(self) -> ResponseGate:
        if self._phase is _Phase.SERVING:
            return ResponseGate.PASS
        if self._phase is _Phase.AWAIT_HELLO:
            return ResponseGate.HOLD
        return ResponseGate.DROP

    def writer_left(self) -> None:
        if self._phase is _Phase.CLOSED:
            log.info(
                "workload %s: control interface writer left; the next one may say hello again", self.workload
            )
            self._phase = _Phase.AWAIT_HELLO
            self._lenient = False
        elif self._phase is _Phase.SERVING:
            self._accept_again = True

    def stream_corrupt(self) -> Decoded | None:
        if self._phase is _Phase.AWAIT_HELLO and not self._lenient:
            return self._close(control_codec.UNDECODABLE)
        return None

    def decode(self, payload: bytes) -> Decoded:
        if self._phase is _Phase.CLOSED:
            return Dropped(DropReason.AFTER_CLOSE)
        try:
            message = control_codec.decode_to_ankaios(payload)
        except ConversionError as err:
            if self._phase is _Phase.AWAIT_HELLO and not self._lenient:
                return self._close(control_codec.UNDECODABLE)
            return Dropped(
                DropReason.BEFORE_HELLO
                if self._phase is _Phase.AWAIT_HELLO
                else DropReason.UNDECODABLE_TO_ANKAIOS,
                str(err),
            )
        if isinstance(message, ControlHello):
            return self._hello(message.protocol_version)
        if self._phase is _Phase.AWAIT_HELLO:
            if self._lenient:
                return Dropped(DropReason.BEFORE_HELLO)
            return self._close(control_codec.INITIAL_HELLO_MISSING)
        if message is None:
            return Dropped(DropReason.EMPTY_TO_ANKAIOS)
        return self._request(message)

    def _hello(self, version: str) -> Decoded:
        if protocol_major(version) != SUPPORTED_MAJOR:
            return self._close(unsupported_version_reason(version))
        if self._phase is _Phase.SERVING and not self._accept_again:
            return Dropped(DropReason.REPEATED_HELLO, f"protocol version {version!r}")
        first = self._phase is _Phase.AWAIT_HELLO
        self._phase = _Phase.SERVING
        self._accept_again = False
        self._lenient = False
        self.accepted_count += 1
        log.info(
            "workload %s: control interface connection established (protocol version %s)%s",
            self.workload,
            version,
            "" if first else " again after the workload reopened it",
        )
        return Accepted(frame(control_codec.encode_accepted()))

    def _close(self, reason: str) -> Closed:
        self._phase = _Phase.CLOSED
        log.warning(
            "workload %s: control interface closed: %s (it reopens when the workload closes and "
            "reopens /run/ankaios/control_interface/output)",
            self.workload,
            reason,
        )
        return Closed(frame(control_codec.encode_connection_closed(reason)), reason)

    def _request(self, request: WorkloadRequest) -> Decoded:
        request_id = request.request.request_id
        decision = self.authorizer.decide(authorized_request(request))
        if log.isEnabledFor(logging.DEBUG):  # describing a decision costs more than deciding it
            log.debug("%s (request id %r)", decision.describe(self.workload), request_id)
        if not decision.allowed:
            return Answered(self.encode_error(request_id, auth.ACCESS_DENIED), f"denied: {decision.reason}")
        if not request.forwardable:
            return Answered(self.encode_error(request_id, MISSING_NEW_STATE), "update without a new state")
        return request.request

    def encode_response(self, response: Response) -> bytes:
        request_id = response.request_id.encode("utf-8")
        # The body is the server's Response without its id, passed through byte for byte; the id
        # (field 1) goes in front of the body's fields, which is also the canonical field order.
        if not request_id:  # proto3 leaves an empty string out
            return frame_field(_FROM_ANKAIOS_RESPONSE_TAG, response.body)
        id_length = encode_varint(len(request_id))
        return frame_field(
            _FROM_ANKAIOS_RESPONSE_TAG, _RESPONSE_REQUEST_ID_TAG, id_length, request_id, response.body
        )

    def encode_error(self, request_id: str, message: str) -> bytes:
        return frame(control_codec.encode_error_response(request_id, message))

    def on_undelivered(self, response: Response) -> Request | None:
        # Only a log stream is stopped: it would go on producing entries nobody reads. The
        # content is the body's only field, so its tag is the first byte.
        if response.body[:1] != _LOG_ENTRIES_TAG:
            return None
        return Request(request_id=response.request_id, body=_LOGS_CANCEL_BODY)
