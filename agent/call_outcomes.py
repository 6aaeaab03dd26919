"""What the end of a gRPC call means to the agent, translated once, at the edge.

grpc.aio reports a call's end in several shapes (``AioRpcError`` with a status,
``InvalidStateError`` for a call that already ended, ``TimeoutError``, ``OSError``);
:func:`grpc_errors` turns each into :class:`~agent.errors.ServerUnavailable` or
one of its kinds, which the connection's retry policy tells apart: a message too
large waits longer, an unknown dialect makes the probe try the next one, a
refused protocol version is a condition that is logged once.

A server that does not know a dialect's method ends the call as soon as it
starts, so the session's first message races that answer; :func:`write_hello`
makes sure the probe sees the server's status either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator
from typing import Any, TypeAlias

import grpc
import grpc.aio

from ankaios_agent.agent.errors import ServerUnavailable

Call: TypeAlias = "grpc.aio.StreamStreamCall[Any, Any]"

# The v1.0.1 server's refusal text: "Unsupported protocol version '<sent>'. Currently supported '<major>'".
_SUPPORTED_VERSION = re.compile(r"Currently supported '([^']*)'")


class MessageTooLarge(ServerUnavailable):
    """The stream broke with RESOURCE_EXHAUSTED: a message above a side's limit."""


class StreamClosed(ServerUnavailable):
    """The server ended the response stream cleanly (no error status, no broken transport)."""


class DialectUnknown(ServerUnavailable):
    """The server answered UNIMPLEMENTED: it does not speak the dialect that was tried."""


class VersionRefused(ServerUnavailable):
    """The server answered FAILED_PRECONDITION: it speaks the dialect, but another major version."""

    @property
    def server_version(self) -> str:
        found = _SUPPORTED_VERSION.search(self.reason)
        return found.group(1) if found else "unknown"


HELLO_ATTEMPTS = 3
"""How often one dialect's hello is written when gRPC's core cut it off (see :func:`write_hello`)."""


class HelloCut(Exception):
    """The call ended while its hello was being written, and gRPC lost the server's status."""


async def write_hello(call: Call, hello: bytes) -> None:
    """Write a session's first message; when the server ended the call first, raise its status.

    A server that does not know the method answers UNIMPLEMENTED as soon as the call
    starts, without waiting for a message, so the hello races that answer (and loses
    on a busy machine). Written after the answer, grpc.aio raises InvalidStateError
    instead of the status, which is read from the call here. Written while the answer
    arrives, the write fails inside gRPC's core, which then reports INTERNAL "Internal
    error from Core" in place of the server's status: that is :class:`HelloCut`, and
    the hello is written again on a fresh call.
    """
    try:
        await call.write(hello)
    except asyncio.InvalidStateError:
        raise grpc.aio.AioRpcError(await call.code(), details=await call.details()) from None
    except grpc.aio.AioRpcError as err:
        if err.code() == grpc.StatusCode.INTERNAL and err.details() == _CORE_CUT_DETAILS:
            raise HelloCut("the call ended while the hello was being written") from err
        raise


_CORE_CUT_DETAILS = "Internal error from Core"
"""What grpc.aio reports for a write that failed in gRPC's core (a call that had just ended)."""


@contextlib.contextmanager
def grpc_errors(address: str) -> Iterator[None]:
    """Translate grpc's exceptions into ServerUnavailable."""
    try:
        yield
    except grpc.aio.AioRpcError as err:
        if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise MessageTooLarge(address, f"{err.code().name}: {err.details()}") from err
        if err.code() == grpc.StatusCode.UNIMPLEMENTED:
            raise DialectUnknown(address, f"{err.code().name}: {err.details()}") from err
        if err.code() == grpc.StatusCode.FAILED_PRECONDITION:
            raise VersionRefused(address, f"{err.code().name}: {err.details()}") from err
        raise ServerUnavailable(address, f"{err.code().name}: {err.details()}") from err
    except TimeoutError as err:  # before OSError, its base class
        raise ServerUnavailable(address, "no answer from the server in time") from err
    except asyncio.InvalidStateError as err:
        # grpc.aio raises this for a write or read on a call that already ended.
        raise ServerUnavailable(address, "the stream has ended") from err
    except (grpc.aio.BaseError, OSError) as err:
        raise ServerUnavailable(address, f"{type(err).__name__}: {err}") from err
