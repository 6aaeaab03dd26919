"""What every relay is tuned by, what it counts, and when a repeated event is logged."""

from __future__ import annotations

from dataclasses import dataclass, field

from ankaios_agent.control_interface.codec import DropReason
from ankaios_agent.control_interface.framing import MAX_FRAME_SIZE


def worth_logging(count: int) -> bool:
    """Log a repeated drop at counts 1, 2, 4, 8, ...: a workload that floods its control
    interface must not flood the device's log with one warning per message."""
    return count & (count - 1) == 0


@dataclass(frozen=True)
class RelaySettings:
    """Tunables of every relay (injected, never patched in tests)."""

    buffer_size: int = 1024
    """Responses waiting for a workload; the oldest is dropped beyond this (the reference queues 1024)."""
    open_retry_min: float = 0.01
    """First delay before retrying to open ``input`` (no reader yet), seconds."""
    open_retry_max: float = 0.5
    """Cap of the doubling retry delay; also bounds how long a workload blocked in
    ``open(input)`` waits for the agent while nothing is to be delivered."""
    read_chunk: int = 65536
    reads_per_wakeup: int = 16
    """Bounded work per readiness callback keeps a chatty workload from starving others."""
    max_frame_size: int = MAX_FRAME_SIZE
    flush_delay: float = 0.0002
    """How long a response may wait for others to share its write while more are expected, seconds."""
    max_in_flight: int = 32
    """Forwarded requests of one workload still waiting for a response; reading ``output``
    pauses at this count."""
    unanswered_after: float = 10.0
    """A request that was written to the server this long ago without a response no longer
    counts as in flight (the connection it went out on may be gone), seconds. Requests still
    queued for the server always count, so a long outage cannot let a workload queue more."""

    def __post_init__(self) -> None:
        if self.buffer_size < 1:
            raise ValueError("buffer_size must be at least 1")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if self.unanswered_after <= 0:
            raise ValueError("unanswered_after must be positive")
        if not 0 < self.open_retry_min <= self.open_retry_max:
            raise ValueError("need 0 < open_retry_min <= open_retry_max")


@dataclass
class RelayCounters:
    """What happened on one relay; every drop is also logged with the workload name."""

    requests_forwarded: int = 0
    requests_dropped: dict[DropReason, int] = field(default_factory=dict)
    requests_rejected: int = 0
    """Answered with an error because the server could not have taken them."""
    requests_unanswered: int = 0
    """Stopped counting as in flight after ``unanswered_after`` without a response."""
    read_pauses: int = 0
    """Times reading ``output`` paused because ``max_in_flight`` requests were waiting."""
    forward_failures: int = 0
    truncated_frames: int = 0
    corrupt_streams: int = 0
    responses_written: int = 0
    responses_dropped_buffer_full: int = 0
    responses_rewritten: int = 0
    responses_dropped_closed: int = 0
    """Responses for a control interface closed because a FIFO was replaced."""
    closed_replaced_fifo: int = 0
    """1 once the control interface was closed because a FIFO was replaced."""
    writers_left: int = 0
    """Times every writer had closed ``output`` (EOF seen)."""
    requests_answered: int = 0
    """Answered by the agent itself (denied by the access rules, or not acceptable)."""
    handshakes_accepted: int = 0
    handshakes_refused: int = 0
    responses_dropped_session_closed: int = 0
    """Responses for a workload whose handshake failed (its session is closed)."""
