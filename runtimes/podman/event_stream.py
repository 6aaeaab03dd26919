"""The event-stream thread of the monitor: holds ``GET /events`` open and feeds lines to the loop.

It runs in its own thread (an endless blocking read must not park a worker of
the shared executor), reconnects with exponential back-off, and only ever
calls back into the loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Protocol

from ankaios_agent.agent.blocking import run_blocking
from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman.engine_errors import translate

logger = logging.getLogger(__name__)


class StreamTimings(Protocol):
    @property
    def reconnect_initial_s(self) -> float: ...

    @property
    def reconnect_max_s(self) -> float: ...


class StreamListener(Protocol):
    """What the stream reports to (called on the event loop)."""

    def stream_up(self) -> None: ...

    def stream_down(self, reason: str) -> None: ...

    def event_line(self, line: bytes) -> None: ...


class EventStream:
    """Runs in its own thread: holds the event stream open and feeds lines to the loop."""

    def __init__(
        self,
        connection: PodmanConnection,
        filters: Mapping[str, list[str]],
        *,
        timings: StreamTimings,
        loop: asyncio.AbstractEventLoop,
        stop: threading.Event,
        listener: StreamListener,
    ) -> None:
        self._connection = connection
        # The libpod events filter, e.g. this agent's label (podman) or container+pod events (kube).
        self._filters = json.dumps(dict(filters))
        self._timings = timings
        self._loop = loop
        self._stop = stop
        self._monitor = listener
        self._sock: socket.socket | None = None

    def run(self) -> None:
        """The thread's body: ``_follow`` restarted with back-off after any surprise, until stopped."""
        delay = self._timings.reconnect_initial_s
        while not self._stop.is_set():
            try:
                self._follow()
                return
            except Exception:
                logger.exception(
                    "podman event stream thread failed unexpectedly; restarting it in %.1f s", delay
                )
                self._call(self._monitor.stream_down, "event stream thread failed")
                self._stop.wait(delay)
                delay = min(delay * 2, self._timings.reconnect_max_s)

    def _follow(self) -> None:
        delay = self._timings.reconnect_initial_s
        filters = self._filters
        # The listener hears about a lost stream once per outage, not once per retry, so a
        # Podman that stays away does not fill a device's log.
        down_reported = False
        while not self._stop.is_set():
            reason = "stream ended"
            client = None
            try:
                client = self._connection.stream_client()
                response = client.api.get(
                    "/events", params={"stream": "true", "filters": filters}, stream=True
                )
                response.raise_for_status()
                self._sock = _socket_of(response)
                self._call(self._monitor.stream_up)
                down_reported = False
                delay = self._timings.reconnect_initial_s
                for line in response.iter_lines():
                    if self._stop.is_set():
                        break
                    if line:
                        self._call(self._monitor.event_line, line)
            except Exception as exc:
                error = translate("follow events", exc)
                if error is None:
                    raise  # a bug, not Podman: the supervisor in ``run`` logs it
                reason = error.reason
            finally:
                self._sock = None
                if client is not None:
                    with contextlib.suppress(Exception):
                        client.close()  # type: ignore[no-untyped-call]
            if self._stop.is_set():
                return
            if down_reported:
                logger.debug("podman event stream still unavailable (%s); retrying in %.1f s", reason, delay)
            else:
                self._call(self._monitor.stream_down, reason)
                down_reported = True
            self._stop.wait(delay)
            delay = min(delay * 2, self._timings.reconnect_max_s)

    def interrupt(self) -> None:
        """Unblock a read in progress (called from the loop thread at shutdown)."""
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed during shutdown
            self._loop.call_soon_threadsafe(fn, *args)


def _socket_of(response: object) -> socket.socket | None:
    """The socket under a streaming requests response (urllib3 2.x), to interrupt blocking reads."""
    raw = getattr(response, "raw", None)
    connection = getattr(raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


@contextlib.asynccontextmanager
async def following(
    connection: PodmanConnection,
    filters: Mapping[str, list[str]],
    *,
    timings: StreamTimings,
    listener: StreamListener,
    name: str,
) -> AsyncIterator[None]:
    """Follow Podman's event stream in a dedicated thread while the block runs; stop and join it after."""
    stop = threading.Event()
    stream = EventStream(
        connection, filters, timings=timings, loop=asyncio.get_running_loop(), stop=stop, listener=listener
    )
    thread = threading.Thread(target=stream.run, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        stream.interrupt()
        await run_blocking(thread.join, 5.0)
