"""ServerConnection against the server double over loopback gRPC: order, reconnects, message size."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import grpc.aio
import pytest

from ankaios_agent.agent import dialects
from ankaios_agent.agent.connection import ConnectionTimings, ServerConnection
from ankaios_agent.agent.model import (
    AGENT_REQUEST_PREFIX,
    DesiredState,
    DesiredStateRequest,
    ExecutionState,
    FromServerMessageV1,
    InstanceName,
    UpdateWorkload,
    UpdateWorkloadState,
    WorkloadState,
)
from ankaios_agent.agent.outbox import Outbox
from ankaios_agent.proto import ankaios_pb2 as pb
from ankaios_agent.proto import grpc_api_pb2 as api
from tests.integration.conftest import FAST, RecordingHandler, RunningConnection
from tests.server_double import ServerDouble, state_from_yaml
from tests.server_double.state import API_VERSION
from tests.server_double_v1 import ServerDoubleV1
from tests.support.doubles import Double

Connect = Callable[[str], RunningConnection]


def _state(agent: str, n: int, state: ExecutionState | None = None) -> WorkloadState:
    return WorkloadState(InstanceName(f"w{n}", agent, "id"), state or ExecutionState.running())


def _kinds(msgs: Sequence[Any]) -> list[str | None]:
    return [m.WhichOneof("ToServerEnum") for m in msgs]


async def test_hello_is_the_first_message(server: ServerDouble, connect: Connect, agent_name: str) -> None:
    """ToServer{agentHello{agentName}} comes first, even with messages already queued."""
    conn_ = connect(agent_name)
    conn_.outbox.send(_state(agent_name, 1))
    await server.wait_until(lambda: len(server.received.get(agent_name, [])) >= 2)
    first = server.received[agent_name][0]
    assert first == pb.ToServer(agentHello=pb.AgentHello(agentName=agent_name))
    assert _kinds(server.received[agent_name]) == ["agentHello", "updateWorkloadState"]


async def test_hello_is_the_first_message_in_either_dialect(
    any_server: Double, connect_any: Connect, agent_name: str
) -> None:
    """Probing sends each dialect's hello first; the accepted call then carries the queued state."""
    conn_ = connect_any(agent_name)
    conn_.outbox.send(_state(agent_name, 1))
    await any_server.wait_until(lambda: len(any_server.received.get(agent_name, [])) >= 2)
    assert _kinds(any_server.received[agent_name]) == ["agentHello", "updateWorkloadState"]


async def test_outgoing_messages_keep_their_order(
    any_server: Double, connect_any: Connect, agent_name: str
) -> None:
    """The outbox keeps order; one WorkloadState per message, as the reference sends them."""
    server = any_server
    conn_ = connect_any(agent_name)
    await server.wait_for_agent(agent_name)
    for n in range(200):
        conn_.outbox.send(_state(agent_name, n))
    await server.wait_until(lambda: len(server.received[agent_name]) >= 201)
    names = [
        m.updateWorkloadState.workloadStates[0].instanceName.workloadName
        for m in server.received[agent_name][1:]
    ]
    assert names == [f"w{n}" for n in range(200)]
    assert all(len(m.updateWorkloadState.workloadStates) == 1 for m in server.received[agent_name][1:])


async def test_handler_gets_messages_strictly_in_order_one_at_a_time(
    server: ServerDouble, agent_name: str, connect: Connect
) -> None:
    """FromServer messages are processed in arrival order, never concurrently."""
    in_flight = 0
    overlaps = 0
    order: list[str] = []

    recorder = RecordingHandler()

    async def slow_handle(msg: FromServerMessageV1) -> None:
        nonlocal in_flight, overlaps
        in_flight += 1
        overlaps += in_flight > 1
        await asyncio.sleep(0.001)
        assert isinstance(msg, UpdateWorkloadState)
        order.append(msg.states[0].instance.workload)
        in_flight -= 1
        await recorder.handle(msg)

    conn_ = connect(agent_name)
    conn_.connection._handler = slow_handle  # the one handler swap: keeps the fixture's cleanup
    await server.wait_for_agent(agent_name)
    for n in range(50):
        state = pb.WorkloadState(
            instanceName=pb.WorkloadInstanceName(workloadName=f"o{n}", agentName="other", id="1"),
            executionState=pb.ExecutionState(running=pb.RUNNING_OK),
        )
        await server.send(
            agent_name, pb.FromServer(updateWorkloadState=pb.UpdateWorkloadState(workloadStates=[state]))
        )
    await recorder.wait_until(lambda: len(order) == 50)
    assert order == [f"o{n}" for n in range(50)]
    assert overlaps == 0


