"""Control-interface framing: varint length prefix, incremental splitting, corrupt streams."""

from __future__ import annotations

import pytest

# The protobuf stubs leave out this internal encoder, the reference the varint is checked against.
from google.protobuf.internal.encoder import _VarintBytes  # type: ignore[attr-defined]
from hypothesis import given
from hypothesis import strategies as st

from ankaios_agent.agent.wire_format import encode_varint
from ankaios_agent.control_interface.framing import (
    MAX_FRAME_SIZE,
    CorruptStream,
    FrameDecoder,
    frame,
)

payloads = st.lists(st.binary(min_size=0, max_size=400), max_size=12)


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, last = [], 0
    for point in [*points, len(data)]:
        chunks.append(data[last:point])
        last = point
    return chunks


def feed_all(decoder: FrameDecoder, chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_varint_matches_protobuf_encoding(value: int) -> None:
    """The length prefix is the standard protobuf varint."""
    assert encode_varint(value) == _VarintBytes(value)


@pytest.mark.parametrize("value", [0, 1, 0x7F, 0x80, 0x81, 0x3FFF, 0x4000, 0x1FFFFF, 0x200000, 2**64 - 1])
def test_varint_is_right_at_every_byte_count_boundary(value: int) -> None:
    """One, two and more bytes are encoded by different branches; each boundary is standard."""
    assert encode_varint(value) == _VarintBytes(value)


@pytest.mark.parametrize("value", [-1, -0x80, -(2**63)])
def test_negative_varint_is_refused(value: int) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        encode_varint(value)


@given(payloads, st.lists(st.integers(min_value=0), max_size=30))
def test_decoder_yields_every_frame_whatever_the_chunking(items: list[bytes], cuts: list[int]) -> None:
    """Frames come out whole and in order however the bytes are split."""
    stream = b"".join(frame(p) for p in items)
    decoder = FrameDecoder()
    assert feed_all(decoder, split_at(stream, cuts)) == items
    assert decoder.pending == 0


@given(payloads, st.binary(max_size=64))
def test_decoder_byte_by_byte_keeps_partial_frame_pending(items: list[bytes], tail: bytes) -> None:
    """A frame cut short stays pending (and is dropped on reset) without corrupting earlier ones."""
    stream = b"".join(frame(p) for p in items)
    decoder = FrameDecoder()
    out = feed_all(decoder, [bytes([b]) for b in stream])
    assert out == items
    partial = frame(tail + b"x")[:-1]
    assert decoder.feed(partial) == []
    assert decoder.pending == len(partial)
    decoder.reset()
    assert decoder.pending == 0
    assert decoder.feed(frame(b"next")) == [b"next"]


@given(st.binary(max_size=2000), st.lists(st.integers(min_value=0), max_size=20))
def test_decoder_survives_arbitrary_garbage_with_bounded_memory(garbage: bytes, cuts: list[int]) -> None:
    """Garbage never raises anything but CorruptStream and never buffers past the frame limit."""
    limit = 256
    decoder = FrameDecoder(max_frame_size=limit)
    for chunk in split_at(garbage, cuts):
        try:
            frames = decoder.feed(chunk)
        except CorruptStream as err:
            frames = err.frames
            assert decoder.pending == 0
        assert all(len(f) <= limit for f in frames)
        assert decoder.pending <= limit + 10


@given(payloads, st.binary(min_size=1, max_size=200), st.lists(st.integers(min_value=0), max_size=20))
def test_valid_frames_before_garbage_are_never_lost(
    items: list[bytes], garbage: bytes, cuts: list[int]
) -> None:
    """Every frame completed before the stream turns corrupt is delivered."""
    stream = b"".join(frame(p) for p in items) + garbage
    decoder = FrameDecoder(max_frame_size=500)
    out: list[bytes] = []
    for chunk in split_at(stream, cuts):
        try:
            out.extend(decoder.feed(chunk))
        except CorruptStream as err:
            out.extend(err.frames)
            break
    assert out[: len(items)] == items


def test_oversized_frame_marks_stream_corrupt() -> None:
    """A length above 4 MiB means the stream is corrupt."""
    decoder = FrameDecoder()
    with pytest.raises(CorruptStream, match="exceeds"):
        decoder.feed(frame(b"ok") + encode_varint(MAX_FRAME_SIZE + 1))
    assert decoder.pending == 0


def test_frame_of_exactly_the_maximum_is_accepted() -> None:
    payload = b"\x00" * 1000
    assert FrameDecoder(max_frame_size=1000).feed(frame(payload)) == [payload]


def test_length_prefix_longer_than_ten_bytes_is_corrupt() -> None:
    decoder = FrameDecoder()
    with pytest.raises(CorruptStream, match="length prefix") as err:
        decoder.feed(frame(b"a") + b"\xff" * 10)
    assert err.value.frames == [b"a"]
