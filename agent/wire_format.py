"""Protobuf's wire format, where the agent frames, builds or measures messages by hand (pure).

The control-interface framing prefixes each message with a varint length; the
relay's codecs wrap already-serialized bodies; both dialects' conversions put a
checked control-interface request around its routed id, and the v1.0.1 one puts
log entries together as bytes, which the log collector sizes before it packs a
batch. All of them use these few pieces, so that the format is written once.
"""

from __future__ import annotations

from typing import Protocol


class _Serializable(Protocol):
    def SerializeToString(self) -> bytes: ...  # noqa: N802 (protobuf's name)


_ONE_BYTE = tuple(bytes((value,)) for value in range(0x80))
"""Every varint of one byte, made once: most lengths and ids on the relay's path are below 128."""


def encode_varint(value: int) -> bytes:
    """Encode a non-negative integer as a protobuf base-128 varint."""
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    if value < 0:
        raise ValueError(f"varint must be non-negative, got {value}")
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint_size(value: int) -> int:
    """How many bytes :func:`encode_varint` makes of a non-negative ``value``."""
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


def length_delimited(key: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its key, the payload's varint length, the payload."""
    return key + encode_varint(len(payload)) + payload


def length_delimited_size(payload: int) -> int:
    """The size of a length-delimited field with a one-byte key and a ``payload``-byte payload."""
    return 1 + varint_size(payload) + payload


def with_id_first(key: bytes, id_key: bytes, request_id: str, body: bytes) -> bytes:
    """Field ``key`` holding a message: the string field ``id_key`` (left out when empty, as
    protobuf does), then ``body``, the message's other fields already serialized.

    With ids in field 1 and ``body`` serialized by protobuf, these are the bytes protobuf
    makes of the whole message, without building it."""
    encoded = request_id.encode("utf-8")
    return length_delimited(key, length_delimited(id_key, encoded) + body if encoded else body)


def serialized(wire: _Serializable | bytes) -> bytes:
    """A connection's outgoing message as bytes: protobuf's, or the bytes a conversion put together."""
    return wire if isinstance(wire, bytes) else wire.SerializeToString()
