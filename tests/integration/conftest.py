"""Fixtures for integration tests against the server double over loopback gRPC."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from ankaios_agent.agent import dialects
from ankaios_agent.agent.connection import ConnectionTimings, ServerConnection
from ankaios_agent.agent.dialects import WireDialect
from ankaios_agent.agent.lifecycle_rules import Dialect
from ankaios_agent.agent.model import FromServerMessageV1
from ankaios_agent.agent.outbox import Outbox
from tests.server_double import ServerDouble
from tests.support.doubles import DIALECTS, Double, make_double


class RecordingHandler:
    """Records what the connection hands over, in order, and counts on_connected calls."""

    def __init__(self) -> None:
        self.messages: list[FromServerMessageV1] = []
        self.connected_calls = 0
        self.dialects: list[Dialect] = []
        self.events: list[str] = []
        self._changed = asyncio.Event()

    async def handle(self, msg: FromServerMessageV1) -> None:
        self.messages.append(msg)
        self.events.append(type(msg).__name__)
        self._wake()

    async def on_connected(self, dialect: Dialect = Dialect.V0_3) -> None:
        self.dialects.append(dialect)
        self.connected_calls += 1
        self.events.append("on_connected")
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: object, within: float = 5.0) -> None:
        assert callable(predicate)
        async with asyncio.timeout(within):
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


FAST = ConnectionTimings(connect_timeout=5.0)
PROBING = (dialects.V1, dialects.V0_3)  # what --protocol auto tries, in this order


class RunningConnection:
    """A ServerConnection running in a task, with its outbox and recorder."""

    def __init__(
        self,
        server: Double,
        name: str,
        recorder: RecordingHandler,
        dialects: tuple[WireDialect, ...] = (dialects.V0_3,),
    ) -> None:
        self.outbox = Outbox()
        self.recorder = recorder
        self.connection = ServerConnection(
            server.address, name, self.outbox, recorder.handle, recorder.on_connected, FAST, dialects=dialects
        )
        self.task = asyncio.create_task(self.connection.run())

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def connect(
    server: ServerDouble, recorder: RecordingHandler
) -> AsyncIterator[Callable[[str], RunningConnection]]:
    running: list[RunningConnection] = []

    def start(name: str) -> RunningConnection:
        conn = RunningConnection(server, name, recorder)
        running.append(conn)
        return conn

    yield start
    for conn in running:
        await conn.close()


@pytest.fixture(params=DIALECTS)
async def any_server(request: pytest.FixtureRequest) -> AsyncIterator[Double]:
    """Each server double in turn, for behaviour both dialects share."""
    double = make_double(request.param)
    await double.start()
    yield double
    await double.stop()


@pytest.fixture
async def connect_any(
    any_server: Double, recorder: RecordingHandler
) -> AsyncIterator[Callable[[str], RunningConnection]]:
    """Connections that probe like ``--protocol auto`` to ``any_server``."""
    running: list[RunningConnection] = []

    def start(name: str) -> RunningConnection:
        conn = RunningConnection(any_server, name, recorder, PROBING)
        running.append(conn)
        return conn

    yield start
    for conn in running:
        await conn.close()
