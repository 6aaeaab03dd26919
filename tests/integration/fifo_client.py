"""A host-side stand-in for a workload: talks to the real FIFOs like a container would.

Everything is non-blocking and awaits readiness on the running loop, so tests
never park a thread or block the loop they share with the relay under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from ankaios_agent.control_interface.framing import FrameDecoder, frame
from ankaios_agent.proto import ankaios_pb2 as pb
from ankaios_agent.proto import control_api_pb2 as ctl


async def wait_until(predicate: Callable[[], bool], step: float = 0.002) -> None:
    """Yield to the loop until ``predicate()`` is true (the test timeout bounds it).

    Used for relay counters, which deliberately have no event to wait on.
    """
    while not predicate():  # noqa: ASYNC110
        await asyncio.sleep(step)


def request_frame(request_id: str, field_mask: tuple[str, ...] = ()) -> bytes:
    content = pb.CompleteStateRequest(fieldMask=field_mask)
    request = pb.Request(requestId=request_id, completeStateRequest=content)
    return frame(pb.ToServer(request=request).SerializeToString())


class OutputWriter:
    """The workload's side of ``output``."""

    def __init__(self, folder: Path) -> None:
        # The relay always holds a read end, so a non-blocking open succeeds at once.
        self.fd: int | None = os.open(folder / "output", os.O_WRONLY | os.O_NONBLOCK)

    def write(self, data: bytes) -> None:
        assert self.fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class InputReader:
    """The workload's side of ``input``: collects FromServer frames."""

    def __init__(self, folder: Path, collect: bool = True) -> None:
        """``collect=False``: only hold the read end open; bytes are taken with read_raw."""
        self._path = folder / "input"
        self.fd: int | None = os.open(self._path, os.O_RDONLY | os.O_NONBLOCK)
        self._decoder = FrameDecoder()
        self._frames: asyncio.Queue[bytes] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        if collect:
            self._loop.add_reader(self.fd, self._on_readable)

    def _on_readable(self) -> None:
        assert self.fd is not None
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        if not data:
            # No writer at the moment (the relay reopens): wait for the next one quietly.
            self._loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = os.open(self._path, os.O_RDONLY | os.O_NONBLOCK)
            self._loop.add_reader(self.fd, self._on_readable)
            return
        for payload in self._decoder.feed(data):
            self._frames.put_nowait(payload)

    async def next_response(self) -> pb.Response:
        message = pb.FromServer.FromString(await self._frames.get())
        assert message.WhichOneof("FromServerEnum") == "response"
        return message.response

    def read_raw(self, size: int) -> bytes:
        """Take bytes off the pipe directly (to simulate a reader dying mid-frame)."""
        assert self.fd is not None
        with contextlib.suppress(BlockingIOError):
            return os.read(self.fd, size)
        return b""

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(ValueError, RuntimeError):
                self._loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = None


class V1InputReader(InputReader):
    """The workload's side of ``input`` in a v1.0.1 session: FromAnkaios frames."""

    async def next_message(self) -> ctl.FromAnkaios:
        return ctl.FromAnkaios.FromString(await self._frames.get())

    def has_more(self) -> bool:
        return not self._frames.empty()
