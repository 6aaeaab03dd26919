"""The dialect catalogue: names, methods, lazy loading, what each encoder drops, session rules."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from ankaios_agent.agent import conversion, dialects
from ankaios_agent.agent.call_outcomes import VersionRefused
from ankaios_agent.agent.config import ProtocolChoice
from ankaios_agent.agent.dialect_v1.session import ServerHelloSession
from ankaios_agent.agent.fakes import RecordingSink
from ankaios_agent.agent.lifecycle_rules import V0_3_RULES, V1_RULES, Dialect
from ankaios_agent.agent.model import (
    AgentHello,
    AgentLoadStatus,
    CompleteStateRequest,
    DesiredState,
    DesiredStateRequest,
    ExecutionState,
    LogEntries,
    LogsStopped,
    Request,
    ServerHello,
    WorkloadState,
)
from ankaios_agent.agent.session import DesiredStateQuery
from ankaios_agent.agent.wire_format import serialized
from ankaios_agent.proto import ank_base_pb2 as base
from ankaios_agent.proto import ankaios_pb2 as pb
from ankaios_agent.proto import grpc_api_pb2 as api
from tests.unit.lifecycle_support import AGENT, inst, spec


def test_each_dialect_names_its_method_and_rules() -> None:
    assert dialects.V0_3.method == "/ankaios.AgentConnection/ConnectAgent"
    assert dialects.V1.method == "/grpc_api.AgentConnection/ConnectAgent"
    assert (dialects.V0_3.lifecycle, dialects.V1.lifecycle) == (V0_3_RULES, V1_RULES)
    assert dialects.BY_DIALECT[Dialect.V1] is dialects.V1


@pytest.mark.parametrize(
    ("choices", "expected"),
    [
        ((ProtocolChoice.V1, ProtocolChoice.V0_3), (dialects.V1, dialects.V0_3)),
        ((ProtocolChoice.V0_3,), (dialects.V0_3,)),
        ((ProtocolChoice.V1,), (dialects.V1,)),
    ],
)
def test_probe_order_follows_the_settings(
    choices: tuple[ProtocolChoice, ...], expected: tuple[dialects.WireDialect, ...]
) -> None:
    assert dialects.for_choices(choices) == expected


def test_generated_code_is_imported_only_when_a_session_uses_a_dialect() -> None:
    """The process, the connection and the manager load neither dialect's generated code up front."""
    program = """
import sys
from ankaios_agent.agent import app, connection, manager, dialects
loaded = lambda: sorted(m for m in sys.modules if m.startswith("ankaios_agent.proto.") and "control" not in m)
print(loaded())
dialects.V1.codec()
print(loaded())
"""
    out = subprocess.run([sys.executable, "-c", program], check=True, capture_output=True, text=True)
    before, after = out.stdout.splitlines()
    assert before == "[]"
    assert "ankaios_agent.proto.ankaios_pb2" not in after
    assert "ankaios_agent.proto.grpc_api_pb2" in after


def test_hellos() -> None:
    hello = AgentHello(AGENT, {"zone": "a"})
    assert dialects.V0_3.codec().hello(hello) == pb.ToServer(agentHello=pb.AgentHello(agentName=AGENT))
    v1 = dialects.V1.codec().hello(hello)
    assert (v1.agentHello.protocolVersion, dict(v1.agentHello.tags.tags)) == ("1.0.1", {"zone": "a"})


V1_ONLY = [
    AgentLoadStatus(AGENT, 5, 1024),
    LogEntries("agent_B@w@1", ()),
    LogsStopped("agent_B@w@1", inst("a")),
]


