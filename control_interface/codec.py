"""What a control-interface dialect must provide to the relay: a codec.

The relay owns the FIFOs, the framing, the routing prefix and the buffers; a
codec owns only the meaning of one payload. It turns the bytes of one frame
read from ``output`` into a domain :class:`~ankaios_agent.agent.model.Request`
(parsing them once), or says why the frame is not forwarded; and it turns a
domain response into the bytes of one ``input`` frame. A second protocol
version plugs in as a second codec without touching the relay.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from ankaios_agent.agent.model import Request, Response


class DropReason(enum.Enum):
    """Why a frame from a workload was not forwarded and not answered."""

    AGENT_HELLO = "agentHello is the agent's own message"
    GOODBYE = "goodbye is the agent's own message"
    UPDATE_WORKLOAD_STATE = "updateWorkloadState may only come from the agent"
    EMPTY = "empty ToServer message"
    REQUEST_WITHOUT_CONTENT = "request without updateStateRequest or completeStateRequest"
    UNDECODABLE = "not a valid ToServer protobuf message"
    EMPTY_TO_ANKAIOS = "empty ToAnkaios message"
    UNDECODABLE_TO_ANKAIOS = "not a valid ToAnkaios protobuf message"
    REPEATED_HELLO = "another hello on an already accepted control interface"
    BEFORE_HELLO = (
        "frame before the hello of a control interface that outlived an agent restart "
        "(left over from the previous agent)"
    )
    AFTER_CLOSE = "frame on a closed control interface (it reopens when the workload closes output)"


@dataclass(frozen=True)
class Dropped:
    """A frame that is logged, counted and neither forwarded nor answered."""

    reason: DropReason
    detail: str = ""


@dataclass(frozen=True)
class Rejected:
    """A request the server could not take: the workload gets an error response instead."""

    request_id: str
    """The id as the workload sent it (without the routing prefix)."""
    reason: str


@dataclass(frozen=True)
class Answered:
    """A frame the agent answers itself (e.g. a denied request): ``frame`` goes to ``input``."""

    frame: bytes
    reason: str


@dataclass(frozen=True)
class Accepted:
    """The handshake succeeded: ``frame`` goes first, then the responses held until now."""

    frame: bytes


@dataclass(frozen=True)
class Closed:
    """The handshake failed: ``frame`` is the last one written; further frames are ignored
    and responses dropped until the workload's writer closes ``output``."""

    frame: bytes
    reason: str


Decoded = Request | Dropped | Rejected | Answered | Accepted | Closed


class ResponseGate(enum.Enum):
    """What the relay does with a server response right now."""

    PASS = "pass"
    """Write it (after what is already queued)."""
    HOLD = "hold"
    """Keep it until the handshake is accepted (bounded like the write queue)."""
    DROP = "drop"
    """The control interface is closed: drop it (counted)."""


class Codec(Protocol):
    """One dialect's control-interface messages (the v0.3.1 one is ``codec_v0_3_1``)."""

    def decode(self, payload: bytes) -> Decoded:
        """Parse one frame from ``output``; the Request's id is the workload's own."""
        ...

    def encode_response(self, response: Response) -> bytes:
        """One complete ``input`` frame (length prefix included) for ``response``."""
        ...

    def encode_error(self, request_id: str, message: str) -> bytes:
        """One complete ``input`` frame answering ``request_id`` with an error."""
        ...

    def stream_corrupt(self) -> Decoded | None:
        """The byte stream lost its frame boundaries; what to answer, if anything."""
        ...

    def writer_left(self) -> None:
        """Every writer closed ``output`` (EOF): a later writer may be a new process."""
        ...

    @property
    def gate(self) -> ResponseGate:
        """Whether server responses may be written to ``input`` now."""
        ...

    def on_undelivered(self, response: Response) -> Request | None:
        """What to send the server (id without the routing prefix) if ``response`` is dropped
        before the workload read it, e.g. a cancel of the log stream it belongs to."""
        ...
