"""The hello against a server that ends the call at once (UNIMPLEMENTED before any message).

On a busy machine the agent's hello is written after such a server's answer, or while
it arrives; either way the probe must see the server's status, not an error of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio
import pytest

from ankaios_agent.agent import dialects
from ankaios_agent.agent.call_outcomes import DialectUnknown, grpc_errors, write_hello
from ankaios_agent.agent.connection import ConnectionTimings, ServerConnection
from ankaios_agent.agent.errors import ServerUnavailable
from ankaios_agent.agent.outbox import Outbox


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A gRPC server without any method: every call ends with UNIMPLEMENTED at once."""
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)


async def test_a_hello_written_after_the_servers_answer_raises_that_answer(silent_server: str) -> None:
    async with grpc.aio.insecure_channel(silent_server) as channel:
        await channel.channel_ready()
        call = channel.stream_stream("/grpc_api.AgentConnection/ConnectAgent")()
        for _ in range(500):  # the server's status arrives before anything is written
            if call.done():
                break
            await asyncio.sleep(0.002)
        assert call.done()
        with pytest.raises(DialectUnknown, match="UNIMPLEMENTED"), grpc_errors(silent_server):
            await write_hello(call, b"hello")


class _Call:
    """Just enough of a stream call for the probe: its write may fail as gRPC's core fails it."""

    def __init__(self, write_error: BaseException | None) -> None:
        self._write_error = write_error
        self.cancelled = False

    async def write(self, _data: bytes) -> None:
        if self._write_error is not None:
            raise self._write_error

    async def wait_for_connection(self) -> None:
        return None

    async def read(self) -> Any:
        return "server hello"

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class _Channel:
    def __init__(self, calls: list[_Call]) -> None:
        self.calls = calls
        self.made: list[_Call] = []

    def stream_stream(self, _method: str, **_kwargs: Any) -> Callable[[], _Call]:
        def start() -> _Call:
            call = self.calls.pop(0)
            self.made.append(call)
            return call

        return start


def _cut() -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(grpc.StatusCode.INTERNAL, details="Internal error from Core")


def _connection() -> ServerConnection:
    async def ignore(*_args: Any) -> None:
        return None

    return ServerConnection("127.0.0.1:1", "agent_A", Outbox(), ignore, ignore, ConnectionTimings())


async def test_a_hello_cut_in_grpcs_core_is_written_again_on_a_fresh_call() -> None:
    channel = _Channel([_Call(_cut()), _Call(None)])
    codec = dialects.V1.codec()
    call, first = await _connection()._call_with_hello(channel, dialects.V1, codec, b"hello")
    assert first == "server hello"
    assert call is channel.made[1]
    assert channel.made[0].cancelled and not channel.made[1].cancelled


async def test_a_hello_cut_every_time_is_a_server_unavailable_not_a_crash() -> None:
    channel = _Channel([_Call(_cut()) for _ in range(3)])
    with pytest.raises(ServerUnavailable, match="while the hello was being written"):
        await _connection()._call_with_hello(channel, dialects.V1, dialects.V1.codec(), b"hello")
    assert len(channel.made) == 3 and all(call.cancelled for call in channel.made)


async def test_another_internal_error_is_not_taken_for_a_cut_hello() -> None:
    other = grpc.aio.AioRpcError(grpc.StatusCode.INTERNAL, details="stream terminated by RST_STREAM")
    channel = _Channel([_Call(other), _Call(None)])
    with pytest.raises(ServerUnavailable, match="RST_STREAM"):
        await _connection()._call_with_hello(channel, dialects.V1, dialects.V1.codec(), b"hello")
    assert len(channel.made) == 1
