"""The first message of a v1.0.1 session, apart from the rest of the conversion.

The connection builds it before it knows whether the server speaks v1.0.1 at
all (the protocol probe); an agent whose server turns out to speak v0.3.1 then
never loads the v1.0.1 conversion (``dialect_v1.conversion``) for it.
"""

from __future__ import annotations

from ankaios_agent.agent.model import AgentHello
from ankaios_agent.proto import ank_base_pb2 as base
from ankaios_agent.proto import grpc_api_pb2 as api

PROTOCOL_VERSION = "1.0.1"
"""Sent in every AgentHello; the server accepts any version with the same major."""


def agent_hello(hello: AgentHello) -> api.ToServer:
    """The first message of a session; tags are always present, possibly empty."""
    return api.ToServer(
        agentHello=api.AgentHello(
            agentName=hello.agent_name,
            protocolVersion=PROTOCOL_VERSION,
            tags=base.Tags(tags=dict(hello.tags)),
        )
    )
