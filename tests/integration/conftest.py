"""Fixtures for integration tests against the server double over loopback gRPC."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from agent.model import FromServerMessage
from tests.server_double import ServerDouble


class RecordingHandler:
    """Records what the connection hands over, in order, and counts on_connected calls."""

    def __init__(self) -> None:
        self.messages: list[FromServerMessage] = []
        self.connected_calls = 0
        self.events: list[str] = []
        self._changed = asyncio.Event()

    async def handle(self, msg: FromServerMessage) -> None:
        self.messages.append(msg)
        self.events.append(type(msg).__name__)
        self._wake()

    async def on_connected(self) -> None:
        self.connected_calls += 1
        self.events.append("on_connected")
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: object, timeout: float = 5.0) -> None:
        assert callable(predicate)
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()


@pytest.fixture
def agent_name() -> str:
    return f"agent_{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def server() -> AsyncIterator[ServerDouble]:
    double = ServerDouble()
    await double.start()
    yield double
    await double.stop()


@pytest.fixture
def recorder() -> RecordingHandler:
    return RecordingHandler()
