"""Control-interface framing (spec §8.3, §8.4, §11 items 23 and 24)."""

from __future__ import annotations

import pytest
from google.protobuf.internal.encoder import _VarintBytes
from hypothesis import given
from hypothesis import strategies as st

from ankaios_agent.agent.errors import ConversionError
from ankaios_agent.agent.model import Response
from ankaios_agent.control_interface.framing import (
    MAX_FRAME_SIZE,
    CorruptStream,
    Dropped,
    DropReason,
    FrameDecoder,
    decode_to_server,
    encode_response,
    encode_varint,
    frame,
)
from ankaios_agent.proto import ankaios_pb2 as pb

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
    """§8.3: the length prefix is the standard protobuf varint."""
    assert encode_varint(value) == _VarintBytes(value)


@given(payloads, st.lists(st.integers(min_value=0), max_size=30))
def test_decoder_yields_every_frame_whatever_the_chunking(items: list[bytes], cuts: list[int]) -> None:
    """§8.3/§11.24: frames come out whole and in order however the bytes are split."""
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
    """§8.3 + brief: a length above 4 MiB means the stream is corrupt."""
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


def _to_server(**kwargs: object) -> bytes:
    return pb.ToServer(**kwargs).SerializeToString()  # type: ignore[arg-type]


def test_request_becomes_domain_request_with_id_moved_out_of_body() -> None:
    """§8.4: the body is the Request without requestId; the id travels separately."""
    wire = pb.Request(requestId="42", completeStateRequest=pb.CompleteStateRequest(fieldMask=["a.b"]))
    result = decode_to_server(_to_server(request=wire))
    assert not isinstance(result, Dropped)
    assert result.request_id == "42"
    body = pb.Request.FromString(result.body)
    assert body.requestId == ""
    assert list(body.completeStateRequest.fieldMask) == ["a.b"]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (_to_server(agentHello=pb.AgentHello(agentName="evil")), DropReason.AGENT_HELLO),
        (_to_server(goodbye=pb.Goodbye()), DropReason.GOODBYE),
        (_to_server(updateWorkloadState=pb.UpdateWorkloadState()), DropReason.UPDATE_WORKLOAD_STATE),
        (b"", DropReason.EMPTY),
        (_to_server(request=pb.Request(requestId="1")), DropReason.REQUEST_WITHOUT_CONTENT),
        (b"\xff\xff\xff", DropReason.UNDECODABLE),
    ],
)
def test_only_requests_with_content_are_forwarded(payload: bytes, reason: DropReason) -> None:
    """§11.23: hello, goodbye, states, empty and content-less messages are dropped, never forwarded."""
    result = decode_to_server(payload)
    assert isinstance(result, Dropped)
    assert result.reason is reason


def test_unknown_field_only_message_counts_as_empty() -> None:
    """A ToServer with no oneof member set (only unknown fields) is dropped as empty."""
    result = decode_to_server(b"\x78\x01")  # field 15, varint 1: unknown to v0.3.1
    assert isinstance(result, Dropped)
    assert result.reason is DropReason.EMPTY


@given(st.binary(max_size=300))
def test_decode_never_raises_on_arbitrary_bytes(payload: bytes) -> None:
    """Nothing a workload writes can raise out of the decoder (§11.23)."""
    result = decode_to_server(payload)
    assert isinstance(result, Dropped) or result.body is not None


def test_response_frame_carries_stripped_id_and_content() -> None:
    """§8.5: input receives varint + FromServer{response} with the id after the routing prefix."""
    body = pb.Response(error=pb.Error(message="nope")).SerializeToString()
    data = encode_response(Response(request_id="x@y", body=body))
    (payload,) = FrameDecoder().feed(data)
    message = pb.FromServer.FromString(payload)
    assert message.WhichOneof("FromServerEnum") == "response"
    assert message.response.requestId == "x@y"
    assert message.response.error.message == "nope"


def test_response_with_undecodable_body_raises_conversion_error() -> None:
    with pytest.raises(ConversionError, match="undecodable"):
        encode_response(Response(request_id="1", body=b"\xff\xff"))
