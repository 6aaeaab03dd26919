"""The one gRPC stream to the Ankaios server.

One *session* = one channel + one ``ConnectAgent`` call of one wire dialect:

1. open a fresh channel (:func:`open_channel`: plain HTTP/2, or mutual TLS when
   the settings carry certificates, made by the loop's
   :class:`~agent.tls_bridge.TlsBridge` so that Ed25519 keys work; a local
   subchannel pool, so no back-off state of a dead server is inherited) and the
   bidirectional call;
2. write the dialect's ``AgentHello`` -- always the first message of every session;
3. wait until the server has accepted the call (its response headers), log
   "connected" with the dialect and await ``on_connected(dialect)`` *before*
   reading anything, so the manager's hook and its message handler never run
   at the same time;
4. run two tasks: the reader awaits ``handler`` for each FromServer in arrival
   order; the writer drains the :class:`~agent.outbox.Outbox` (peek, write,
   confirm: see that module for the delivery guarantee). A broken stream never
   cancels a handler call in progress: the reader stops at its next read, so
   the manager is only ever interrupted by shutdown (cancelling ``run``).

Probing: the dialects to try come in order (``agent.dialects``; the v1.0.1
path first when both are allowed). A server that does not know a dialect's
method answers UNIMPLEMENTED, and the next dialect is tried on a fresh call
over the same channel, on every (re)connect, so a server swapped for another
version is found again. A v1.0.1 server that refuses our protocol version
(FAILED_PRECONDITION, naming the version it supports) is a condition, not a
crash: it is logged once, and the agent retries after ``version_refused_backoff``,
so an upgraded server is picked up without restarting the agent.

A session ends when the stream ends (cleanly or with an error), and
``on_session_ended(clean)`` tells the manager which: a server that closed the
stream cleanly keeps its log collections (their messages wait in the outbox),
a stream that broke takes the server's campaigns with it (their queued
answers are dropped from the outbox). ``run`` then
reconnects forever with exponential back-off and jitter (tenacity): the first
retry comes within ~100 ms, the delay is capped at ``max_backoff``. A session
that stayed up for ``stable_after`` resets the back-off. Connection-state
changes are logged once each (connected / lost / unreachable), not per retry.

Message size: the server sends big states in one message (v0.3.1: the whole
cluster state, in the answer to the agent's own state request after each hello;
v1.0.1: every workload of the agent with its files, in the ServerHello), which
grows with the cluster and passes gRPC's default 4 MiB receive limit on a big one. The agent
accepts up to ``max_receive_bytes`` (256 MiB by default). A stream that still
breaks with RESOURCE_EXHAUSTED (a bigger message, or a server out of resources)
would break again at once, so it is logged as such and retried only after
``too_large_backoff`` instead of flapping every second.

Cancelling ``run`` cancels the call and closes the channel: the server sees a
stream error (RST_STREAM) and marks our workloads AgentDisconnected, exactly as
for a killed agent. We never half-close the request stream and never send
Goodbye: a server keeps such an agent listed as connected.

gRPC keepalive pings (``keepalive_time`` + ``keepalive_timeout``, 30 s by
default) make a silently dead server (half-open TCP) fail the call within 60 s.

Errors from grpc are translated at this edge, by ``agent.call_outcomes``, into
:class:`~agent.errors.ServerUnavailable` and its kinds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
import tenacity

from ankaios_agent.agent import dialects
from ankaios_agent.agent.call_outcomes import (
    HELLO_ATTEMPTS,
    Call,
    DialectUnknown,
    HelloCut,
    MessageTooLarge,
    StreamClosed,
    VersionRefused,
    grpc_errors,
    write_hello,
)
from ankaios_agent.agent.dialects import WireCodec, WireDialect
from ankaios_agent.agent.errors import ConversionError, ServerUnavailable
from ankaios_agent.agent.lifecycle_rules import Dialect
from ankaios_agent.agent.model import (
    REQUEST_ID_SEPARATOR,
    AgentHello,
    FromServerMessageV1,
    Request,
    ToServerMessageV1,
)
from ankaios_agent.agent.outbox import Outbox
from ankaios_agent.agent.tls import TlsMaterial
from ankaios_agent.agent.wire_format import serialized

if TYPE_CHECKING:
    from ankaios_agent.agent.tls_bridge import TlsBridge

logger = logging.getLogger(__name__)

CONNECT_AGENT = dialects.V0_3.method
SERVER_MESSAGE_LIMIT = 4 * 1024 * 1024
"""The largest message either Ankaios server decodes (its gRPC default); a larger one ends the stream."""

# Over TLS the reason may only say that the connection closed: say what else to check.
_TLS_HINT = (
    "; over TLS also check that the server certificate is signed by the configured CA, names "
    "ank-server and is valid now, and that the server trusts the agent's certificate"
)

Handler = Callable[[FromServerMessageV1], Awaitable[None]]
OnConnected = Callable[[Dialect], Awaitable[None]]
OnSessionEnded = Callable[[bool], Awaitable[None]]
"""Called with True when the server closed the stream cleanly, False when it broke."""


@dataclass(frozen=True)
class ConnectionTimings:
    """Tunables of the server connection (seconds unless the name says ms)."""

    first_retry: float = 0.05  # first back-off step; plus up to `jitter` -> within 100 ms
    jitter: float = 0.05
    # 1 s: the agent is connected again within about a second of the server being back,
    # and a reference agent also retries every second.
    max_backoff: float = 1.0
    stable_after: float = 1.0  # a session up this long resets the back-off
    connect_timeout: float = 10.0  # dial + hello + response headers
    keepalive_time_ms: int = 20_000
    keepalive_timeout_ms: int = 10_000
    # Far above the complete state of any real cluster (tens of thousands of workloads with
    # their runtimeConfig stay below 100 MiB), still a bound on what one message may take.
    max_receive_bytes: int = 256 * 1024 * 1024
    # A message too large now is too large on the next attempt too: wait long, don't flap.
    too_large_backoff: float = 30.0
    # A server that refuses our protocol version does so again until it is upgraded: ask seldom.
    version_refused_backoff: float = 5.0

    def channel_options(self) -> list[tuple[str, Any]]:
        return [
            ("grpc.keepalive_time_ms", self.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", self.keepalive_timeout_ms),
            # Recent gRPC cores time keepalive pings out with the generic ping timeout
            # (default 60 s) rather than keepalive_timeout_ms: set both.
            ("grpc.http2.ping_timeout_ms", self.keepalive_timeout_ms),
            # Ping an idle stream too: the agent's stream is idle most of the time.
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            # A fresh channel per session must not inherit a pooled subchannel in back-off.
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", int(self.max_backoff * 1000)),
            ("grpc.enable_retries", 0),
            ("grpc.max_receive_message_length", self.max_receive_bytes),
        ]


def open_channel(
    address: str, timings: ConnectionTimings, bridge: TlsBridge | None = None
) -> grpc.aio.Channel:
    """A new channel: plain HTTP/2 to ``address``, or through ``bridge``, which adds mutual TLS."""
    options = timings.channel_options()
    if bridge is None:
        return grpc.aio.insecure_channel(address, options=options)
    # The server sees the authority and scheme of an https request to its URL, not the socket's.
    options += [("grpc.default_authority", address), ("grpc.http2_scheme", "https")]
    return grpc.aio.insecure_channel(bridge.target, options=options)


class _StableSessionEnded(Exception):
    """A session that was up long enough ended: reconnect with a fresh back-off."""

    def __init__(self, cause: ServerUnavailable) -> None:
        super().__init__(str(cause))
        self.cause = cause


class ServerConnection:
    def __init__(  # noqa: PLR0917 (every caller passes these positionally)
        self,
        address: str,
        agent_name: str,
        outbox: Outbox,
        handler: Handler,
        on_connected: OnConnected,
        timings: ConnectionTimings = ConnectionTimings(),
        *,
        tls: TlsMaterial | None = None,
        dialects: Sequence[WireDialect] = (dialects.V0_3,),
        tags: Mapping[str, str] | None = None,
        on_session_ended: OnSessionEnded | None = None,
    ) -> None:
        if not dialects:
            raise ValueError("at least one dialect is needed")
        self._address = address
        self._agent_name = agent_name
        self._outbox = outbox
        self._handler = handler
        self._on_connected = on_connected
        self._on_session_ended = on_session_ended
        self._timings = timings
        self._tls = tls
        self._dialects = tuple(dialects)
        self._hello = AgentHello(agent_name, tags or {})
        self._bridge: TlsBridge | None = None  # open while run() runs, when tls is set
        self._connected = False
        self._unreachable_logged = False
        self._refusal_logged: str | None = None
        self._sessions = 0
        self._dialect: WireDialect | None = None  # of the latest connected session

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def sessions(self) -> int:
        """How many sessions got connected so far (for health and tests)."""
        return self._sessions

    @property
    def dialect(self) -> Dialect | None:
        """The dialect of the latest connected session; None before the first one."""
        return None if self._dialect is None else self._dialect.dialect

    async def run(self) -> None:
        """Keep a session up until cancelled. Never returns; never raises except CancelledError
        (and OSError when the TLS bridge's private folder or socket cannot be made)."""
        async with self._transport():
            await self._keep_session_up()

    @contextlib.asynccontextmanager
    async def _transport(self) -> AsyncIterator[None]:
        """The TLS bridge every session's channel goes through, for as long as the loop runs."""
        if self._tls is None:
            yield
            return
        from ankaios_agent.agent.tls_bridge import TlsBridge  # noqa: PLC0415 (only with TLS)

        timeout = self._timings.connect_timeout
        async with TlsBridge(self._address, self._tls, connect_timeout=timeout) as bridge:
            self._bridge = bridge
            try:
                yield
            finally:
                self._bridge = None

    async def _keep_session_up(self) -> None:
        t = self._timings
        while True:
            retrying = tenacity.AsyncRetrying(
                retry=tenacity.retry_if_exception_type(ServerUnavailable),
                wait=_wait_for(t),
                stop=tenacity.stop_never,
                before_sleep=self._log_retry,
                reraise=True,
            )
            with contextlib.suppress(_StableSessionEnded):
                await retrying(self._session)

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        err = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        reason = getattr(err, "reason", err)
        if self._bridge is not None and self._bridge.last_failure is not None:
            reason = str(self._bridge.last_failure)  # what TLS said, not gRPC's "socket closed"
        if isinstance(err, VersionRefused):
            self._log_refusal(err, delay)
        elif not self._unreachable_logged:
            self._unreachable_logged = True
            logger.warning(
                "server %s is not reachable (%s); retrying with back-off up to %.1f s%s",
                self._address,
                reason,
                self._timings.max_backoff,
                "" if self._tls is None else _TLS_HINT,
            )
        else:
            logger.debug("retry %d in %.2f s: %s", state.attempt_number, delay, err)

    def _log_refusal(self, err: VersionRefused, delay: float) -> None:
        """Once per refusal text: the agent keeps running and picks up an upgraded server."""
        if self._refusal_logged == err.reason:
            logger.debug("the server still refuses our protocol version; retrying in %.1f s", delay)
            return
        self._refusal_logged = err.reason
        logger.error(
            "server %s refuses this agent's Ankaios protocol version %s: it supports version %r (%s); "
            "the agent keeps running and retries every %.0f s, so an upgraded server is picked up",
            self._address,
            Dialect.V1.value,
            err.server_version,
            err.reason,
            self._timings.version_refused_backoff,
        )

    async def _session(self) -> None:
        """One channel + call; always ends by raising ServerUnavailable or _StableSessionEnded."""
        assert self._tls is None or self._bridge is not None, "TLS sessions run inside run()"
        channel = open_channel(self._address, self._timings, self._bridge)
        call: Call | None = None
        try:
            call, dialect, first = await self._open_call(channel)
            connected_at = time.monotonic()
            self._mark_connected(dialect)
            await self._run_hook(dialect)
            cause = await self._exchange(call, dialect.codec(), first)
            self._mark_lost(cause)
            clean = isinstance(cause, StreamClosed)
            if not clean and (dropped := self._outbox.discard_logs()):
                logger.info("dropped %d queued log messages: the server forgot their requests", dropped)
            await self._run_end_hook(clean=clean)
            if isinstance(cause, MessageTooLarge):
                raise cause  # never resets the back-off: the same message comes again
            if time.monotonic() - connected_at >= self._timings.stable_after:
                raise _StableSessionEnded(cause)
            raise cause
        finally:
            self._connected = False
            if call is not None:
                call.cancel()
            # grace=None cancels what is left at once: the server sees a stream error.
            await channel.close(grace=None)

    async def _open_call(self, channel: grpc.aio.Channel) -> tuple[Call, WireDialect, Any]:
        """The first dialect whose call the server accepts, with the server's first message if the
        dialect waits for it; raises ServerUnavailable when the server takes none.

        A server that does not know a method answers UNIMPLEMENTED without response headers, but
        grpc.aio may report the call as connected before it reports that status. A dialect whose
        server always speaks first (v1.0.1: its ServerHello) is therefore accepted only with that
        first message in hand; for the last dialect tried a late status just ends the session.
        """
        for position, dialect in enumerate(self._dialects, start=1):
            codec = dialect.codec()
            hello = serialized(codec.hello(self._hello))
            try:
                call, first = await self._call_with_hello(channel, dialect, codec, hello)
            except DialectUnknown as err:
                if position == len(self._dialects):
                    tried = ", ".join(d.label for d in self._dialects)
                    raise ServerUnavailable(
                        self._address, f"the server speaks none of: {tried} ({err.reason})"
                    ) from err
                logger.debug("server %s does not know the %s (%s)", self._address, dialect.label, err.reason)
                continue
            return call, dialect, first
        raise AssertionError("unreachable: the loop returns or raises")

    async def _call_with_hello(
        self, channel: grpc.aio.Channel, dialect: WireDialect, codec: WireCodec, hello: bytes
    ) -> tuple[Call, Any]:
        """One dialect's call with its hello written (and the server's first message, if it speaks
        first); a hello cut off in gRPC's core is written again on a fresh call."""
        for attempt in range(1, HELLO_ATTEMPTS + 1):
            logger.debug("trying the %s with server %s", dialect.label, self._address)
            # Requests go out as bytes serialized by the writer itself, which sees their size.
            call: Call = channel.stream_stream(dialect.method, response_deserializer=codec.deserialize)()
            try:
                with grpc_errors(self._address):
                    async with asyncio.timeout(self._timings.connect_timeout):
                        await write_hello(call, hello)
                        await call.wait_for_connection()
                        first = await call.read() if dialect.server_speaks_first else None
                if first is grpc.aio.EOF:
                    raise ServerUnavailable(self._address, "the server closed the stream after the hello")
            except HelloCut as err:
                call.cancel()
                if attempt == HELLO_ATTEMPTS:
                    raise ServerUnavailable(self._address, f"{err} ({attempt} times)") from None
                logger.debug("server %s: %s; writing it again on a fresh call", self._address, err)
                continue
            except BaseException:
                call.cancel()
                raise
            return call, first
        raise AssertionError("unreachable: the loop returns or raises")

    async def _exchange(self, call: Call, codec: WireCodec, first: Any) -> ServerUnavailable:
        """Run reader and writer until the stream ends; return why it ended."""
        writer = asyncio.create_task(self._write_outbox(call, codec), name="connection-writer")
        reader = asyncio.create_task(self._read_stream(call, codec, first), name="connection-reader")
        try:
            await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
            if not reader.done():
                # The writer failed. Break the call so the reader stops at its next read,
                # but never cancel the reader itself: that would interrupt the manager in
                # the middle of handling a message.
                call.cancel()
                await asyncio.wait({reader})
            return (
                _failure(writer, self._address)
                or _failure(reader, self._address)
                or StreamClosed(self._address, "the server closed the stream")
            )
        finally:
            # Reached with both still running only when run() itself is cancelled (shutdown).
            # The writer may be cancelled mid-write: its message stays in the outbox.
            for task in (writer, reader):
                task.cancel()
            await asyncio.gather(writer, reader, return_exceptions=True)

    def _mark_connected(self, dialect: WireDialect) -> None:
        self._connected = True
        self._sessions += 1
        self._unreachable_logged = False
        self._refusal_logged = None
        previous, self._dialect = self._dialect, dialect
        logger.info("connected to server %s as agent %r (%s)", self._address, self._agent_name, dialect.label)
        if previous is not None and previous is not dialect:
            logger.info(
                "server %s now speaks the %s instead of the %s; running workloads are adopted, not restarted",
                self._address,
                dialect.label,
                previous.label,
            )

    def _mark_lost(self, cause: ServerUnavailable) -> None:
        # Logged once here; the retries that follow log only at debug level.
        self._unreachable_logged = True
        if isinstance(cause, MessageTooLarge):
            logger.error(
                "connection to server %s broke on a message too large (%s; this agent accepts up to "
                "%d MiB); the same message would come again, so retrying in %.0f s",
                self._address,
                cause.reason,
                self._timings.max_receive_bytes // (1024 * 1024),
                self._timings.too_large_backoff,
            )
            return
        logger.warning("connection to server %s lost (%s); reconnecting", self._address, cause.reason)

    async def _run_hook(self, dialect: WireDialect) -> None:
        try:
            await self._on_connected(dialect.dialect)
        except Exception:
            # A bug in the hook must not take the connection down; the next session retries it.
            logger.exception("the on-connected hook failed; continuing with the connection")

    async def _run_end_hook(self, *, clean: bool) -> None:
        if self._on_session_ended is None:
            return
        try:
            await self._on_session_ended(clean)
        except Exception:
            logger.exception("the session-ended hook failed; reconnecting anyway")

    async def _read_stream(self, call: Call, codec: WireCodec, first: Any) -> None:
        """Hand every message to the handler in order, ``first`` (already read, if any) first."""
        with grpc_errors(self._address):
            wire = first
            while True:
                if wire is None:
                    wire = await call.read()
                if wire is grpc.aio.EOF:
                    return
                received, wire = wire, None
                msg = codec.from_server(received, self._agent_name)
                if msg is None:
                    continue
                try:
                    await self._handler(msg)
                except Exception:
                    # One message must never kill the agent; log and go on.
                    logger.exception("handling %s from the server failed", type(msg).__name__)

    async def _write_outbox(self, call: Call, codec: WireCodec) -> None:
        with grpc_errors(self._address):
            while True:
                msg = await self._outbox.peek()
                try:
                    wire = codec.to_server(msg)
                except ConversionError as err:
                    logger.warning("dropping a message for the server that cannot be encoded: %s", err)
                    self._outbox.confirm(msg)
                    continue
                if wire is None:  # no meaning in this dialect; the codec said so at debug level
                    self._outbox.confirm(msg)
                    continue
                data = serialized(wire)
                if len(data) > SERVER_MESSAGE_LIMIT:
                    # Sent, it would end the session of every workload here, and again after
                    # each reconnect if it were kept: this one message is dropped instead.
                    logger.warning(
                        "not sending %s to the server: it is %d bytes and the server ends the "
                        "connection on any message over %d bytes",
                        _describe(msg),
                        len(data),
                        SERVER_MESSAGE_LIMIT,
                    )
                    self._outbox.confirm(msg)
                    continue
                await call.write(data)
                self._outbox.confirm(msg)


def _describe(msg: ToServerMessageV1) -> str:
    """The message as a person on the device can find it: a workload's request names the workload."""
    if isinstance(msg, Request):
        workload, _, request_id = msg.request_id.partition(REQUEST_ID_SEPARATOR)
        return f"the control-interface request {request_id!r} of workload {workload!r}"
    kind = type(msg).__name__
    return f"{'an' if kind[0] in 'AEIOU' else 'a'} {kind} message"


def _wait_for(timings: ConnectionTimings) -> Callable[[tenacity.RetryCallState], float]:
    """Back-off: exponential with jitter up to ``max_backoff``; a too large message waits longer."""
    exponential = tenacity.wait_exponential_jitter(
        multiplier=timings.first_retry, max=timings.max_backoff, jitter=timings.jitter
    )

    def wait(state: tenacity.RetryCallState) -> float:
        err = state.outcome.exception() if state.outcome is not None else None
        if isinstance(err, MessageTooLarge):
            return timings.too_large_backoff
        if isinstance(err, VersionRefused):
            return timings.version_refused_backoff
        return exponential(state)

    return wait


def _failure(task: asyncio.Task[None], address: str) -> ServerUnavailable | None:
    """Why a finished reader/writer task ended (None: it returned normally or was cancelled).

    An unexpected exception is a bug, but it must not end the agent: it is logged
    with its traceback and treated as a lost stream, so the back-off applies.
    """
    if not task.done() or task.cancelled():
        return None
    err = task.exception()
    if err is None or isinstance(err, ServerUnavailable):
        return err
    logger.error("%s failed unexpectedly; reconnecting", task.get_name(), exc_info=err)
    return ServerUnavailable(address, f"internal error in {task.get_name()}: {err!r}")
