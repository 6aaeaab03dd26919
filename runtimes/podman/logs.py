"""Reading container logs from Podman's REST ``/containers/{id}/logs`` endpoint.

Each log being read has its own thread (a follow can block for hours, which
must not occupy a worker of the shared executor) that holds one streaming
response open, takes Podman's multiplexed frames apart (8-byte header: stream
1 = stdout, 2 = stderr, then a big-endian payload length), joins each stream's
partial frames and cuts them into lines at ``\\n`` (a ``\\r`` stays, invalid
UTF-8 becomes U+FFFD; a last line without ``\\n`` is delivered at the end).

Lines travel to the event loop through :class:`LineChannel`, which holds at
most ``buffer_bytes`` of text: when the loop side does not take them, the
thread stops reading and Podman's socket fills up, so a slow consumer slows the
reading instead of growing memory. Closing the iterator stops the thread at
once, also while Podman sends nothing: the socket is shut down under it.

The request options map to the REST parameters Podman 4.3 accepts:
``follow=true``; ``tail=<n>`` (negative means every line, absent is ``all``);
``since``/``until`` passed as given, parsed by Podman like the CLI's (RFC 3339,
Unix time or a duration); ``stdout=true&stderr=true`` always.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import logging
import socket
import struct
import threading
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass

from podman import PodmanClient

from ankaios_agent.agent.errors import RuntimeLogsFailed
from ankaios_agent.agent.model import InstanceName
from ankaios_agent.agent.ports import LogBatch, LogOptions
from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman.engine_errors import translate

logger = logging.getLogger(__name__)

UNTERMINATED_LIMIT = 50 * 1024 * 1024
"""Bytes of one stream without a line feed after which that stream is given up."""

OVERSIZED_LINE_NOTICE = "The previous log message exceeded the maximum 50 MB size. Closing the log campaign."

DEFAULT_BUFFER_BYTES = 1024 * 1024
DEFAULT_TAKE_BYTES = 64 * 1024
"""About how much text one batch holds, so that handling one batch never holds the loop for long."""
DEFAULT_LINGER_S = 0.005
"""How long the loop side lets lines gather after the first of them arrives in an empty channel.