async def test_hello_reply_reaches_handler_after_on_connected(
    agent_name: str, recorder: RecordingHandler
) -> None:
    """The hello reply: other agents' states first, then UpdateWorkload; the
    on-connected hook runs before any of them is handled."""
    desired = state_from_yaml(
        f"""
apiVersion: v0.1
workloads:
  mine: {{agent: {agent_name}, runtime: podman, runtimeConfig: "image: a"}}
  theirs: {{agent: other_agent, runtime: podman, runtimeConfig: "image: b"}}
"""
    )
    server = ServerDouble(desired)
    await server.start()
    conn_ = RunningConnection(server, agent_name, recorder)
    try:
        await recorder.wait_until(lambda: len(recorder.messages) >= 2)
        assert recorder.events[:3] == ["on_connected", "UpdateWorkloadState", "UpdateWorkload"]
        others, update = recorder.messages[:2]
        assert isinstance(others, UpdateWorkloadState)
        assert [(s.instance.workload, s.state.display) for s in others.states] == [
            ("theirs", "Pending(Initial)")
        ]
        assert isinstance(update, UpdateWorkload)
        assert [spec.name for spec in update.added] == ["mine"]
    finally:
        await conn_.close()
        await server.stop()


async def test_own_desired_state_request_round_trip(
    server: ServerDouble, connect: Connect, agent_name: str, recorder: RecordingHandler
) -> None:
    """The agent's own CompleteStateRequest (sent after each hello) comes back as DesiredState."""
    await server.set_desired(
        state_from_yaml(
            "apiVersion: v0.1\nworkloads:\n"
            f"  w: {{agent: {agent_name}, runtime: podman, runtimeConfig: config}}\n"
        )
    )
    conn_ = connect(agent_name)
    await server.wait_for_agent(agent_name)
    conn_.outbox.send(DesiredStateRequest(AGENT_REQUEST_PREFIX + "1"))
    await recorder.wait_until(lambda: any(isinstance(m, DesiredState) for m in recorder.messages))
    desired = next(m for m in recorder.messages if isinstance(m, DesiredState))
    assert desired.error is None
    assert [str(s.instance) for s in desired.workloads] == [
        f"w.b79606fb3afea5bd1609ed40b622142f1c98125abcfe89a76a661b0e8e343910.{agent_name}"
    ]


