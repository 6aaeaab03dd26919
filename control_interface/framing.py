"""Length-delimited framing of the control-interface FIFOs: ``varint(len) + payload``.

Framing knows nothing about what a payload means: it only splits the byte
stream into message bytes (and prefixes outgoing ones with their length). The
dialect's codec parses each payload exactly once.
"""

from __future__ import annotations

from ankaios_agent.agent.wire_format import encode_varint

MAX_FRAME_SIZE = 4 * 1024 * 1024
"""Largest payload accepted from a workload; a longer length prefix marks the stream corrupt."""

# A varint of a 64-bit value needs at most 10 bytes; more continuation bytes can
# only be garbage. (The Rust reader allows 19, which accepts nonsense lengths.)
_MAX_VARINT_BYTES = 10


def frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with its varint length."""
    return encode_varint(len(payload)) + payload


def frame_field(key: bytes, *parts: bytes) -> bytes:
    """The frame of a message holding one length-delimited field: ``key``, then ``parts`` joined.

    Used for responses that wrap bytes already serialized: one join copies each part once,
    however deep the nesting."""
    length = sum(map(len, parts))
    field_length = encode_varint(length)
    return b"".join((encode_varint(len(key) + len(field_length) + length), key, field_length, *parts))


class CorruptStream(Exception):
    """The byte stream cannot be split into frames any more (bad varint or oversized frame).

    Frame boundaries are lost for good: the reader must discard the rest of
    this writer's bytes and start afresh with the next writer.
    """

    def __init__(self, reason: str, frames: list[bytes]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.frames = frames
        """Payloads that were complete before the corrupt point (still valid)."""


class FrameDecoder:
    """Incremental splitter: feed arbitrary chunks, get complete payloads in order.

    Holds at most one partial frame (bounded by ``max_frame_size`` plus the
    length prefix). After :class:`CorruptStream` the decoder is empty again;
    the caller decides what to do with further bytes of the same writer.
    """

    def __init__(self, max_frame_size: int = MAX_FRAME_SIZE) -> None:
        self._max = max_frame_size
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held right now (lost if the writer goes away)."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget any partial frame (the writer went away)."""
        self._buf.clear()

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data``; return every payload completed by it.

        Raises :class:`CorruptStream` on a varint longer than 10 bytes or a
        length above the maximum frame size; the payloads completed before the
        corrupt point travel in the exception, and the decoder is empty again.
        """
        self._buf += data
        frames: list[bytes] = []
        buf = self._buf
        pos = 0
        end = len(buf)
        while pos < end:
            length = 0
            shift = 0
            cursor = pos
            complete = False
            while cursor < end:
                byte = buf[cursor]
                cursor += 1
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    complete = True
                    break
                shift += 7
                if cursor - pos >= _MAX_VARINT_BYTES:
                    self._buf.clear()
                    raise CorruptStream(f"length prefix longer than {_MAX_VARINT_BYTES} bytes", frames)
            if not complete:
                break
            if length > self._max:
                self._buf.clear()
                raise CorruptStream(f"frame of {length} bytes exceeds the maximum of {self._max}", frames)
            if end - cursor < length:
                break
            frames.append(bytes(buf[cursor : cursor + length]))
            pos = cursor + length
        if pos:
            del buf[:pos]
        return frames
