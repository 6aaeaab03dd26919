"""Podman log frames to lines, the REST query of a logs request, and the bounded line channel."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ankaios_agent.agent.ports import LogOptions
from ankaios_agent.runtimes.podman.logs import (
    OVERSIZED_LINE_NOTICE,
    ChunkedBody,
    LineChannel,
    LineSplitter,
    rest_params,
    timestamp_ns,
)


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


BOTH = {"stdout": "true", "stderr": "true"}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (LogOptions(), BOTH),
        (LogOptions(follow=True), {**BOTH, "follow": "true"}),
        (LogOptions(tail=5), {**BOTH, "tail": "5"}),
        (LogOptions(tail=0), {**BOTH, "tail": "0"}),
        (LogOptions(tail=-1), {**BOTH, "tail": "all"}),
        (LogOptions(tail=-7), {**BOTH, "tail": "all"}),
        (
            LogOptions(since="2024-01-01T00:00:00Z", until="10m"),
            {**BOTH, "since": "2024-01-01T00:00:00Z", "until": "10m"},
        ),
    ],
)
def test_request_options_become_the_rest_query(options: LogOptions, expected: dict[str, str]) -> None:
    assert rest_params(options) == expected


@pytest.mark.parametrize(
    ("chunks", "lines", "rest"),
    [
        ([frame(1, b"a\n") + frame(2, b"b\n")], ["a", "b"], []),
        ([frame(1, b"a\nb\n")], ["a", "b"], []),
        ([frame(1, b"crlf\r\n")], ["crlf\r"], []),
        ([frame(1, b"\n\n")], ["", ""], []),
        ([frame(1, b"par"), frame(1, b"tial\n")], ["partial"], []),
        # partial frames of the two streams are joined per stream, not across them
        ([frame(1, b"out-"), frame(2, b"err-"), frame(2, b"x\n"), frame(1, b"y\n")], ["err-x", "out-y"], []),
        ([frame(1, b"no line feed")], [], ["no line feed"]),
        ([frame(1, b"a\nrest")], ["a"], ["rest"]),
        ([frame(1, b"bad \xff\xfe utf8\n")], ["bad \ufffd\ufffd utf8"], []),
        # a frame split anywhere, also inside its header
        ([frame(1, b"split\n")[:3], frame(1, b"split\n")[3:9], frame(1, b"split\n")[9:]], ["split"], []),
        ([frame(3, b"odd stream\n")], ["odd stream"], []),
        ([], [], []),
    ],
)
def test_frames_are_cut_into_lines_per_stream(chunks: list[bytes], lines: list[str], rest: list[str]) -> None:
    splitter = LineSplitter()
    got: list[str] = []
    for chunk in chunks:
        got.extend(splitter.feed(chunk))
    assert got == lines
    assert splitter.finish() == rest
    assert splitter.finish() == []


def test_a_stream_without_line_feed_beyond_the_limit_is_given_up_with_a_notice() -> None:
    splitter = LineSplitter(unterminated_limit=10)
    assert splitter.feed(frame(1, b"0123456789A")) == [OVERSIZED_LINE_NOTICE]
    assert splitter.feed(frame(1, b"more\n") + frame(2, b"stderr goes on\n")) == ["stderr goes on"]
    assert splitter.finish() == []


T1 = b"2026-12-01T20:17:45.879060478Z"
T2 = b"2026-12-01T20:17:45.91907Z"
T3 = b"2026-12-01T20:17:46Z"


def stamped(stream: int, stamp: bytes, text: bytes) -> bytes:
    return frame(stream, stamp + b" " + text)


@pytest.mark.parametrize(
    ("stamp", "ns"),
    [
        (T1, 1_796_156_265_879_060_478),
        (T2, 1_796_156_265_919_070_000),
        (T3, 1_796_156_266_000_000_000),
        (b"2026-12-01T21:17:46+01:00", 1_796_156_266_000_000_000),
        (b"2026-12-01T20:17:46.5-00:00", 1_796_156_266_500_000_000),
        (b"garbage", 0),
    ],
)
def test_podman_record_times_are_read_to_the_nanosecond(stamp: bytes, ns: int) -> None:
    assert timestamp_ns(stamp) == ns


def test_record_times_are_taken_off() -> None:
    splitter = LineSplitter(timestamps=True)
    data = stamped(1, T1, b"a\n") + stamped(2, T1, b"part") + stamped(2, T2, b"ial\n")
    assert splitter.feed(data) == ["a", "partial"]
    assert splitter.resume_time == T1


FIRST_READ = (
    stamped(1, T1, b"t1\n") + stamped(1, T2, b"t2a\n") + stamped(2, T2, b"err-") + stamped(2, T2, b"x\n")
)


@pytest.mark.parametrize(
    ("second_read", "expected"),
    [
        # the same records again, then new ones
        (FIRST_READ + stamped(1, T2, b"new\n") + stamped(1, T3, b"t3\n"), ["new", "t3"]),
        # Podman joined the partial records this time, and cut another line differently
        (
            stamped(1, T1, b"t1\n")
            + stamped(1, T2, b"t2a\nne")
            + stamped(2, T2, b"err-x\n")
            + stamped(1, T2, b"w\n")
            + stamped(1, T3, b"t3\n"),
            ["new", "t3"],
        ),
        # the second read has nothing new
        (FIRST_READ, []),
        # records older than the resume time are dropped
        (stamped(1, b"2026-12-01T20:17:40Z", b"old\n") + FIRST_READ + stamped(2, T3, b"new\n"), ["new"]),
    ],
)
def test_a_second_read_resumes_right_after_what_was_delivered(
    second_read: bytes, expected: list[str]
) -> None:
    splitter = LineSplitter(timestamps=True)
    assert splitter.feed(FIRST_READ) == ["t1", "t2a", "err-x"]
    splitter.resume()
    assert splitter.feed(second_read) == expected


def test_a_follow_closing_with_records_from_later_loses_nothing_of_what_it_skipped() -> None:
    """Podman may end a follow with a record from further on in the file, skipping the ones
    in between; the second read delivers those, and not the later record a second time."""
    late = b"2026-12-01T20:17:50Z"
    splitter = LineSplitter(timestamps=True)
    assert splitter.feed(stamped(1, T2, b"a\n") + stamped(1, late, b"z\n")) == ["a", "z"]
    assert splitter.resume_time == T2
    splitter.resume()
    again = stamped(1, T2, b"a\n") + stamped(1, T3, b"b\n") + stamped(1, late, b"z\n")
    assert splitter.feed(again) == ["b"]
    assert splitter.diverged


def test_a_half_record_sent_by_the_follow_is_delivered_again_whole_with_what_came_after() -> None:
    """Podman's follow sends a record it meets half-written as if complete, then jumps ahead;
    the cut line stays sent, its whole version and the skipped lines follow, once each."""
    splitter = LineSplitter(timestamps=True)
    follow = stamped(1, T1, b"1 one\n") + stamped(2, T1, b"E err\n") + stamped(1, T2, b"2 tw\n")
    follow += stamped(1, T3, b"9 nine\n")
    assert splitter.feed(follow) == ["1 one", "E err", "2 tw", "9 nine"]
    splitter.resume()
    again = stamped(1, T1, b"1 one\n") + stamped(2, T1, b"E err\n") + stamped(1, T2, b"2 two\n")
    again += stamped(1, T2, b"3 three\n") + stamped(2, T3, b"F err\n") + stamped(1, T3, b"9 nine\n")
    assert splitter.feed(again) == ["2 two", "3 three", "F err"]
    assert splitter.feed(stamped(1, T3, b"10 ten\n")) == ["10 ten"]


def test_a_cut_inside_an_unterminated_line_goes_back_to_its_start() -> None:
    splitter = LineSplitter(timestamps=True)
    assert splitter.feed(stamped(1, T1, b"done\nlong li") + stamped(1, T2, b"XX\n")) == ["done", "long liXX"]
    splitter.resume()
    assert splitter.feed(stamped(1, T1, b"done\nlong li") + stamped(1, T2, b"ne\n")) == ["long line"]


def test_what_is_kept_for_a_second_read_is_bounded_and_still_resumes_exactly() -> None:
    splitter = LineSplitter(timestamps=True, kept_bytes=8)
    first = stamped(1, T1, b"aaaa\nbb") + stamped(1, T2, b"bb\ncc") + stamped(1, T3, b"c\n")
    assert splitter.feed(first) == ["aaaa", "bbbb", "ccc"]
    assert splitter.resume_time == T2  # the oldest time was let go when the third one began
    splitter.resume()
    assert splitter.feed(stamped(1, T2, b"bb\ncc") + stamped(1, T3, b"X\nnew\n")) == ["ccX", "new"]


def test_a_line_begun_before_what_is_kept_is_still_delivered_whole() -> None:
    splitter = LineSplitter(timestamps=True, kept_bytes=8)
    first = stamped(1, T1, b"aaaa\nbb") + stamped(1, T2, b"bbbb") + stamped(1, T3, b"bb\n")
    assert splitter.feed(first) == ["aaaa", "bbbbbbbb"]
    assert splitter.resume_time == T2
    splitter.resume()
    assert splitter.feed(stamped(1, T2, b"bbXX") + stamped(1, T3, b"bb\n")) == ["bbbbXXbb"]


def test_only_the_last_seconds_are_remembered() -> None:
    splitter = LineSplitter(timestamps=True, window=2)
    splitter.feed(stamped(1, T1, b"1\n") + stamped(1, T2, b"2\n") + stamped(1, T3, b"3\n"))
    assert splitter.resume_time == T2


def test_resume_before_anything_was_read_drops_nothing() -> None:
    splitter = LineSplitter(timestamps=True)
    splitter.resume()
    assert splitter.feed(FIRST_READ) == ["t1", "t2a", "err-x"]


async def test_the_channel_blocks_producers_when_full_and_releases_them_as_lines_are_taken() -> None:
    channel = LineChannel(asyncio.get_running_loop(), producers=1, capacity=20)
    progress: list[int] = []

    def produce() -> None:
        for n in range(10):
            channel.put([f"line {n:04}"])  # 9 characters + line feed: two fill the channel
            progress.append(n)
        channel.done()

    thread = threading.Thread(target=produce)
    thread.start()
    got: list[str] = []
    finished = False
    while not finished:
        batch, finished = await channel.take()
        # Never more than the capacity waits in the channel.
        assert sum(len(line) + 1 for line in batch) <= 20
        got.extend(batch)
    await asyncio.to_thread(thread.join)
    assert got == [f"line {n:04}" for n in range(10)]


async def test_closing_the_channel_releases_a_blocked_producer() -> None:
    channel = LineChannel(asyncio.get_running_loop(), producers=1, capacity=5)
    results: list[bool] = []
    assert channel.put(["full!"]) is True

    def produce() -> None:
        results.append(channel.put(["blocked"]))

    thread = threading.Thread(target=produce)
    thread.start()
    channel.close()
    await asyncio.to_thread(thread.join)
    assert results == [False]


async def test_a_batch_larger_than_the_whole_capacity_still_passes_on_its_own() -> None:
    channel = LineChannel(asyncio.get_running_loop(), producers=1, capacity=4)
    assert channel.put(["much longer than four"]) is True
    channel.done("broken")
    assert await channel.take() == (("much longer than four",), True)
    assert channel.errors() == ["broken"]


def chunked(*payloads: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in payloads) + b"0\r\n\r\n"


BODY = chunked(b"first", b"x" * 300, b"\r\n inside a chunk \r\n", b"last")
PAYLOAD = b"first" + b"x" * 300 + b"\r\n inside a chunk \r\n" + b"last"


@pytest.mark.parametrize("cut", [1, 2, 3, 7, 64, len(BODY)])
def test_a_chunked_body_gives_its_payload_however_the_reads_are_cut(cut: int) -> None:
    body = ChunkedBody()
    got = b""
    for start in range(0, len(BODY), cut):
        got += body.feed(BODY[start : start + cut])
        assert body.finished == (start + cut >= len(BODY) - 2)  # once the size line "0" is complete
    assert got == PAYLOAD
    assert body.finished


@pytest.mark.parametrize(
    ("data", "payload"),
    [
        (b"5;name=value\r\nhello\r\n0\r\n\r\n", b"hello"),  # chunk extensions are ignored
        (b"A\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n", b"0123456789"),  # upper-case size, trailers
        (b"0\r\n\r\n", b""),
    ],
)
def test_chunk_extensions_and_trailers_are_not_payload(data: bytes, payload: bytes) -> None:
    body = ChunkedBody()
    assert body.feed(data) == payload
    assert body.finished


def test_nothing_after_the_last_chunk_is_taken() -> None:
    body = ChunkedBody()
    assert body.feed(chunked(b"end") + b"HTTP/1.1 200 OK\r\n") == b"end"
    assert body.feed(b"more") == b""


@pytest.mark.parametrize("data", [b"zz\r\nab\r\n", b"1" * 2000])
def test_a_broken_chunked_body_is_an_error(data: bytes) -> None:
    with pytest.raises(ValueError, match="chunk header"):
        ChunkedBody().feed(data)


def test_a_record_larger_than_many_reads_is_gathered_whole() -> None:
    splitter = LineSplitter(timestamps=True)
    data = stamped(1, T1, b"y" * 1_000_000 + b"\n") + stamped(2, T1, b"after\n")
    got: list[str] = []
    for start in range(0, len(data), 4096):
        got.extend(splitter.feed(data[start : start + 4096]))
    assert got == ["y" * 1_000_000, "after"]


def test_lines_sent_ahead_are_left_out_once_each_in_order_past_ones_that_never_come() -> None:
    splitter = LineSplitter(timestamps=True)
    # the follow: "a", then a cut "b", then it jumped: "x" "d" "e" (and "c" was skipped)
    follow = stamped(1, T1, b"a\nb-cu\n") + stamped(1, T2, b"garbled\nd\nd\n")
    assert splitter.feed(follow) == ["a", "b-cu", "garbled", "d", "d"]
    splitter.resume()
    again = stamped(1, T1, b"a\nb-cut\n") + stamped(1, T2, b"c\nd\nd\nd\ne\n")
    # "garbled" never comes and is passed over; each "d" sent ahead leaves out one "d"
    assert splitter.feed(again) == ["b-cut", "c", "d", "e"]
