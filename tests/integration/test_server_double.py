"""The server double behaves like the v0.3.1 ank-server (behaviour "Session", "Requests and responses",
"Delete conditions").

These tests talk to it with a raw gRPC client, so they pin the double itself,
independent of the agent's connection code.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import grpc
import grpc.aio
import pytest

from ankaios_agent.proto import ankaios_pb2 as pb
from ankaios_agent.proto import ankaios_pb2_grpc as pb_grpc
from tests.server_double import ServerDouble, StateError, load_state, state_from_yaml
from tests.server_double.state import instance_id

STATE = """
apiVersion: v0.1
workloads:
  db: {agent: A, runtime: podman, runtimeConfig: "image: db"}
  web:
    agent: A
    runtime: podman
    restartPolicy: ALWAYS
    dependencies: {db: ADD_COND_RUNNING}
    tags: [{key: k, value: v}]
    runtimeConfig: "image: web"
  other: {agent: B, runtime: podman, runtimeConfig: "image: o"}
  nowhere: {agent: "", runtime: podman, runtimeConfig: "image: n"}
"""


class RawAgent:
    """A bare ConnectAgent client, independent of agent.connection."""

    def __init__(self, address: str, name: str) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.call = pb_grpc.AgentConnectionStub(self.channel).ConnectAgent()
        self.name = name

    async def hello(self) -> None:
        await self.call.write(pb.ToServer(agentHello=pb.AgentHello(agentName=self.name)))

    async def read(self, within: float = 5.0) -> pb.FromServer:
        async with asyncio.timeout(within):
            msg = await self.call.read()
        assert isinstance(msg, pb.FromServer)
        return msg

    async def nothing_within(self, seconds: float = 0.3) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self.call.read()
        except TimeoutError:
            return True
        return False

    async def send_state(self, workload: str, agent: str, es: pb.ExecutionState, id_: str = "1") -> None:
        inst = pb.WorkloadInstanceName(workloadName=workload, agentName=agent, id=id_)
        states = pb.UpdateWorkloadState(
            workloadStates=[pb.WorkloadState(instanceName=inst, executionState=es)]
        )
        await self.call.write(pb.ToServer(updateWorkloadState=states))

    async def close(self) -> None:
        self.call.cancel()
        await self.channel.close(grace=None)


OpenAgent = Callable[[str], AbstractAsyncContextManager[RawAgent]]


@pytest.fixture
async def double() -> AsyncIterator[ServerDouble]:
    server = ServerDouble(state_from_yaml(STATE))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def agents(
    double: ServerDouble,
) -> AsyncIterator[Callable[[str], AbstractAsyncContextManager[RawAgent]]]:
    @asynccontextmanager
    async def open_agent(name: str) -> AsyncIterator[RawAgent]:
        agent = RawAgent(double.address, name)
        await agent.hello()
        await double.wait_for_agent(name)
        try:
            yield agent
        finally:
            await agent.close()

    yield open_agent


async def test_hello_reply_other_states_first_then_own_workloads(
    agents: OpenAgent, double: ServerDouble
) -> None:
    """behaviour "Session": updateWorkloadState of others (incl. Pending(Initial), NotScheduled),
    then one updateWorkload with this agent's workloads and no deletions."""
    async with agents("A") as a:
        first = await a.read()
        states = {
            s.instanceName.workloadName: s.executionState for s in first.updateWorkloadState.workloadStates
        }
        assert set(states) == {"other", "nowhere"}
        assert states["other"].WhichOneof("ExecutionStateEnum") == "pending"
        assert states["other"].pending == pb.PENDING_INITIAL
        assert states["nowhere"].WhichOneof("ExecutionStateEnum") == "notScheduled"
        second = await a.read()
        added = {w.instanceName.workloadName: w for w in second.updateWorkload.addedWorkloads}
        assert set(added) == {"db", "web"}
        assert list(second.updateWorkload.deletedWorkloads) == []
        web = added["web"]
        assert web.instanceName == pb.WorkloadInstanceName(
            workloadName="web", agentName="A", id=instance_id("image: web")
        )
        assert web.restartPolicy == pb.ALWAYS
        assert dict(web.dependencies) == {"db": pb.ADD_COND_RUNNING}
        assert [(t.key, t.value) for t in web.tags] == [("k", "v")]


async def test_no_update_workload_for_an_agent_without_workloads(agents: OpenAgent) -> None:
    """behaviour "Session": nothing assigned -> no UpdateWorkload at all after the hello."""
    async with agents("C") as c:
        first = await c.read()
        assert first.HasField("updateWorkloadState")
        assert await c.nothing_within()