@pytest.mark.parametrize("msg", V1_ONLY, ids=lambda m: type(m).__name__)
def test_v0_3_encoder_drops_v1_only_messages(msg: object, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert dialects.V0_3.codec().to_server(msg) is None  # type: ignore[arg-type]
    assert type(msg).__name__ in caplog.text


def sent_v1(msg: object) -> api.ToServer:
    """What the v1.0.1 session's connection writes for ``msg``, parsed back."""
    codec = dialects.V1.codec()
    return api.ToServer.FromString(serialized(codec.to_server(msg)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("msg", "kind"),
    list(zip(V1_ONLY, ["AgentLoadStatus", "logEntriesResponse", "logsStopResponse"], strict=True)),
    ids=[type(m).__name__ for m in V1_ONLY],
)
def test_v1_encoder_sends_v1_messages(msg: object, kind: str) -> None:
    assert sent_v1(msg).WhichOneof("ToServerEnum") == kind


def test_v0_3_encoder_sends_states_like_before() -> None:
    state = WorkloadState(inst("a"), ExecutionState.running())
    assert conversion.encode(state) == conversion.to_server(state)


def test_v1_encoder_drops_a_reconciliation_request_from_a_v0_3_session() -> None:
    assert dialects.V1.codec().to_server(DesiredStateRequest("@ank-agent/reconcile-1")) is None


def test_a_request_queued_under_the_other_dialect_is_not_sent(caplog: pytest.LogCaptureFixture) -> None:
    """A server swap with control-interface requests still queued: v0.3.1 requests carry checked
    content, v1.0.1 ones opaque ank_base bytes; neither means the same to the other server."""
    v0_3_request = Request("wl@1", content=CompleteStateRequest(("desiredState",)))
    v1_body = base.Request(completeStateRequest=base.CompleteStateRequest()).SerializeToString()
    v1_request = Request("wl@2", body=v1_body)
    assert dialects.V1.codec().to_server(v0_3_request) is None
    assert dialects.V0_3.codec().to_server(v1_request) is None
    assert "'wl@1'" in caplog.text and "'wl@2'" in caplog.text
    assert isinstance(dialects.V0_3.codec().to_server(v0_3_request), pb.ToServer)
    assert sent_v1(v1_request).request == base.Request(
        requestId="wl@2", completeStateRequest=base.CompleteStateRequest()
    )


def test_v1_decoder_drops_a_message_that_breaks_the_contract(caplog: pytest.LogCaptureFixture) -> None:
    assert dialects.V1.codec().from_server(api.FromServer(), AGENT) is None
    assert "without content" in caplog.text


@pytest.mark.parametrize(
    ("details", "version"),
    [
        ("FAILED_PRECONDITION: Unsupported protocol version '1.0.1'. Currently supported '2'", "2"),
        ("FAILED_PRECONDITION: something else", "unknown"),
    ],
)
def test_version_refusal_names_the_servers_version(details: str, version: str) -> None:
    assert VersionRefused("127.0.0.1:1", details).server_version == version


# --- session rules ----------------------------------------------------------------


def test_v0_3_session_asks_and_takes_only_the_latest_answer() -> None:
    sink = RecordingSink()
    query = DesiredStateQuery(sink, AGENT)
    query.start()
    query.start()
    first, second = (m.request_id for m in sink.messages if isinstance(m, DesiredStateRequest))
    assert query.snapshot(DesiredState(first, (spec("a"),))) is None
    assert query.snapshot(ServerHello((spec("a"),))) is None
    snapshot = query.snapshot(DesiredState(second, (spec("a"),)))
    assert snapshot is not None and snapshot.workloads == (spec("a"),)


@pytest.mark.parametrize(
    ("added", "expected"),
    [
        ((), ()),
        ((spec("a"), spec("b")), (spec("a"), spec("b"))),
    ],
)
def test_v1_session_takes_every_server_hello(added: tuple[object, ...], expected: tuple[object, ...]) -> None:
    session = ServerHelloSession(AGENT)
    session.start()  # asks nothing
    snapshot = session.snapshot(ServerHello(added))  # type: ignore[arg-type]
    assert snapshot is not None
    assert snapshot.workloads == expected
    assert snapshot.known_instances == frozenset()


def test_v1_session_ignores_answers_and_other_agents() -> None:
    session = ServerHelloSession(AGENT)
    assert session.snapshot(DesiredState("@ank-agent/reconcile-1", ())) is None
    other = spec("x").__class__(**{**spec("x").__dict__, "instance": inst("x", agent="agent_B")})
    snapshot = session.snapshot(ServerHello((spec("a"), other)))
    assert snapshot is not None and snapshot.workloads == (spec("a"),)
