"""Protobuf's wire format, where the agent frames, builds or measures messages by hand (pure).

The control-interface framing prefixes each message with a varint length; the
relay's codecs wrap already-serialized bodies; the v1.0.1 conversion puts log
entries together as bytes and the log collector sizes them before it packs a
batch. All of them use these few pieces, so that the format is written once.
"""

from __future__ import annotations

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