async def test_states_are_forwarded_to_other_agents_only(agents: OpenAgent, double: ServerDouble) -> None:
    """behaviour "Session": stored by full instance name, forwarded to others, never back."""
    async with agents("A") as a, agents("B") as b:
        await a.read(), await a.read(), await b.read(), await b.read()
        await a.send_state("db", "A", pb.ExecutionState(running=pb.RUNNING_OK), instance_id("image: db"))
        forwarded = await b.read()
        assert forwarded.updateWorkloadState.workloadStates[0].instanceName.workloadName == "db"
        assert await a.nothing_within()
        await double.wait_for_state("db", "Running(Ok)", agent="A")


async def test_removed_deletes_the_entry(agents: OpenAgent, double: ServerDouble) -> None:
    """behaviour "Session": Removed deletes the stored state."""
    async with agents("A") as a:
        await a.send_state("db", "A", pb.ExecutionState(removed=pb.REMOVED), instance_id("image: db"))
        await double.wait_until(lambda: not double.state_of("db"))


async def test_stream_error_marks_agent_disconnected(agents: OpenAgent, double: ServerDouble) -> None:
    """behaviour "Session": a failed stream -> AgentDisconnected for all the agent's states."""
    async with agents("B") as b:
        async with agents("A") as a:
            await a.send_state("db", "A", pb.ExecutionState(running=pb.RUNNING_OK), instance_id("image: db"))
            await double.wait_for_state("db", "Running(Ok)")
        await double.wait_for_state("db", "AgentDisconnected")
        await double.wait_for_state("web", "AgentDisconnected")
        assert b is not None


async def test_clean_end_does_not_mark_disconnected(double: ServerDouble) -> None:
    """behaviour "Session": a clean end of the request stream only stops reading."""
    agent = RawAgent(double.address, "A")
    try:
        await agent.hello()
        await double.wait_for_agent("A")
        await agent.call.done_writing()
        await asyncio.sleep(0.3)
        assert double.disconnects.get("A", 0) == 0
        assert [s.display for s in double.state_of("db")] == ["Pending(Initial)"]
    finally:
        await agent.close()


async def test_empty_first_message_is_invalid_argument(double: ServerDouble) -> None:
    """behaviour "Session": an empty first message ends the call with INVALID_ARGUMENT "Empty"."""
    agent = RawAgent(double.address, "A")
    try:
        await agent.call.write(pb.ToServer())
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await agent.read()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details() == "Empty"
    finally:
        await agent.close()


async def _request(agent: RawAgent, request: pb.Request) -> pb.Response:
    await agent.call.write(pb.ToServer(request=request))
    while True:
        msg = await agent.read()
        if msg.HasField("response"):
            return msg.response


async def test_complete_state_request_ignores_field_mask(agents: OpenAgent) -> None:
    """behaviour "Requests and responses": the whole CompleteState, whatever the fieldMask; the request id
    comes back as sent."""
    async with agents("A") as a:
        request = pb.Request(requestId="wl@1", completeStateRequest=pb.CompleteStateRequest(fieldMask=["x"]))
        response = await _request(a, request)
        assert response.requestId == "wl@1"
        assert set(response.completeState.desiredState.workloads) == {"db", "web", "other", "nowhere"}
        assert set(response.completeState.startupState.workloads) == {"db", "web", "other", "nowhere"}
        assert len(response.completeState.workloadStates) == 4


async def test_update_with_mask_sends_delete_conditions(agents: OpenAgent, double: ServerDouble) -> None:
    """behaviour "Requests and responses", "Delete conditions": masked update; db's delete carries {web:
    NOT_PENDING_NOR_RUNNING}."""
    async with agents("A") as a:
        await a.read(), await a.read()
        new = pb.CompleteState(desiredState=pb.State(apiVersion="v0.1", workloads={}))
        request = pb.Request(
            requestId="1",
            updateStateRequest=pb.UpdateStateRequest(newState=new, updateMask=["desiredState.workloads.db"]),
        )
        await a.call.write(pb.ToServer(request=request))
        update = await a.read()
        deleted = update.updateWorkload.deletedWorkloads
        assert [d.instanceName.workloadName for d in deleted] == ["db"]
        assert dict(deleted[0].dependencies) == {"web": pb.DEL_COND_NOT_PENDING_NOR_RUNNING}
        response = (await a.read()).response
        assert response.requestId == "1"
        assert list(response.UpdateStateSuccess.deletedWorkloads) == [f"db.{instance_id('image: db')}.A"]
        assert set(double.desired.workloads) == {"web", "other", "nowhere"}