Podman hands a fast log over a few lines at a time; without the pause each handful would
become a message of its own, and every message costs a round through the loop, the gRPC
stream and the server. A few milliseconds more for the first line of a burst is not noticed
by a person reading a log."""

READ_BYTES = 256 * 1024
"""Largest block read from Podman's socket at once: Podman sends each record as an HTTP chunk
of its own, so reading chunk by chunk would cost one pass through the HTTP stack per line."""

_LOOK_AHEAD = 4
_HEADER = 8
_FRAME_HEADER = struct.Struct(">BxxxI")
_STDOUT, _STDERR = 1, 2


def rest_params(options: LogOptions) -> dict[str, str]:
    """The query of ``GET /containers/{id}/logs`` for ``options``."""
    params = {"stdout": "true", "stderr": "true"}
    if options.follow:
        params["follow"] = "true"
    if options.tail is not None:
        params["tail"] = str(options.tail) if options.tail >= 0 else "all"
    if options.since is not None:
        params["since"] = options.since
    if options.until is not None:
        params["until"] = options.until
    return params


class LineSplitter:
    """Podman's frames in, complete lines out, for both streams of one container (pure).

    With ``timestamps`` every frame starts with its record's time and a space
    (``timestamps=true`` on the request; Podman gives whole seconds there). The
    time is taken off, and the text delivered during the last few seconds seen
    is kept per stream, so that after :meth:`resume` a second read starting at
    :attr:`resume_time` delivers only what is new.

    The second read is compared with the kept text byte for byte, not counted
    off: Podman 4.3's follow is not always a clean prefix of the log. Its file
    tailer, when it meets a record still being written, sends the half record
    and jumps to the end of the file, so a follow of a busy log can end (or go
    on) with a cut line and records from further on, with the lines in between
    never sent. Where the second read first differs from what was delivered,
    the splitter goes back to that point (the line it falls in is delivered
    again, whole) and delivers the rest of the second read, so nothing is lost,
    less the lines the follow had already sent from further on (matched in
    order, with a short look-ahead past lines the follow sent cut), so they do
    not come twice. A line Podman sent cut stays delivered, next to its whole
    version.
    Bytes are compared, not records: Podman does not always cut a long line
    into the same partial records when it reads the file again. At most
    ``kept_bytes`` per stream are kept (whole seconds, at least the latest).
    """

    def __init__(
        self,
        unterminated_limit: int = UNTERMINATED_LIMIT,
        *,
        timestamps: bool = False,
        window: int = 4,
        kept_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self._raw = bytearray()
        self._need = _HEADER  # bytes the next frame needs before it can be taken apart
        self._pending = {_STDOUT: bytearray(), _STDERR: bytearray()}
        self._closed: set[int] = set()
        self._limit = unterminated_limit
        self._timestamps = timestamps
        self._window = window
        self._kept_limit = kept_bytes
        # Times seen, oldest first, each with where its text starts in ``_kept`` per stream.
        self._recent: dict[bytes, dict[int, int]] = {}
        self._kept = {_STDOUT: bytearray(), _STDERR: bytearray()}
        # The unterminated text each stream had where its kept text starts.
        self._kept_pending = {_STDOUT: b"", _STDERR: b""}
        self._last_stamp = b""
        self._skip_time = -1
        self._stamp_ns: tuple[bytes, int] = (b"", 0)
        # While resuming: per stream, how much of the kept text the second read has matched.
        self._matched: dict[int, int] = {}
        # After a divergence: per stream, the whole lines the first read delivered from there on,
        # in order; the second read leaves out a line that equals one of the next few of them.
        self._sent_ahead: dict[int, collections.deque[str]] = {}
        self.diverged = False
        """Set when a second read differed from what the first one delivered."""

    @property
    def resume_time(self) -> bytes:
        """Where a second read has to start (Podman's time text; empty: nothing taken yet)."""
        return next(iter(self._recent)) if self._recent else b""

    def resume(self) -> None:
        """From here on drop records older than ``resume_time`` and, from there on, what matches
        the text delivered since; deliver the rest."""
        if self._recent:
            self._skip_time = timestamp_ns(self.resume_time)
            self._matched = {stream: 0 for stream in self._kept}

    def feed(self, data: bytes) -> list[str]:
        """Take the next bytes of the response body; return the lines they complete."""
        self._raw += data
        if len(self._raw) < self._need:
            return []  # a long record still coming: wait for all of it without copying it again
        raw = bytes(self._raw)
        lines: list[str] = []
        offset, end = 0, len(raw)
        run: list[bytes] = []  # payloads of consecutive frames of one stream, joined before cutting
        run_stream = 0
        self._need = _HEADER
        while end - offset >= _HEADER:
            stream, size = _FRAME_HEADER.unpack_from(raw, offset)
            start, stop = offset + _HEADER, offset + _HEADER + size
            if stop > end:
                self._need = stop - offset
                break
            offset = stop
            if stream not in (_STDOUT, _STDERR):
                stream = _STDOUT  # stdin echo or an unknown stream: treat as output, as a terminal would
            payload = raw[start:stop]
            if self._timestamps:
                payload = self._new_part(stream, payload)
                if not payload:
                    continue
            if stream != run_stream:
                if run:
                    self._take(run_stream, run, lines)
                run, run_stream = [], stream
            run.append(payload)
        if run:
            self._take(run_stream, run, lines)
        self._raw = bytearray(raw[offset:])
        return lines

    def finish(self) -> list[str]:
        """The unterminated rest of each stream, as a last line of its own."""
        lines = [_decode(rest) for rest in self._pending.values() if rest]
        for rest in self._pending.values():
            rest.clear()
        return lines

    def _new_part(self, stream: int, payload: bytes) -> bytes:
        """The record's text without its time, less what an earlier read delivered."""
        space = payload.find(b" ")
        stamp, text = payload[:space], payload[space + 1 :]
        if self._skip_time >= 0:
            if self._time_of(stamp) < self._skip_time:
                return b""
            if stream in self._matched:
                text = self._compare(stream, text)
                if not self._matched:
                    self._skip_time = -1
                if not text:
                    return text
        if stamp != self._last_stamp:
            self._last_stamp = stamp
            if stamp not in self._recent:
                self._recent[stamp] = {s: len(kept) for s, kept in self._kept.items()}
                self._forget_old()
        self._kept[stream] += text
        return text

    def _time_of(self, stamp: bytes) -> int:
        if stamp != self._stamp_ns[0]:
            self._stamp_ns = (stamp, timestamp_ns(stamp))
        return self._stamp_ns[1]

    def _forget_old(self) -> None:
        """Keep the last ``window`` times, and no more than ``kept_bytes`` per stream unless it is
        all the latest time's."""
        while len(self._recent) > 1 and (
            len(self._recent) > self._window
            or any(len(kept) > self._kept_limit for kept in self._kept.values())
        ):
            del self._recent[next(iter(self._recent))]
            starts = dict(next(iter(self._recent.values())))
            for stream, kept in self._kept.items():
                cut = starts[stream]
                gone = bytes(kept[:cut])
                feed = gone.rfind(b"\n")
                self._kept_pending[stream] = (
                    gone[feed + 1 :] if feed >= 0 else self._kept_pending[stream] + gone
                )
                del kept[:cut]
            for offsets in self._recent.values():
                for stream in offsets:
                    offsets[stream] -= starts[stream]

    def _compare(self, stream: int, text: bytes) -> bytes:
        """What of ``text`` (from a second read) is new, going back to where it first differs."""
        kept = self._kept[stream]
        at = self._matched[stream]
        size = min(len(text), len(kept) - at)
        if text[:size] == kept[at : at + size]:
            if at + size < len(kept):
                self._matched[stream] = at + size
                return b""
            del self._matched[stream]
            return text[size:]
        same = 0
        while text[same : same + 4096] == kept[at + same : at + same + 4096]:
            same += 4096
        while text[same] == kept[at + same]:
            same += 1
        # Back to where the reads part: the unterminated text of this stream as it was there.
        at += same
        before = bytes(kept[:at])
        feed = before.rfind(b"\n")
        pending = before[feed + 1 :] if feed >= 0 else self._kept_pending[stream] + before
        self._pending[stream][:] = pending
        # What the first read sent from here on: the rest of the line cut there (if it is cut
        # inside a line), then whole lines from further on in the log, and an unterminated rest
        # (never sent).
        ahead = kept[at:].decode("utf-8", errors="replace").split("\n")[0 if not pending else 1 : -1]
        if ahead:
            self._sent_ahead[stream] = collections.deque(ahead)
        del kept[at:]
        del self._matched[stream]
        self.diverged = True
        return text[same:]

    def _take(self, stream: int, payloads: list[bytes], lines: list[str]) -> None:
        if stream in self._closed:
            return
        pending = self._pending[stream]
        if len(pending) + sum(map(len, payloads)) > self._limit:
            # Near the limit: frame by frame, so the limit cuts where it always did.
            for payload in payloads:
                if stream not in self._closed:
                    self._cut(stream, pending, payload, lines)
            return
        self._cut(stream, pending, b"".join(payloads), lines)

    def _not_sent_ahead(self, stream: int, lines: list[str]) -> list[str]:
        """``lines`` less those the first read already sent out of place (matched in order; a line
        the first read sent cut never matches, so a few are looked ahead)."""
        ahead = self._sent_ahead[stream]
        kept: list[str] = []
        for index, line in enumerate(lines):
            if not ahead:
                kept.extend(lines[index:])
                break
            for position in range(min(len(ahead), _LOOK_AHEAD)):
                if ahead[position] == line:
                    for _ in range(position + 1):
                        ahead.popleft()
                    break
            else:
                kept.append(line)
        if not ahead:
            del self._sent_ahead[stream]
        return kept

    def _cut(self, stream: int, pending: bytearray, payload: bytes, lines: list[str]) -> None:
        pending += payload
        cut = pending.rfind(b"\n")
        if cut >= 0:
            # One decode for all lines: a line feed never belongs to a broken UTF-8 sequence, so
            # this replaces exactly what decoding line by line would.
            complete = pending[:cut].decode("utf-8", errors="replace").split("\n")
            del pending[: cut + 1]
            if stream in self._sent_ahead:
                complete = self._not_sent_ahead(stream, complete)
            lines.extend(complete)
        if len(pending) > self._limit:
            pending.clear()
            self._closed.add(stream)
            lines.append(OVERSIZED_LINE_NOTICE)


def timestamp_ns(stamp: bytes) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time as Podman writes it (fraction optional)."""
    text = stamp.decode("ascii", errors="replace")
    try:
        whole, _, rest = text.partition(".")
        if rest:
            digits = len(rest) - len(rest.lstrip("0123456789"))
            fraction, zone = rest[:digits], rest[digits:]
        else:
            fraction, zone = "", whole[19:]
            whole = whole[:19]
        moment = datetime.datetime.fromisoformat(whole + (zone.replace("Z", "+00:00") or "+00:00"))
    except ValueError:
        return 0
    return int(moment.timestamp()) * 1_000_000_000 + int((fraction + "000000000")[:9])


def _since_text(ns: int) -> str:
    """An RFC 3339 time with nanoseconds, in UTC, that Podman's ``since`` accepts."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:09d}Z"


def _decode(data: bytes | bytearray) -> str:
    return bytes(data).decode("utf-8", errors="replace")


class ChunkedBody:
    """An HTTP/1.1 chunked body taken apart (pure): raw bytes of the connection in, the payload out.

    Podman flushes every log record as a chunk of its own; taking them apart here, from
    large reads of the socket, replaces one pass through the HTTP library per record.
    Trailers after the last chunk are not read: the response is closed after it.
    """

    def __init__(self) -> None:
        self._rest = b""
        self._left = 0  # payload bytes of the current chunk still to come
        self._crlf = 0  # bytes of the line break after the current chunk still to come
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        """The payload that ``data`` (the next bytes read) completes; raises ValueError on a broken body."""
        buf = self._rest + data if self._rest else data
        out: list[bytes] = []
        pos, end = 0, len(buf)
        while pos < end and not self.finished:
            if self._left:
                take = min(self._left, end - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self._left -= take
                continue
            if self._crlf:
                skip = min(self._crlf, end - pos)
                pos += skip
                self._crlf -= skip
                continue
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if end - pos > 1024:
                    raise ValueError("a chunk header of the log response has no end")
                break
            try:
                size = int(buf[pos:eol].partition(b";")[0], 16)
            except ValueError:
                header = bytes(buf[pos:eol][:40])
                raise ValueError(f"bad chunk header {header!r} in the log response") from None
            pos = eol + 2
            if size == 0:
                self.finished = True
                break
            self._left, self._crlf = size, 2
        self._rest = buf[pos:] if not self.finished else b""
        return b"".join(out)


def _body(response: object) -> Iterator[bytes]:
    """The body of a streaming response in the blocks the socket delivers (at most READ_BYTES).

    A chunked response is read straight from the connection's buffered socket file and taken
    apart by :class:`ChunkedBody`; any other falls back to the HTTP library's own reading.
    """
    http = getattr(getattr(response, "raw", None), "_fp", None)
    read1 = getattr(getattr(http, "fp", None), "read1", None)
    if not getattr(http, "chunked", False) or getattr(http, "chunk_left", None) is not None or read1 is None:
        yield from response.iter_content(chunk_size=None)  # type: ignore[attr-defined]
        return
    body = ChunkedBody()
    while not body.finished:
        data = read1(READ_BYTES)
        if not data:
            raise ConnectionError("Podman closed the log response before its end")
        payload = body.feed(data)
        if payload:
            yield payload


class LineChannel:
    """Lines from reader threads to one consumer on the event loop, holding at most ``capacity`` bytes.

    Producers block in :meth:`put` while the channel is full (one batch larger
    than the whole capacity is let through on its own, so nothing is stuck).
    The consumer is woken through ``call_soon_threadsafe`` only when the
    channel turns non-empty, so a fast log costs the loop one callback per
    take, not one per line.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, producers: int, capacity: int) -> None:
        self._loop = loop
        self._cond = threading.Condition()
        self._lines: list[str] = []
        self._bytes = 0
        self._capacity = capacity
        self._producers = producers
        self._errors: list[str] = []
        self._closed = False
        self._ready = asyncio.Event()

    # --- producer side (reader threads) ---------------------------------------------

    def put(self, lines: Sequence[str]) -> bool:
        """Queue ``lines``; False when the consumer has gone and the reader should stop."""
        size = sum(len(line) for line in lines) + len(lines)
        with self._cond:
            while not self._closed and self._bytes > 0 and self._bytes + size > self._capacity:
                self._cond.wait()
            if self._closed:
                return False
            was_empty = not self._lines
            self._lines.extend(lines)
            self._bytes += size
        if was_empty:
            self._wake()
        return True

    def done(self, error: str | None = None) -> None:
        """One producer has finished (``error``: why it could not read)."""
        with self._cond:
            self._producers -= 1
            if error is not None:
                self._errors.append(error)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # loop already closed at shutdown
            self._loop.call_soon_threadsafe(self._ready.set)

    # --- consumer side (event loop) ---------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    async def take(self, max_bytes: int = DEFAULT_TAKE_BYTES, linger: float = 0.0) -> tuple[LogBatch, bool]:
        """Wait for lines; return those queued first (about ``max_bytes`` of them, at least one)
        and whether every producer has finished and nothing is left.

        ``linger``: when the channel was empty, wait this long after the first lines arrive
        (unless ``max_bytes`` or the end are there sooner) so that more of them come in one batch.
        """
        waited = False
        while True:
            if waited and linger > 0:
                waited = False
                with self._cond:
                    gather = self._bytes < max_bytes and self._producers > 0
                if gather:
                    await asyncio.sleep(linger)
            with self._cond:
                count = size = 0
                for line in self._lines:
                    if count and size + len(line) + 1 > max_bytes:
                        break
                    size += len(line) + 1
                    count += 1
                lines = self._lines[:count]
                del self._lines[:count]
                self._bytes -= size
                finished = self._producers <= 0 and not self._lines
                if not self._lines:
                    self._ready.clear()
                if lines:
                    self._cond.notify_all()
            if lines or finished:
                return tuple(lines), finished
            await self._ready.wait()
            waited = True

    def errors(self) -> list[str]:
        with self._cond:
            return list(self._errors)

    def close(self) -> None:
        """The consumer stops: release blocked producers (they see ``put`` return False)."""
        with self._cond:
            self._closed = True
            self._lines = []
            self._bytes = 0
            self._cond.notify_all()


@dataclass
class _Reader:
    """One container's log, read in its own thread into a shared channel."""

    connection: PodmanConnection
    container_id: str
    params: dict[str, str]
    channel: LineChannel
    label: str
    stop: threading.Event
    _sock: socket.socket | None = None

    def run(self) -> None:
        error: str | None = None
        client = self.connection.stream_client()
        splitter = LineSplitter(timestamps=True)
        try:
            error = self._read(client, self.params, splitter)
            if error is None and self.params.get("follow") and not self.stop.is_set():
                # Podman 4.3 ends a follow as soon as the container has stopped, before it has
                # sent the last records of the file; a plain read from the last record on
                # delivers the rest. A container removed meanwhile has no rest to read.
                catch_up = {k: v for k, v in self.params.items() if k not in ("follow", "tail")}
                if splitter.resume_time:
                    catch_up["since"] = _since_text(timestamp_ns(splitter.resume_time) - 1_000)
                elif "tail" in self.params:
                    catch_up["tail"] = self.params["tail"]
                logger.debug(
                    "log of %s: follow ended after %s; reading the rest with %s",
                    self.label,
                    splitter.resume_time.decode(errors="replace"),
                    catch_up,
                )
                splitter.resume()
                if self._read(client, catch_up, splitter) is not None:
                    logger.debug("log of %s: nothing more after the follow ended", self.label)
                elif splitter.diverged:
                    logger.debug(
                        "log of %s: Podman's follow had skipped part of the log; delivered it from the "
                        "second read",
                        self.label,
                    )
            rest = splitter.finish()
            if rest and not self.stop.is_set():
                self.channel.put(rest)
        except Exception as exc:
            if not self.stop.is_set():
                translated = translate("read a log", exc)
                error = translated.reason if translated is not None else str(exc)
        finally:
            with contextlib.suppress(Exception):
                client.close()  # type: ignore[no-untyped-call]
            self.channel.done(error)

    def _read(self, client: PodmanClient, params: dict[str, str], splitter: LineSplitter) -> str | None:
        """One logs response into the channel; Podman's refusal text, or None."""
        response = client.api.get(
            f"/containers/{self.container_id}/logs", params={**params, "timestamps": "true"}, stream=True
        )
        try:
            if response.status_code >= 400:
                return _refusal(response)
            self._sock = _socket_of(response)
            if self.stop.is_set():
                return None
            for chunk in _body(response):
                lines = splitter.feed(chunk)
                if lines and not self.channel.put(lines):
                    return None
                if self.stop.is_set():
                    return None
            return None
        finally:
            self._sock = None
            response.close()

    def interrupt(self) -> None:
        """Unblock a read in progress (called from the loop thread)."""
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _refusal(response: object) -> str:
    text = ""
    with contextlib.suppress(Exception):
        body = response.json()  # type: ignore[attr-defined]
        if isinstance(body, dict):
            text = str(body.get("message") or body.get("cause") or "")
    status = getattr(response, "status_code", "?")
    return text or f"Podman answered HTTP {status}"


def _socket_of(response: object) -> socket.socket | None:
    """The socket under a streaming requests response (urllib3 2.x), to interrupt blocking reads."""
    raw = getattr(response, "raw", None)
    connection = getattr(raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


async def read_logs(
    connection: PodmanConnection,
    instance: InstanceName,
    container_ids: Sequence[str],
    options: LogOptions,
    *,
    buffer_bytes: int = DEFAULT_BUFFER_BYTES,
    linger: float = DEFAULT_LINGER_S,
) -> AsyncGenerator[LogBatch, None]:
    """Batches of lines of the containers' logs, merged, until every one has ended.

    Raises RuntimeLogsFailed (after yielding what was read) when no container
    log could be read at all; a failure of some of several containers is logged.
    """
    channel = LineChannel(asyncio.get_running_loop(), len(container_ids), buffer_bytes)
    stop = threading.Event()
    params = rest_params(options)
    readers = [
        _Reader(connection, cid, params, channel, f"{instance.workload}/{cid[:12]}", stop)
        for cid in container_ids
    ]
    threads = [threading.Thread(target=r.run, name=f"ank-logs-{r.label}", daemon=True) for r in readers]
    for thread in threads:
        thread.start()
    try:
        finished = not readers
        while not finished:
            batch, finished = await channel.take(linger=linger)
            if batch:
                yield batch
        errors = channel.errors()
        if errors and len(errors) == len(readers):
            raise RuntimeLogsFailed(instance, "; ".join(errors))
        for error in errors:
            logger.warning("workload %s: one container's log could not be read: %s", instance, error)
    finally:
        stop.set()
        channel.close()
        for reader in readers:
            reader.interrupt()


__all__ = [
    "DEFAULT_BUFFER_BYTES",
    "DEFAULT_LINGER_S",
    "OVERSIZED_LINE_NOTICE",
    "READ_BYTES",
    "UNTERMINATED_LIMIT",
    "ChunkedBody",
    "LineChannel",
    "LineSplitter",
    "read_logs",
    "rest_params",
]
