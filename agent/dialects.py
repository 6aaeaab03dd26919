"""The wire dialects the agent speaks, as small named units.

A :class:`WireDialect` names everything that differs per server version: the
gRPC method, the deserializer and conversion of its generated messages
(:class:`WireCodec`), how its hello is built, and its session rules (how a
session learns the complete list of this agent's workloads, which lifecycle
rules apply). The scheduler, the workload loops, the runtimes and the relay are
shared and never see any of it.

A dialect's generated modules and conversion are imported only when a session
first uses it (:meth:`WireDialect.codec`): an agent that only ever talks to
one server version never loads the other's protobuf descriptors.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ankaios_agent.agent.config import ProtocolChoice
from ankaios_agent.agent.errors import ConversionError
from ankaios_agent.agent.lifecycle_rules import V0_3_RULES, V1_RULES, Dialect, LifecycleRules
from ankaios_agent.agent.model import (
    AgentHello,
    DesiredStateRequest,
    FromServerMessageV1,
    Request,
    ToServerMessageV1,
)
from ankaios_agent.agent.ports import MessageSink
from ankaios_agent.agent.session import DesiredStateQuery, SessionRules

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WireCodec:
    """The generated-code side of a dialect: bytes <-> wire messages <-> domain messages."""

    deserialize: Callable[[bytes], Any]
    """Bytes to a FromServer wire message (the call's response deserializer)."""
    hello: Callable[[AgentHello], Any]
    from_server: Callable[[Any, str], FromServerMessageV1 | None]
    """None: the message is dropped (already logged)."""
    to_server: Callable[[ToServerMessageV1], Any | None]
    """A ToServer wire message, or its bytes when the conversion put them together itself (a
    checked control-interface request, a batch of log entries): ``wire_format.serialized``
    makes bytes of either. None: the message has no meaning in this dialect and is dropped
    (already logged). Raises ConversionError for a message that cannot be encoded."""


@dataclass(frozen=True)
class WireDialect:
    dialect: Dialect
    choice: ProtocolChoice
    label: str  # for log lines: "Ankaios v1.0.1 protocol"
    method: str  # the gRPC path of ConnectAgent
    lifecycle: LifecycleRules
    # The server always sends a message right after accepting the hello (v1.0.1: its ServerHello).
    server_speaks_first: bool
    _load: Callable[[], WireCodec]

    def codec(self) -> WireCodec:
        """The dialect's codec, importing its generated code on first use."""
        return self._load()

    def session_rules(self, sink: MessageSink, agent_name: str) -> SessionRules:
        if self.dialect is Dialect.V1:
            from ankaios_agent.agent.dialect_v1.session import ServerHelloSession  # noqa: PLC0415

            return ServerHelloSession(agent_name)
        return DesiredStateQuery(sink, agent_name)


@functools.cache
def _v0_3_codec() -> WireCodec:
    from ankaios_agent.agent import conversion  # noqa: PLC0415 (loaded when first used)
    from ankaios_agent.proto import ankaios_pb2 as pb  # noqa: PLC0415

    return WireCodec(
        deserialize=pb.FromServer.FromString,
        hello=lambda hello: conversion.agent_hello(hello.agent_name),
        from_server=conversion.from_server,
        to_server=conversion.encode,
    )


@functools.cache
def _v1_codec() -> WireCodec:
    # The hello and the generated modules only: the connection's protocol probe needs no
    # more, and a server that turns out to speak v0.3.1 never makes the agent load the
    # v1.0.1 conversion. It is imported with the first message either way.
    from ankaios_agent.agent.dialect_v1.hello import agent_hello  # noqa: PLC0415 (loaded when first used)
    from ankaios_agent.proto import grpc_api_pb2 as api  # noqa: PLC0415

    def from_server(wire: Any, agent_name: str) -> FromServerMessageV1 | None:
        from ankaios_agent.agent.dialect_v1 import conversion  # noqa: PLC0415

        try:
            return conversion.from_server(wire, agent_name)
        except ConversionError as err:
            # Strict like the v1.0.1 reference: nothing of a message that breaks the contract is applied.
            logger.warning("dropping a message from the server: %s", err)
            return None

    def to_server(msg: ToServerMessageV1) -> Any | None:
        from ankaios_agent.agent.dialect_v1 import conversion  # noqa: PLC0415

        if isinstance(msg, DesiredStateRequest):
            # Queued by an Ankaios v0.3.1 session before a server swap; the ServerHello replaces it.
            logger.debug("dropping reconciliation request %s: a v1.0.1 server sends its list itself", msg)
            return None
        if isinstance(msg, Request) and msg.content is not None:
            # Checked content is what a v0.3.1 control interface makes; v1.0.1 requests travel opaque.
            logger.warning(
                "not forwarding request %r to the Ankaios v1.0.1 server: it was made under the "
                "v0.3.1 protocol before the server changed; the workload gets no answer",
                msg.request_id,
            )
            return None
        return conversion.encode(msg)

    return WireCodec(
        deserialize=api.FromServer.FromString,
        hello=agent_hello,
        from_server=from_server,
        to_server=to_server,
    )


V0_3 = WireDialect(
    dialect=Dialect.V0_3,
    choice=ProtocolChoice.V0_3,
    label="Ankaios v0.3.1 protocol",
    method="/ankaios.AgentConnection/ConnectAgent",
    lifecycle=V0_3_RULES,
    server_speaks_first=False,  # nothing at all when no workload is assigned
    _load=_v0_3_codec,
)
V1 = WireDialect(
    dialect=Dialect.V1,
    choice=ProtocolChoice.V1,
    label="Ankaios v1.0.1 protocol",
    method="/grpc_api.AgentConnection/ConnectAgent",
    lifecycle=V1_RULES,
    server_speaks_first=True,
    _load=_v1_codec,
)

BY_DIALECT: Mapping[Dialect, WireDialect] = {d.dialect: d for d in (V0_3, V1)}
BY_CHOICE: Mapping[ProtocolChoice, WireDialect] = {d.choice: d for d in (V0_3, V1)}


def for_choices(choices: tuple[ProtocolChoice, ...]) -> tuple[WireDialect, ...]:
    """The dialects to probe, in order, for ``AgentConfig.dialects``."""
    return tuple(BY_CHOICE[c] for c in choices if c is not ProtocolChoice.AUTO)