async def test_changed_workload_is_delete_plus_add(agents: OpenAgent, double: ServerDouble) -> None:
    """behaviour "Instance names": a change (even restartPolicy only) is sent as delete(old) + add(new)."""
    async with agents("A") as a:
        await a.read(), await a.read()
        desired = pb.State()
        desired.CopyFrom(double.desired)
        desired.workloads["db"].restartPolicy = pb.ON_FAILURE
        await double.set_desired(desired)
        update = (await a.read()).updateWorkload
        assert [d.instanceName.workloadName for d in update.deletedWorkloads] == ["db"]
        assert [w.instanceName.workloadName for w in update.addedWorkloads] == ["db"]
        assert update.deletedWorkloads[0].instanceName.id == update.addedWorkloads[0].instanceName.id


@pytest.mark.parametrize(
    ("yaml_text", "error"),
    [
        (
            "apiVersion: v0.1\nworkloads:\n  x: {agent: A, dependencies: {y: ADD_COND_RUNNING}}\n"
            "  y: {agent: A, dependencies: {x: ADD_COND_RUNNING}}\n",
            "cycle",
        ),
        ("apiVersion: v0.1\n", None),
    ],
)
async def test_update_errors(agents: OpenAgent, yaml_text: str, error: str | None) -> None:
    """behaviour "Requests and responses": a cycle or a wrong apiVersion -> Error{message}; the state is
    unchanged."""
    async with agents("A") as a:
        new = pb.CompleteState(desiredState=state_from_yaml(yaml_text))
        if error is None:
            new.desiredState.apiVersion = "v0.2"
            error = "API version"
        response = await _request(
            a, pb.Request(requestId="r", updateStateRequest=pb.UpdateStateRequest(newState=new))
        )
        assert response.WhichOneof("ResponseContent") == "error"
        assert error in response.error.message


async def test_delete_workload_without_agent_sends_removed_to_agents(
    agents: OpenAgent, double: ServerDouble
) -> None:
    """behaviour "Session": deleting a workload without agent -> Removed states to the agents."""
    async with agents("A") as a:
        await a.read(), await a.read()
        await double.delete_workload("nowhere")
        msg = await a.read()
        state = msg.updateWorkloadState.workloadStates[0]
        assert state.instanceName.workloadName == "nowhere"
        assert state.executionState.WhichOneof("ExecutionStateEnum") == "removed"
        assert double.state_of("nowhere") == []


async def test_restart_on_same_port_keeps_desired_state(double: ServerDouble) -> None:
    port = double.port
    await double.restart()
    assert double.port == port
    assert set(double.desired.workloads) == {"db", "web", "other", "nowhere"}


def test_sample_state_loads() -> None:
    """The demo state parses; workloads use the local busybox image and have dependencies."""
    state = load_state(Path(__file__).parents[1] / "server_double" / "sample_state.yaml")
    assert any(w.dependencies for w in state.workloads.values())
    assert all("localhost/ank-busybox:latest" in w.runtimeConfig for w in state.workloads.values())


def test_bad_yaml_is_refused() -> None:
    with pytest.raises(StateError, match="unknown keys"):
        state_from_yaml("apiVersion: v0.1\nworkloads:\n  x: {agnt: A}\n")
    with pytest.raises(StateError, match="apiVersion"):
        state_from_yaml("apiVersion: v9\n")


@pytest.mark.parametrize(
    "new_state",
    [
        pb.CompleteState(desiredState=pb.State(workloads={"x": pb.Workload(agent="A", restartPolicy=7)})),  # type: ignore[arg-type]
        pb.CompleteState(workloadStates=[pb.WorkloadState(executionState=pb.ExecutionState())]),
    ],
)
async def test_unconvertible_request_drops_the_whole_agent(
    agents: OpenAgent, double: ServerDouble, new_state: pb.CompleteState
) -> None:
    """Like the v0.3.1 server: a request it cannot convert ends the agent's connection."""
    async with agents("A") as a:
        await a.read()  # the hello reply (A has workloads)
        update = pb.UpdateStateRequest(newState=new_state, updateMask=["desiredState.workloads.x"])
        await a.call.write(pb.ToServer(request=pb.Request(requestId="1", updateStateRequest=update)))
        with pytest.raises(grpc.aio.AioRpcError):
            while True:
                await a.read()
        await double.wait_for_state("db", "AgentDisconnected")
        assert "x" not in double.desired.workloads
