"""A silently dead server (half-open TCP) is detected by gRPC keepalive."""

from __future__ import annotations

import asyncio
import contextlib
import time

from ankaios_agent.agent.connection import ConnectionTimings, ServerConnection
from ankaios_agent.agent.outbox import Outbox
from tests.integration.conftest import RecordingHandler
from tests.server_double import ServerDouble


class FreezableProxy:
    """TCP proxy on loopback that can stop relaying without closing anything (a half-open peer)."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self.frozen = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        self._writers += [writer, up_writer]
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                if self.frozen.is_set():
                    await asyncio.Event().wait()  # swallow everything from now on, keep sockets open
                dst.write(data)
                await dst.drain()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()


def test_default_keepalive_detects_a_dead_peer_within_60_s() -> None:
    """Ping interval + ping timeout stay under 60 s, and idle streams are pinged."""
    timings = ConnectionTimings()
    assert timings.keepalive_time_ms + timings.keepalive_timeout_ms <= 60_000
    options = dict(timings.channel_options())
    assert options["grpc.http2.ping_timeout_ms"] == timings.keepalive_timeout_ms  # else 60 s in gRPC core
    assert options["grpc.keepalive_permit_without_calls"] == 1
    assert options["grpc.http2.max_pings_without_data"] == 0


async def test_frozen_connection_is_detected_and_replaced(agent_name: str) -> None:
    """With short keepalive timings, a peer that stops answering ends the session; the agent reconnects."""
    server = ServerDouble()
    await server.start()
    proxy = FreezableProxy(server.port)
    port = await proxy.start()
    recorder = RecordingHandler()
    timings = ConnectionTimings(keepalive_time_ms=1000, keepalive_timeout_ms=1000)
    connection = ServerConnection(
        f"127.0.0.1:{port}", agent_name, Outbox(), recorder.handle, recorder.on_connected, timings
    )
    task = asyncio.create_task(connection.run())
    try:
        await recorder.wait_until(lambda: recorder.connected_calls == 1)
        proxy.frozen.set()
        frozen_at = time.monotonic()
        async with asyncio.timeout(30):
            while connection.connected:  # noqa: ASYNC110 (poll: the connection has no state event)
                await asyncio.sleep(0.05)
        print(f"\nhalf-open connection detected after {time.monotonic() - frozen_at:.2f} s")
        proxy.frozen.clear()  # new connections relay again
        await recorder.wait_until(lambda: recorder.connected_calls == 2, within=10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await proxy.close()
        await server.stop()