async def test_reconnects_after_server_restart_and_outbox_survives(
    any_server: Double,
    connect_any: Connect,
    agent_name: str,
    recorder: RecordingHandler,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The server is down 10 s and back on the same port; the agent reconnects
    (prints the delay), sends a fresh hello, then everything queued while it was away, in order;
    the outage is logged once, not once per retry."""
    server = any_server
    caplog.set_level(logging.DEBUG, logger="ankaios_agent.agent.connection")
    conn_ = connect_any(agent_name)
    await server.wait_for_agent(agent_name)
    conn_.outbox.send(_state(agent_name, 0))
    await server.wait_until(lambda: len(server.received[agent_name]) == 2)

    port = server.port
    await server.stop()
    await asyncio.sleep(1.0)  # let the agent notice and start retrying
    for n in range(1, 6):
        conn_.outbox.send(_state(agent_name, n))  # queued while the server is away
    await asyncio.sleep(9.0)
    await server.start(port)
    back = time.monotonic()
    await server.wait_for_agent(agent_name, timeout=10.0)
    print(f"\nreconnected {time.monotonic() - back:.3f} s after the server was back")

    await server.wait_until(lambda: len(server.received[agent_name]) >= 8)
    after = server.received[agent_name][2:]
    assert _kinds(after)[0] == "agentHello"
    names = [m.updateWorkloadState.workloadStates[0].instanceName.workloadName for m in after[1:]]
    assert names == [f"w{n}" for n in range(1, 6)]
    assert recorder.connected_calls == 2
    warnings = [
        r
        for r in caplog.records
        if r.name == "ankaios_agent.agent.connection" and r.levelno >= logging.WARNING
    ]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "lost" in warnings[0].getMessage()
    retries = [
        r for r in caplog.records if r.name == "ankaios_agent.agent.connection" and "retry" in r.getMessage()
    ]
    assert len(retries) > 3  # it kept trying, quietly


async def test_unreachable_server_is_logged_once_and_retried(
    agent_name: str, recorder: RecordingHandler, caplog: pytest.LogCaptureFixture
) -> None:
    """No server at all -> one warning, retries forever, never crashes."""
    caplog.set_level(logging.DEBUG, logger="ankaios_agent.agent.connection")
    server = ServerDouble()
    port = await server.start()
    await server.stop()  # a free port with nobody listening
    server = ServerDouble()
    conn_ = RunningConnection(server, agent_name, recorder)
    conn_.connection._address = f"127.0.0.1:{port}"
    try:
        await asyncio.sleep(1.5)
        assert not conn_.task.done()
        warnings = [
            r
            for r in caplog.records
            if r.name == "ankaios_agent.agent.connection" and r.levelno >= logging.WARNING
        ]
        assert [("not reachable" in r.getMessage()) for r in warnings] == [True]
        await server.start(port)
        await server.wait_for_agent(agent_name, timeout=5.0)
        assert recorder.connected_calls == 1
    finally:
        await conn_.close()
        await server.stop()


async def test_cancelling_run_makes_server_mark_agent_disconnected(
    any_server: Double, connect_any: Connect, agent_name: str
) -> None:
    """Cancel the stream (no Goodbye, no half-close) ->
    AgentDisconnected for the agent's workloads, forwarded to the other agents."""
    server = any_server
    conn_ = connect_any(agent_name)
    watcher = connect_any(agent_name + "_watcher")
    await server.wait_for_agent(agent_name)
    await server.wait_for_agent(agent_name + "_watcher")
    conn_.outbox.send(_state(agent_name, 1))
    await server.wait_for_state("w1", "Running(Ok)", agent=agent_name)
    await conn_.close()
    await server.wait_for_state("w1", "AgentDisconnected", agent=agent_name)
    assert "goodbye" not in _kinds(server.received[agent_name])
    await server.wait_until(
        lambda: any(
            m.updateWorkloadState.workloadStates[0].executionState.WhichOneof("ExecutionStateEnum")
            == "agentDisconnected"
            for m in server.sent.get(agent_name + "_watcher", [])
            if m.HasField("updateWorkloadState")
        )
    )
    assert not watcher.task.done()


async def test_stream_loss_never_interrupts_a_handler_call(
    server: ServerDouble, agent_name: str, connect: Connect
) -> None:
    """The manager is never cancelled mid-message by a connection loss; the reconnect waits for it."""
    release = asyncio.Event()
    entered = asyncio.Event()
    outcome: list[str] = []

    async def blocking_handle(msg: FromServerMessageV1) -> None:
        entered.set()
        try:
            await release.wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        outcome.append("finished")

    conn_ = connect(agent_name)
    conn_.connection._handler = blocking_handle
    await server.wait_for_agent(agent_name)
    await server.send(agent_name, pb.FromServer(updateWorkloadState=pb.UpdateWorkloadState()))
    await asyncio.wait_for(entered.wait(), 5)
    port = server.port
    await server.stop()
    conn_.outbox.send(_state(agent_name, 1))  # the writer fails on this dead stream
    await asyncio.sleep(0.3)
    assert outcome == []
    release.set()
    await server.start(port)
    await server.wait_for_agent(agent_name)
    assert outcome == ["finished"]


async def test_server_that_never_answers_the_hello_times_out(
    agent_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener that accepts TCP but never speaks HTTP/2: attempts end, retries go on."""
    accepted: list[asyncio.StreamWriter] = []

    async def mute(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    listener = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    recorder = RecordingHandler()
    timings = ConnectionTimings(connect_timeout=0.3)
    connection = ServerConnection(
        f"127.0.0.1:{port}", agent_name, Outbox(), recorder.handle, recorder.on_connected, timings
    )
    caplog.set_level(logging.WARNING, logger="ankaios_agent.agent.connection")
    task = asyncio.create_task(connection.run())
    try:
        await asyncio.sleep(1.0)
        assert not task.done()
        assert recorder.connected_calls == 0
        assert [r.getMessage() for r in caplog.records if "not reachable" in r.getMessage()] != []
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for writer in accepted:
            writer.close()
        listener.close()


def _big_cluster(agent: str, workloads: int, config_bytes: int) -> pb.State:
    """One workload for ``agent`` among many of other agents, each with a large runtimeConfig."""
    filler = "x" * config_bytes
    state = pb.State(apiVersion=API_VERSION)
    state.workloads["mine"].CopyFrom(pb.Workload(agent=agent, runtime="podman", runtimeConfig="image: a"))
    for n in range(workloads):
        state.workloads[f"w{n}"].CopyFrom(
            pb.Workload(agent=f"other_{n % 50}", runtime="podman", runtimeConfig=f"image: b\n# {n} {filler}")
        )
    return state


async def _ask_desired_state(conn_: RunningConnection, recorder: RecordingHandler, n: int) -> DesiredState:
    conn_.outbox.send(DesiredStateRequest(f"{AGENT_REQUEST_PREFIX}{n}"))
    await recorder.wait_until(
        lambda: any(isinstance(m, DesiredState) and m.request_id.endswith(str(n)) for m in recorder.messages),
        within=30,
    )
    return next(m for m in recorder.messages if isinstance(m, DesiredState) and m.request_id.endswith(str(n)))


async def test_complete_state_above_4_mib_keeps_the_agent_connected(
    agent_name: str, recorder: RecordingHandler
) -> None:
    """A big cluster: the answer to the agent's own state request is far above gRPC's default
    4 MiB receive limit; it arrives, is handled, and the stream stays up (no reconnect loop)."""
    server = ServerDouble(_big_cluster(agent_name, workloads=600, config_bytes=10_000))
    await server.start()
    conn_ = RunningConnection(server, agent_name, recorder)
    try:
        await server.wait_for_agent(agent_name)
        for n in (1, 2):  # asked again, as after every hello
            desired = await _ask_desired_state(conn_, recorder, n)
            assert desired.error is None
            assert [s.name for s in desired.workloads] == ["mine"]
        sizes = [m.ByteSize() for m in server.sent[agent_name] if m.HasField("response")]
        print(f"\ncomplete state answer: {sizes[0] / 2**20:.1f} MiB")
        assert all(size > 4 * 2**20 for size in sizes)
        assert conn_.connection.connected
        assert conn_.connection.sessions == 1
        assert server.disconnects.get(agent_name, 0) == 0
    finally:
        await conn_.close()
        await server.stop()


async def test_message_above_the_limit_is_one_clear_line_and_a_long_back_off(
    agent_name: str, recorder: RecordingHandler, caplog: pytest.LogCaptureFixture
) -> None:
    """Still too large: the stream breaks once, the log says why and what the limit is, and the
    agent waits ``too_large_backoff`` instead of reconnecting (and breaking again) every second."""
    caplog.set_level(logging.DEBUG, logger="ankaios_agent.agent.connection")
    server = ServerDouble(_big_cluster(agent_name, workloads=200, config_bytes=10_000))
    await server.start()
    timings = ConnectionTimings(connect_timeout=5.0, max_receive_bytes=2**20, too_large_backoff=3600.0)
    connection = ServerConnection(
        server.address, agent_name, Outbox(), recorder.handle, recorder.on_connected, timings
    )
    task = asyncio.create_task(connection.run())
    try:
        await server.wait_for_agent(agent_name)
        connection._outbox.send(DesiredStateRequest(AGENT_REQUEST_PREFIX + "1"))
        await server.wait_until(lambda: server.disconnects.get(agent_name, 0) == 1)
        async with asyncio.timeout(10):
            while not any(r.getMessage().startswith("retry ") for r in caplog.records):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, errors
        assert "message too large" in errors[0] and "up to 1 MiB" in errors[0] and "3600 s" in errors[0]
        assert "RESOURCE_EXHAUSTED" in errors[0]
        retry = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("retry "))
        assert "in 3600.00 s" in retry
        await asyncio.sleep(1.5)  # a 1 s back-off would have reconnected by now
        assert connection.sessions == 1
        assert server.disconnects[agent_name] == 1
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await server.stop()


async def test_an_outgoing_message_above_the_server_limit_is_dropped_and_the_session_stays(
    any_server: Double, connect_any: Connect, agent_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The server ends the stream on any message over 4 MiB, which would cut off every workload
    of this agent (and again after each reconnect if the message were kept). One such message is
    dropped with a line that says why; what follows it is sent in the same session."""
    caplog.set_level(logging.WARNING, logger="ankaios_agent.agent.connection")
    server = any_server
    conn_ = connect_any(agent_name)
    await server.wait_for_agent(agent_name)
    huge = ExecutionState(ExecutionState.running().state, "x" * (4 * 2**20))
    conn_.outbox.send(_state(agent_name, 1, huge))
    conn_.outbox.send(_state(agent_name, 2))
    await server.wait_until(lambda: len(server.received[agent_name]) >= 2)
    await asyncio.sleep(0.2)  # a broken stream would show as a disconnect by now
    names = [
        m.updateWorkloadState.workloadStates[0].instanceName.workloadName
        for m in server.received[agent_name][1:]
    ]
    assert names == ["w2"]
    assert server.disconnects.get(agent_name, 0) == 0
    assert conn_.connection.sessions == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("not sending a WorkloadState message" in w and "over 4194304 bytes" in w for w in warnings), (
        warnings
    )


# --- how a session ended ----------------------------------------------------------------------


class _ClosingServer:
    """A v1.0.1 endpoint that answers the hello with a ServerHello and then ends the call with OK."""

    def __init__(self) -> None:
        self._api = api
        self.server = grpc.aio.server()
        handler = grpc.stream_stream_rpc_method_handler(
            self._connect,
            request_deserializer=api.ToServer.FromString,
            response_serializer=api.FromServer.SerializeToString,
        )
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("grpc_api.AgentConnection", {"ConnectAgent": handler}),)
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.calls = 0

    async def _connect(self, requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        self.calls += 1
        async for _hello in requests:
            break
        yield self._api.FromServer(serverHello=self._api.ServerHello())


async def _session_ends(address: str, name: str, recorder: RecordingHandler) -> tuple[list[bool], Any]:
    ends: list[bool] = []

    async def ended(clean: bool) -> None:
        ends.append(clean)

    connection = ServerConnection(
        address,
        name,
        Outbox(),
        recorder.handle,
        recorder.on_connected,
        FAST,
        dialects=(dialects.V1,),
        on_session_ended=ended,
    )
    return ends, asyncio.create_task(connection.run())


async def test_a_session_the_server_ends_cleanly_is_reported_clean(
    agent_name: str, recorder: RecordingHandler
) -> None:
    closing = _ClosingServer()
    await closing.server.start()
    ends, task = await _session_ends(f"127.0.0.1:{closing.port}", agent_name, recorder)
    try:
        await recorder.wait_until(lambda: len(ends) >= 2)
        assert set(ends) == {True}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await closing.server.stop(None)


async def test_a_broken_session_is_reported_as_broken(agent_name: str, recorder: RecordingHandler) -> None:
    server = ServerDoubleV1()
    await server.start()
    ends, task = await _session_ends(server.address, agent_name, recorder)
    try:
        await server.wait_for_agent(agent_name)
        assert ends == []
        await server.restart(down_for=0.2)
        await server.wait_for_agent(agent_name)
        assert ends == [False]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await server.stop()
