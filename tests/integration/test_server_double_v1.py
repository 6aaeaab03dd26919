"""The v1.0.1 server double behaves like the v1.0.1 ank-server.

These tests talk to it with a raw grpc.aio client built on the generated v1
modules, so they pin the double itself, independent of the agent's code.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from ankaios_agent.agent.connection import ConnectionTimings, open_channel
from ankaios_agent.agent.tls import TlsMaterial as AgentTlsMaterial
from ankaios_agent.agent.tls_bridge import TlsBridge
from ankaios_agent.proto import ank_base_pb2 as base
from ankaios_agent.proto import grpc_api_pb2 as api
from ankaios_agent.proto import grpc_api_pb2_grpc as api_grpc
from tests.server_double_v1 import ServerDoubleV1, StateError, TlsMaterial, load_state, state_from_yaml, tree
from tests.server_double_v1.state import instance_id
from tests.support.certs import SERVER_NAME, Identity, Pki
from tests.support.certs import main as certs_main
from tests.support.tls_terminator import TlsTerminator

STATE = """
apiVersion: v1
workloads:
  db: {agent: A, runtime: podman, runtimeConfig: "image: db"}
  web:
    agent: A
    runtime: podman
    restartPolicy: ALWAYS
    dependencies: {db: ADD_COND_RUNNING}
    tags: {k: v}
    files: [{mountPoint: /etc/web.conf, data: "x=1"}]
    controlInterfaceAccess:
      allowRules: [{type: StateRule, operation: Read, filterMasks: ["workloadStates"]}]
    runtimeConfig: "image: web"
  other: {agent: B, runtime: podman, runtimeConfig: "image: o"}
  nowhere: {agent: "", runtime: podman, runtimeConfig: "image: n"}
"""
DB_ID = instance_id("image: db")


def _running() -> base.ExecutionState:
    return base.ExecutionState(running=base.RUNNING_OK, additionalInfo="")


class RawAgent:
    """A bare v1 ConnectAgent client, independent of the agent's connection code."""

    def __init__(self, channel: grpc.aio.Channel, name: str) -> None:
        self.channel = channel
        self.call = api_grpc.AgentConnectionStub(channel).ConnectAgent()
        self.name = name

    async def hello(self, version: str = "1.0.1", tags: dict[str, str] | None = None) -> None:
        hello = api.AgentHello(agentName=self.name, protocolVersion=version, tags=base.Tags(tags=tags or {}))
        await self.call.write(api.ToServer(agentHello=hello))

    async def read(self, within: float = 5.0) -> api.FromServer:
        async with asyncio.timeout(within):
            msg = await self.call.read()
        assert isinstance(msg, api.FromServer), f"stream ended: {msg!r}"
        return msg

    async def read_kind(self, kind: str, within: float = 5.0) -> api.FromServer:
        """The next message of ``kind``, skipping others (e.g. state forwarding)."""
        while True:
            msg = await self.read(within)
            if msg.WhichOneof("FromServerEnum") == kind:
                return msg

    async def nothing_within(self, seconds: float = 0.3) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self.call.read()
        except TimeoutError:
            return True
        return False

    async def send_state(self, workload: str, es: base.ExecutionState, id_: str = "1") -> None:
        inst = base.WorkloadInstanceName(workloadName=workload, agentName=self.name, id=id_)
        states = api.UpdateWorkloadState(
            workloadStates=[base.WorkloadState(instanceName=inst, executionState=es)]
        )
        await self.call.write(api.ToServer(updateWorkloadState=states))

    async def request(self, request: base.Request) -> base.Response:
        await self.call.write(api.ToServer(request=request))
        return (await self.read_kind("response")).response

    async def close(self) -> None:
        self.call.cancel()
        await self.channel.close(grace=None)


OpenAgent = Callable[..., AbstractAsyncContextManager[RawAgent]]


@pytest.fixture
async def double() -> AsyncIterator[ServerDoubleV1]:
    server = ServerDoubleV1(state_from_yaml(STATE))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def agents(double: ServerDoubleV1) -> OpenAgent:
    @asynccontextmanager
    async def open_agent(name: str, tags: dict[str, str] | None = None) -> AsyncIterator[RawAgent]:
        agent = RawAgent(grpc.aio.insecure_channel(double.address), name)
        await agent.hello(tags=tags)
        await double.wait_for_agent(name)
        try:
            yield agent
        finally:
            await agent.close()

    return open_agent


# --- hello -----------------------------------------------------------------------


async def test_hello_reply_is_other_states_then_server_hello_with_rendered_workloads(
    agents: OpenAgent,
) -> None:
    """Other agents' states (Pending(Initial), NotScheduled) come first, then one serverHello with
    every workload of this agent: agent, runtime, runtimeConfig and restartPolicy present, every
    wrapper set, configs empty."""
    async with agents("A") as a:
        first = await a.read()
        states = {
            s.instanceName.workloadName: s.executionState for s in first.updateWorkloadState.workloadStates
        }
        assert set(states) == {"other", "nowhere"}
        assert states["other"].WhichOneof("ExecutionStateEnum") == "pending"
        assert states["other"].pending == base.PENDING_INITIAL
        assert states["nowhere"].WhichOneof("ExecutionStateEnum") == "notScheduled"
        assert all(es.HasField("additionalInfo") for es in states.values())
        hello = (await a.read()).serverHello
        added = {w.instanceName.workloadName: w for w in hello.addedWorkloads}
        assert set(added) == {"db", "web"}
        web = added["web"]
        assert web.instanceName == base.WorkloadInstanceName(
            workloadName="web", agentName="A", id=instance_id("image: web")
        )
        for presence in ("agent", "runtime", "runtimeConfig", "restartPolicy"):
            assert web.workload.HasField(presence)
        for wrapper in ("dependencies", "tags", "controlInterfaceAccess", "configs", "files"):
            assert web.workload.HasField(wrapper)
        assert web.workload.restartPolicy == base.ALWAYS
        assert dict(web.workload.dependencies.dependencies) == {"db": base.ADD_COND_RUNNING}
        assert dict(web.workload.tags.tags) == {"k": "v"}
        assert [f.mountPoint for f in web.workload.files.files] == ["/etc/web.conf"]
        rule = web.workload.controlInterfaceAccess.allowRules[0].stateRule
        assert (rule.operation, list(rule.filterMasks)) == (base.RW_READ, ["workloadStates"])
        assert added["db"].workload.restartPolicy == base.NEVER


async def test_server_hello_is_sent_even_without_workloads(agents: OpenAgent) -> None:
    async with agents("C") as c:
        assert (await c.read()).HasField("updateWorkloadState")
        msg = await c.read()
        assert msg.WhichOneof("FromServerEnum") == "serverHello"
        assert list(msg.serverHello.addedWorkloads) == []
        assert await c.nothing_within()


async def test_hello_states_go_to_every_connected_agent_filtered(agents: OpenAgent) -> None:
    """The states of workloads not on B, sent at B's hello, reach A as well, without A's own."""
    async with agents("A") as a:
        await a.read_kind("serverHello")
        async with agents("B") as b:
            to_b = (await b.read()).updateWorkloadState.workloadStates
            assert {s.instanceName.workloadName for s in to_b} == {"db", "web", "nowhere"}
            copy = (await a.read()).updateWorkloadState.workloadStates
            assert {s.instanceName.workloadName for s in copy} == {"nowhere"}


async def test_hello_records_tags_in_agents(agents: OpenAgent, double: ServerDoubleV1) -> None:
    async with agents("A", tags={"location": "lab"}) as a:
        await a.read_kind("serverHello")
        assert dict(double.agents["A"].tags.tags) == {"location": "lab"}
        agents_map = double.complete_state().agents.agents
        assert dict(agents_map["A"].tags.tags) == {"location": "lab"}
        assert double.hellos["A"][0].protocolVersion == "1.0.1"


@pytest.mark.parametrize("version", ["", "v1.0.1", "1.0", "0.3.1", "2.0.0", "1.0.1.2"])
async def test_other_protocol_versions_are_refused_with_failed_precondition(
    double: ServerDoubleV1, version: str
) -> None:
    agent = RawAgent(grpc.aio.insecure_channel(double.address), "A")
    try:
        await agent.hello(version=version)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await agent.read()
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert err.value.details() == f"Unsupported protocol version '{version}'. Currently supported '1'"
        assert "A" not in double.agents
        assert double.refusals[-1].code == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        await agent.close()


@pytest.mark.parametrize("version", ["1.0.1", "1.7.3", "1.0.0-rc.1+build.5"])
async def test_same_major_versions_are_accepted(double: ServerDoubleV1, version: str) -> None:
    agent = RawAgent(grpc.aio.insecure_channel(double.address), "A")
    try:
        await agent.hello(version=version)
        assert (await agent.read_kind("serverHello")).HasField("serverHello")
    finally:
        await agent.close()


@pytest.mark.parametrize(
    ("first", "details"),
    [
        (api.ToServer(), "Empty"),
        (api.ToServer(goodbye=api.Goodbye()), "No AgentHello received."),
    ],
)
async def test_first_message_must_be_a_hello(
    double: ServerDoubleV1, first: api.ToServer, details: str
) -> None:
    agent = RawAgent(grpc.aio.insecure_channel(double.address), "A")
    try:
        await agent.call.write(first)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await agent.read()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details() == details
    finally:
        await agent.close()


async def test_v0_path_is_unimplemented(double: ServerDoubleV1) -> None:
    from ankaios_agent.proto import ankaios_pb2 as old  # noqa: PLC0415
    from ankaios_agent.proto import ankaios_pb2_grpc as old_grpc  # noqa: PLC0415

    async with grpc.aio.insecure_channel(double.address) as channel:
        call = old_grpc.AgentConnectionStub(channel).ConnectAgent()
        # The refusal can already be there when the hello is written: the write fails then.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.write(old.ToServer(agentHello=old.AgentHello(agentName="A")))
            await call.read()
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


# --- states ------------------------------------------------------------------------


async def test_states_are_forwarded_to_other_agents_only(agents: OpenAgent, double: ServerDoubleV1) -> None:
    async with agents("A") as a, agents("B") as b:
        await a.read_kind("serverHello"), await b.read_kind("serverHello")
        await a.read()  # the copy of B's hello states
        await a.send_state("db", _running(), DB_ID)
        forwarded = await b.read()
        assert forwarded.updateWorkloadState.workloadStates[0].instanceName.workloadName == "db"
        assert await a.nothing_within()
        await double.wait_for_state("db", "Running(Ok)", agent="A")


async def test_states_the_strict_conversion_refuses_are_skipped_one_by_one(
    agents: OpenAgent, double: ServerDoubleV1
) -> None:
    """No additionalInfo, no oneof member or an undefined sub-state: skipped; the valid one is kept."""
    async with agents("A") as a, agents("B") as b:
        await a.read_kind("serverHello"), await b.read_kind("serverHello")
        bad_info = base.ExecutionState(running=base.RUNNING_OK)
        no_member = base.ExecutionState(additionalInfo="")
        undefined = base.ExecutionState(additionalInfo="")
        undefined.pending = 5  # type: ignore[assignment]
        states = [
            base.WorkloadState(
                instanceName=base.WorkloadInstanceName(workloadName=wl, agentName="A", id=DB_ID),
                executionState=es,
            )
            for wl, es in (("x1", bad_info), ("x2", no_member), ("x3", undefined), ("db", _running()))
        ]
        await a.call.write(api.ToServer(updateWorkloadState=api.UpdateWorkloadState(workloadStates=states)))
        forwarded = await b.read()
        assert [s.instanceName.workloadName for s in forwarded.updateWorkloadState.workloadStates] == ["db"]
        await double.wait_for_state("db", "Running(Ok)")
        assert not double.state_of("x1") and not double.state_of("x2") and not double.state_of("x3")


async def test_removed_deletes_the_entry(agents: OpenAgent, double: ServerDoubleV1) -> None:
    async with agents("A") as a:
        await a.send_state("db", base.ExecutionState(removed=base.REMOVED, additionalInfo=""), DB_ID)
        await double.wait_until(lambda: not double.state_of("db"))


async def test_stream_error_marks_agent_disconnected(agents: OpenAgent, double: ServerDoubleV1) -> None:
    """A cancelled call is AgentGone: states AgentDisconnected (sent to the others), agent leaves `agents`."""
    async with agents("B") as b:
        await b.read_kind("serverHello")
        async with agents("A") as a:
            await a.send_state("db", _running(), DB_ID)
            await double.wait_for_state("db", "Running(Ok)")
        await double.wait_for_state("db", "AgentDisconnected")
        await double.wait_for_state("web", "AgentDisconnected")
        assert "A" not in double.agents
        while True:
            msg = await b.read()
            states = msg.updateWorkloadState.workloadStates
            if any(s.executionState.WhichOneof("ExecutionStateEnum") == "agentDisconnected" for s in states):
                break
        assert {s.instanceName.workloadName for s in states} == {"db", "web"}
        assert all(s.executionState.additionalInfo == "" for s in states)
        assert all(s.executionState.HasField("additionalInfo") for s in states)


async def test_old_stream_dying_after_a_second_hello_takes_the_new_one_along(double: ServerDoubleV1) -> None:
    """A second hello with the same name replaces the sender; when the old call then fails the
    name is gone (AgentGone) and the new call's response stream ends cleanly."""
    old = RawAgent(grpc.aio.insecure_channel(double.address), "A")
    new = RawAgent(grpc.aio.insecure_channel(double.address), "A")
    try:
        await old.hello()
        await old.read_kind("serverHello")
        await new.hello()
        await new.read_kind("serverHello")
        await old.close()
        await double.wait_for_state("db", "AgentDisconnected")
        assert "A" not in double.connected_agents and "A" not in double.agents
        async with asyncio.timeout(5):
            while await new.call.read() is not grpc.aio.EOF:
                pass
        assert await new.call.code() == grpc.StatusCode.OK
    finally:
        await new.close()


@pytest.mark.parametrize("ending", ["half-close", "goodbye"])
async def test_clean_end_or_goodbye_do_not_mark_disconnected(double: ServerDoubleV1, ending: str) -> None:
    agent = RawAgent(grpc.aio.insecure_channel(double.address), "A")
    try:
        await agent.hello()
        await agent.read_kind("serverHello")
        if ending == "goodbye":
            await agent.call.write(api.ToServer(goodbye=api.Goodbye()))
        else:
            await agent.call.done_writing()
        await double.wait_until(lambda: double.clean_ends.get("A", 0) == 1)
        assert double.disconnects.get("A", 0) == 0
        # not even when the call fails afterwards: nobody reads it any more
        await agent.close()
        await double.wait_until(lambda: "A" not in double.connected_agents)
        assert double.disconnects.get("A", 0) == 0
        assert "A" in double.agents
        assert [s.display for s in double.state_of("db")] == ["Pending(Initial)"]
    finally:
        await agent.close()


@pytest.mark.parametrize(
    "broken",
    [
        api.ToServer(),
        api.ToServer(request=base.Request(requestId="wl@1")),
        api.ToServer(request=base.Request(requestId="wl@1", updateStateRequest=base.UpdateStateRequest())),
    ],
    ids=["no-content", "request-without-content", "update-without-new-state"],
)
async def test_messages_the_reader_cannot_take_make_the_agent_gone(
    double: ServerDoubleV1, broken: api.ToServer
) -> None:
    agent = RawAgent(grpc.aio.insecure_channel(double.address), "A")
    try:
        await agent.hello()
        await agent.read_kind("serverHello")
        await agent.call.write(broken)
        await double.wait_for_state("db", "AgentDisconnected")
        assert double.disconnects["A"] == 1
        async with asyncio.timeout(5):
            while await agent.call.read() is not grpc.aio.EOF:
                pass
        assert await agent.call.code() == grpc.StatusCode.OK
    finally:
        await agent.close()


async def test_a_message_over_4_mib_breaks_the_stream(double: ServerDoubleV1) -> None:
    """Like tonic's default decode limit: one ToServer over 4 MiB is AgentGone."""
    agent = RawAgent(grpc.aio.insecure_channel(double.address), "A")
    try:
        await agent.hello()
        await agent.read_kind("serverHello")
        await agent.send_state(
            "db", base.ExecutionState(running=base.RUNNING_OK, additionalInfo="x" * (4 << 20)), DB_ID
        )
        await double.wait_for_state("db", "AgentDisconnected")
        assert double.disconnects["A"] == 1
    finally:
        await agent.close()


async def test_agent_load_status_is_stored_under_its_agent_name(
    agents: OpenAgent, double: ServerDoubleV1
) -> None:
    async with agents("A") as a:
        for name in ("A", "nobody"):
            status = api.AgentLoadStatus(
                agent_name=name,
                cpu_usage=base.CpuUsage(cpu_usage=42),
                free_memory=base.FreeMemory(free_memory=1234),
            )
            await a.call.write(api.ToServer(AgentLoadStatus=status))
        await double.wait_until(lambda: double.agents["A"].status.cpu_usage.cpu_usage == 42)
        assert double.agents["A"].status.free_memory.free_memory == 1234
        assert set(double.agents) == {"A"}


# --- requests ----------------------------------------------------------------------


def _tree_keys(cs: base.CompleteState) -> dict[str, Any]:
    result: dict[str, Any] = tree.to_tree(cs)
    return result


async def test_complete_state_without_mask_is_the_whole_state(agents: OpenAgent) -> None:
    async with agents("A", tags={"t": "1"}) as a:
        request = base.Request(requestId="wl@1", completeStateRequest=base.CompleteStateRequest())
        response = await a.request(request)
        assert response.requestId == "wl@1"
        assert response.WhichOneof("ResponseContent") == "completeStateResponse"
        assert not response.completeStateResponse.HasField("alteredFields")
        cs = response.completeStateResponse.completeState
        assert cs.desiredState.apiVersion == "v1"
        assert set(cs.desiredState.workloads.workloads) == {"db", "web", "other", "nowhere"}
        assert set(cs.workloadStates.agentStateMap) == {"A", "B", ""}
        assert dict(cs.agents.agents["A"].tags.tags) == {"t": "1"}


@pytest.mark.parametrize(
    ("masks", "expected"),
    [
        (["desiredState.workloads.db"], {"desiredState": {"apiVersion", "workloads"}}),
        (["workloadStates.A"], {"workloadStates": {"A"}}),
        (["workloadStates.*.db"], {"workloadStates": {"A"}}),
        (["agents.A.tags"], {"agents": {"A"}}),
        (["desiredState.workloads.nope", "agents.nobody"], {"desiredState": {"apiVersion"}}),
        (
            ["workloadStates.A", "desiredState.apiVersion"],
            {"workloadStates": {"A"}, "desiredState": {"apiVersion"}},
        ),
    ],
)
async def test_complete_state_field_masks_select_subtrees(
    agents: OpenAgent, masks: list[str], expected: dict[str, set[str]]
) -> None:
    async with agents("A") as a:
        request = base.Request(requestId="r", completeStateRequest=base.CompleteStateRequest(fieldMask=masks))
        tree = _tree_keys((await a.request(request)).completeStateResponse.completeState)
        assert {k: set(v) for k, v in tree.items()} == expected


async def test_field_mask_on_state_brings_sub_state_along(agents: OpenAgent) -> None:
    async with agents("A") as a:
        mask = f"workloadStates.A.db.{DB_ID}.state"
        request = base.Request(
            requestId="r", completeStateRequest=base.CompleteStateRequest(fieldMask=[mask])
        )
        cs = (await a.request(request)).completeStateResponse.completeState
        es = cs.workloadStates.agentStateMap["A"].wlNameStateMap["db"].idStateMap[DB_ID]
        assert es.WhichOneof("ExecutionStateEnum") == "pending"
        assert es.pending == base.PENDING_INITIAL
        assert not es.HasField("additionalInfo")
        assert set(cs.workloadStates.agentStateMap["A"].wlNameStateMap) == {"db"}


async def test_field_mask_wildcard_selects_one_level(agents: OpenAgent) -> None:
    async with agents("A") as a:
        masks = ["desiredState.workloads.*.agent"]
        request = base.Request(requestId="r", completeStateRequest=base.CompleteStateRequest(fieldMask=masks))
        cs = (await a.request(request)).completeStateResponse.completeState
        workloads = cs.desiredState.workloads.workloads
        assert {n: w.agent for n, w in workloads.items()} == {
            "db": "A",
            "web": "A",
            "other": "B",
            "nowhere": "",
        }
        assert not workloads["web"].HasField("runtime")


async def test_subscription_is_recorded_and_cancelled(agents: OpenAgent, double: ServerDoubleV1) -> None:
    async with agents("A") as a:
        ask = base.CompleteStateRequest(fieldMask=["workloadStates"], subscribeForEvents=True)
        await a.request(base.Request(requestId="wl@7", completeStateRequest=ask))
        assert double.subscriptions == {"A@wl@7": ["workloadStates"]}
        await a.send_state("db", _running(), DB_ID)
        event = (await a.read_kind("response")).response
        assert event.requestId == "wl@7"
        assert event.completeStateResponse.HasField("alteredFields")
        cancel = base.Request(requestId="wl@7", eventsCancelRequest=base.EventsCancelRequest())
        response = await a.request(cancel)
        assert response.WhichOneof("ResponseContent") == "eventsCancelAccepted"
        assert double.subscriptions == {}


async def test_events_report_changes_within_the_masks(agents: OpenAgent, double: ServerDoubleV1) -> None:
    """Pending(Initial) -> Running(Ok) updates state and subState; Removed removes the workload's
    node; changes outside the masks (another agent's hello) are no event."""
    async with agents("A") as a:
        request_id = await double.subscribe(["workloadStates.A"])
        first = double.events[request_id][0].completeStateResponse
        assert not first.HasField("alteredFields")
        assert set(first.completeState.workloadStates.agentStateMap) == {"A"}
        await a.send_state("db", _running(), DB_ID)
        await double.wait_until(lambda: len(double.events[request_id]) == 2)
        event = double.events[request_id][1].completeStateResponse
        prefix = f"workloadStates.A.db.{DB_ID}"
        assert list(event.alteredFields.updatedFields) == [f"{prefix}.state", f"{prefix}.subState"]
        assert list(event.alteredFields.addedFields) == list(event.alteredFields.removedFields) == []
        es = event.completeState.workloadStates.agentStateMap["A"].wlNameStateMap["db"].idStateMap[DB_ID]
        assert es.running == base.RUNNING_OK and es.WhichOneof("ExecutionStateEnum") == "running"
        async with agents("B"):
            pass
        await a.send_state("db", base.ExecutionState(removed=base.REMOVED, additionalInfo=""), DB_ID)
        await double.wait_until(lambda: len(double.events[request_id]) == 3)
        removed = double.events[request_id][2].completeStateResponse.alteredFields
        assert list(removed.removedFields) == ["workloadStates.A.db"]


async def test_agent_subscription_gets_events_with_its_own_id(agents: OpenAgent) -> None:
    async with agents("A") as a, agents("B") as b:
        await a.read_kind("serverHello"), await b.read_kind("serverHello")
        ask = base.CompleteStateRequest(fieldMask=["agents.*.status"], subscribeForEvents=True)
        first = await a.request(base.Request(requestId="watcher@1", completeStateRequest=ask))
        assert first.requestId == "watcher@1"
        status = api.AgentLoadStatus(agent_name="B", cpu_usage=base.CpuUsage(cpu_usage=7))
        await b.call.write(api.ToServer(AgentLoadStatus=status))
        event = (await a.read_kind("response")).response
        assert event.requestId == "watcher@1"
        # the first load status adds the status, with a missing value counted as 0
        assert list(event.completeStateResponse.alteredFields.addedFields) == ["agents.B.status"]
        status_seen = event.completeStateResponse.completeState.agents.agents["B"].status
        assert status_seen.cpu_usage.cpu_usage == 7
        assert status_seen.HasField("free_memory") and status_seen.free_memory.free_memory == 0


async def test_update_with_mask_sends_delete_conditions_then_success(
    agents: OpenAgent, double: ServerDoubleV1
) -> None:
    """db's deletion carries {web: DEL_COND_NOT_PENDING_NOR_RUNNING} (web depends on db running)."""
    async with agents("A") as a:
        await a.read_kind("serverHello")
        new = base.CompleteState(desiredState=base.State(apiVersion="v1"))
        request = base.Request(
            requestId="wl@1",
            updateStateRequest=base.UpdateStateRequest(
                newState=new, updateMask=["desiredState.workloads.db"]
            ),
        )
        await a.call.write(api.ToServer(request=request))
        update = (await a.read()).updateWorkload
        assert [d.instanceName.workloadName for d in update.deletedWorkloads] == ["db"]
        assert dict(update.deletedWorkloads[0].dependencies) == {"web": api.DEL_COND_NOT_PENDING_NOR_RUNNING}
        assert list(update.addedWorkloads) == []
        response = (await a.read()).response
        assert response.requestId == "wl@1"
        assert list(response.UpdateStateSuccess.deletedWorkloads) == [f"db.{DB_ID}.A"]
        assert list(response.UpdateStateSuccess.addedWorkloads) == []
        assert set(double.desired.workloads.workloads) == {"web", "other", "nowhere"}


async def test_removed_forgets_the_delete_condition(agents: OpenAgent, double: ServerDoubleV1) -> None:
    async with agents("A") as a:
        await a.read_kind("serverHello")
        await a.send_state("db", base.ExecutionState(removed=base.REMOVED, additionalInfo=""), DB_ID)
        await double.wait_until(lambda: not double.state_of("db"))
        await double.delete_workload("db")
        update = (await a.read_kind("updateWorkload")).updateWorkload
        assert dict(update.deletedWorkloads[0].dependencies) == {}


async def test_added_workload_arrives_as_update_workload(agents: OpenAgent, double: ServerDoubleV1) -> None:
    async with agents("A") as a:
        await a.read_kind("serverHello")
        success = await double.apply_manifest(
            "apiVersion: v1\nworkloads:\n  late: {agent: A, runtime: podman, runtimeConfig: 'image: late'}\n"
        )
        late_id = instance_id("image: late")
        assert list(success.addedWorkloads) == [f"late.{late_id}.A"]
        update = (await a.read_kind("updateWorkload")).updateWorkload
        assert [w.instanceName.id for w in update.addedWorkloads] == [late_id]
        assert list(update.deletedWorkloads) == []
        assert [s.display for s in double.state_of("late")] == ["Pending(Initial)"]


TEMPLATED = """
apiVersion: v1
workloads:
  web:
    agent: A
    runtime: podman
    configs: {site: site}
    files: [{mountPoint: /etc/greeting, data: "hello {{site.name}}"}]
    runtimeConfig: "image: {{site.image}}"
configs:
  site: {name: world, image: nginx}
"""


async def test_workloads_arrive_rendered_and_a_config_change_updates_them() -> None:
    """The agent gets the rendered runtimeConfig (and the id of that text) and file contents; a
    config that only changes a file is delete + add of the same instance name."""
    double = ServerDoubleV1(state_from_yaml(TEMPLATED))
    await double.start()
    agent = RawAgent(grpc.aio.insecure_channel(double.address), "A")
    try:
        await agent.hello()
        added = (await agent.read_kind("serverHello")).serverHello.addedWorkloads[0]
        assert added.workload.runtimeConfig == "image: nginx"
        assert added.instanceName.id == instance_id("image: nginx")
        assert added.workload.files.files[0].data == "hello world"
        assert not added.workload.configs.configs
        new = base.CompleteState()
        new.desiredState.configs.configs["site"].object.fields["name"].String = "there"
        new.desiredState.configs.configs["site"].object.fields["image"].String = "nginx"
        await double.set_state(new, ["desiredState.configs.site"])
        update = (await agent.read_kind("updateWorkload")).updateWorkload
        assert [d.instanceName for d in update.deletedWorkloads] == [added.instanceName]
        assert [w.instanceName for w in update.addedWorkloads] == [added.instanceName]
        assert update.addedWorkloads[0].workload.files.files[0].data == "hello there"
    finally:
        await agent.close()
        await double.stop()


async def test_changed_workload_is_delete_plus_add(agents: OpenAgent, double: ServerDoubleV1) -> None:
    """A change of the restart policy alone keeps the id and still is delete(old) + add(new)."""
    async with agents("A") as a:
        await a.read_kind("serverHello")
        desired = base.State()
        desired.CopyFrom(double.desired)
        desired.workloads.workloads["db"].restartPolicy = base.ON_FAILURE
        await double.set_desired(desired)
        update = (await a.read_kind("updateWorkload")).updateWorkload
        assert [d.instanceName.workloadName for d in update.deletedWorkloads] == ["db"]
        assert [w.instanceName.workloadName for w in update.addedWorkloads] == ["db"]
        assert update.deletedWorkloads[0].instanceName.id == update.addedWorkloads[0].instanceName.id
        assert update.addedWorkloads[0].workload.restartPolicy == base.ON_FAILURE


async def test_update_of_agent_tags_through_the_agents_mask(
    agents: OpenAgent, double: ServerDoubleV1
) -> None:
    async with agents("A", tags={"a": "1"}):
        new = base.CompleteState()
        new.agents.agents["A"].tags.tags["b"] = "2"
        await double.set_state(new, ["agents.A.tags"])
        assert dict(double.agents["A"].tags.tags) == {"b": "2"}


@pytest.mark.parametrize(
    ("desired", "error"),
    [
        (
            {
                "apiVersion": "v1",
                "workloads": {
                    "x": {
                        "agent": "A",
                        "runtime": "p",
                        "runtimeConfig": "",
                        "dependencies": {"y": "ADD_COND_RUNNING"},
                    },
                    "y": {
                        "agent": "A",
                        "runtime": "p",
                        "runtimeConfig": "",
                        "dependencies": {"x": "ADD_COND_RUNNING"},
                    },
                },
            },
            "Update rejected: 'Workload dependency cycle detected: ",
        ),
        ({"apiVersion": "v0.2"}, "Unsupported API version. Received 'v0.2', expected 'v1'"),
    ],
)
async def test_update_errors(
    agents: OpenAgent, double: ServerDoubleV1, desired: dict[str, Any], error: str
) -> None:
    """A cycle or a wrong apiVersion: Error{message}; the desired state is unchanged."""
    async with agents("A") as a:
        new = base.CompleteState(desiredState=tree.from_tree(desired, base.State))
        request = base.Request(requestId="r", updateStateRequest=base.UpdateStateRequest(newState=new))
        response = await a.request(request)
        assert response.WhichOneof("ResponseContent") == "error"
        assert response.error.message.startswith(error)
        assert set(double.desired.workloads.workloads) == {"db", "web", "other", "nowhere"}


async def test_workload_without_mandatory_fields_is_rejected(agents: OpenAgent) -> None:
    async with agents("A") as a:
        new = base.CompleteState(desiredState=base.State(apiVersion="v1"))
        new.desiredState.workloads.workloads["bare"].agent = "A"
        request = base.Request(
            requestId="r",
            updateStateRequest=base.UpdateStateRequest(
                newState=new, updateMask=["desiredState.workloads.bare"]
            ),
        )
        response = await a.request(request)
        assert (
            response.error.message == "Update rejected: 'Workload 'bare' is missing runtime, runtimeConfig'"
        )


async def test_delete_workload_without_agent_sends_removed_to_agents(
    agents: OpenAgent, double: ServerDoubleV1
) -> None:
    async with agents("A") as a:
        await a.read_kind("serverHello")
        await double.delete_workload("nowhere")
        state = (await a.read()).updateWorkloadState.workloadStates[0]
        assert state.instanceName.workloadName == "nowhere"
        assert state.executionState.WhichOneof("ExecutionStateEnum") == "removed"
        assert double.state_of("nowhere") == []


# --- logs --------------------------------------------------------------------------


def _name(workload: str, agent: str, id_: str) -> base.WorkloadInstanceName:
    return base.WorkloadInstanceName(workloadName=workload, agentName=agent, id=id_)


async def test_logs_request_goes_to_the_owner_and_entries_come_back(
    agents: OpenAgent, double: ServerDoubleV1
) -> None:
    """Only existing instances are kept; the provider sees the full id and its entries and stop
    response reach the requester with the requester's id."""
    async with agents("A") as a, agents("B") as b:
        await a.read_kind("serverHello"), await b.read_kind("serverHello")
        ask = base.LogsRequest(workloadNames=[_name("db", "A", DB_ID), _name("ghost", "A", "x")], tail=-1)
        accepted = await b.request(base.Request(requestId="reader@42", logsRequest=ask))
        assert accepted.requestId == "reader@42"
        assert [n.workloadName for n in accepted.logsRequestAccepted.workloadNames] == ["db"]
        forwarded = (await a.read_kind("logsRequest")).logsRequest
        assert forwarded.requestId == "B@reader@42"
        assert [n.workloadName for n in forwarded.logsRequest.workloadNames] == ["db"]
        assert forwarded.logsRequest.HasField("tail") and forwarded.logsRequest.tail == -1
        assert not forwarded.logsRequest.HasField("follow")
        entries = base.LogEntriesResponse(
            logEntries=[base.LogEntry(workloadName=_name("db", "A", DB_ID), message="hi")]
        )
        await a.call.write(
            api.ToServer(
                logEntriesResponse=api.LogEntriesResponse(requestId="B@reader@42", logEntriesResponse=entries)
            )
        )
        response = (await b.read_kind("response")).response
        assert response.requestId == "reader@42"
        assert [e.message for e in response.logEntriesResponse.logEntries] == ["hi"]
        stop = base.LogsStopResponse(workloadName=_name("db", "A", DB_ID))
        await a.call.write(
            api.ToServer(
                logsStopResponse=api.LogsStopResponse(requestId="B@reader@42", logsStopResponse=stop)
            )
        )
        assert (await b.read_kind("response")).response.WhichOneof("ResponseContent") == "logsStopResponse"
        cancel = await b.request(
            base.Request(requestId="reader@42", logsCancelRequest=base.LogsCancelRequest())
        )
        assert cancel.WhichOneof("ResponseContent") == "logsCancelAccepted"
        assert (await a.read_kind("logsCancelRequest")).logsCancelRequest.requestId == "B@reader@42"


async def test_logs_requested_by_the_test_collect_and_provider_loss_stops_them(
    agents: OpenAgent, double: ServerDoubleV1
) -> None:
    async with agents("B") as b:
        await b.read_kind("serverHello")
        async with agents("A") as a:
            await a.read_kind("serverHello")
            request_id = await double.request_logs([_name("db", "A", DB_ID)], follow=True)
            forwarded = (await a.read_kind("logsRequest")).logsRequest
            assert forwarded.requestId == request_id and forwarded.logsRequest.follow
        await double.wait_until(lambda: len(double.log_responses[request_id]) == 2)
        accepted, stopped = double.log_responses[request_id]
        assert [n.workloadName for n in accepted.logsRequestAccepted.workloadNames] == ["db"]
        assert stopped.logsStopResponse.workloadName.workloadName == "db"


# --- lifecycle and files -------------------------------------------------------------


async def test_restart_on_same_port_keeps_desired_state(double: ServerDoubleV1) -> None:
    port = double.port
    await double.restart()
    assert double.port == port
    assert set(double.desired.workloads.workloads) == {"db", "web", "other", "nowhere"}
    assert [s.display for s in double.state_of("db")] == ["Pending(Initial)"]


def test_sample_state_loads() -> None:
    state = load_state(Path(__file__).parents[1] / "server_double_v1" / "sample_state.yaml")
    workloads = state.workloads.workloads
    assert state.apiVersion == "v1"
    assert any(w.dependencies.dependencies for w in workloads.values())
    assert any(w.controlInterfaceAccess.allowRules for w in workloads.values())
    assert all("localhost/ank-busybox:latest" in w.runtimeConfig for w in workloads.values())


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("apiVersion: v1\nworkloads:\n  x: {agnt: A}\n", "unknown field 'agnt'"),
        ("apiVersion: v9\n", "Unsupported API version"),
        ("apiVersion: v1\nworkloads:\n  x: {agent: A, runtime: p}\n", "missing runtimeConfig"),
        ("apiVersion: v1\nworkloads:\n  a.b: {agent: A, runtime: p, runtimeConfig: ''}\n", "workload name"),
        (
            "apiVersion: v1\nworkloads:\n"
            "  x: {agent: A, runtime: p, runtimeConfig: '', restartPolicy: SOMETIMES}\n",
            "SOMETIMES",
        ),
    ],
)
def test_bad_manifest_is_refused(text: str, match: str) -> None:
    with pytest.raises(StateError, match=match):
        state_from_yaml(text)


def test_v0_1_manifest_with_tag_list_is_read() -> None:
    state = state_from_yaml(
        "apiVersion: v0.1\nworkloads:\n  x:\n    agent: A\n    runtime: p\n    runtimeConfig: ''\n"
        "    tags: [{key: k, value: v}]\n"
    )
    assert dict(state.workloads.workloads["x"].tags.tags) == {"k": "v"}


def test_runnable_by_hand(tmp_path: Path) -> None:
    """``python -m tests.server_double_v1`` serves the sample state until it is terminated."""
    sample = Path(__file__).parents[1] / "server_double_v1" / "sample_state.yaml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.server_double_v1", "--port", "0", "--state", str(sample)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("server double v1.0.1 listening on http://127.0.0.1:"), line
        assert "database" in proc.stdout.readline() + proc.stdout.readline()
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0


# --- mutual TLS --------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki.create()


@asynccontextmanager
async def _tls_double(pki: Pki) -> AsyncIterator[ServerDoubleV1]:
    tls = TlsMaterial(pki.ca.cert, pki.server.cert, pki.server.key)
    server = ServerDoubleV1(state_from_yaml(STATE), tls=tls)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _tls_channel(
    address: str, trust: bytes, identity: Identity | None, chain: bytes = b""
) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        trust, identity.key if identity else None, (identity.cert + chain) if identity else None
    )
    return grpc.aio.secure_channel(
        address, credentials, options=[("grpc.ssl_target_name_override", SERVER_NAME)]
    )


async def _first_answer(channel: grpc.aio.Channel, name: str, version: str = "1.0.1") -> api.FromServer:
    agent = RawAgent(channel, name)
    try:
        await agent.hello(version=version)
        return await agent.read_kind("serverHello")
    finally:
        await agent.close()


@pytest.mark.parametrize("dns_names", [["*"], ["A"], ["B", "A"]])
async def test_mtls_accepts_a_certificate_naming_the_agent_or_star(pki: Pki, dns_names: list[str]) -> None:
    identity = pki.ca.agent_identity(dns_names)
    async with _tls_double(pki) as double:
        assert double.url.startswith("https://")
        answer = await _first_answer(_tls_channel(double.address, pki.ca.cert, identity), "A")
        assert {w.instanceName.workloadName for w in answer.serverHello.addedWorkloads} == {"db", "web"}


async def test_mtls_refuses_a_san_without_the_agent_name_after_the_version_check(pki: Pki) -> None:
    identity = pki.ca.agent_identity(["agent_B", "other"])
    async with _tls_double(pki) as double:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _first_answer(_tls_channel(double.address, pki.ca.cert, identity), "A")
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert (
            err.value.details()
            == """Agent name 'A' does not match SAN ["agent_B", "other"] in agent certificates!"""
        )
        with pytest.raises(grpc.aio.AioRpcError) as version_first:
            await _first_answer(_tls_channel(double.address, pki.ca.cert, identity), "A", version="2.0.0")
        assert version_first.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_mtls_refuses_a_certificate_without_san(pki: Pki) -> None:
    identity = pki.ca.agent_identity(None)
    async with _tls_double(pki) as double:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _first_answer(_tls_channel(double.address, pki.ca.cert, identity), "A")
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert err.value.details() == "No subject alt names found in agent certificates!"


async def test_mtls_refuses_more_than_one_client_certificate(pki: Pki) -> None:
    identity = pki.ca.agent_identity(["*"])
    async with _tls_double(pki) as double:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _first_answer(_tls_channel(double.address, pki.ca.cert, identity, chain=pki.ca.cert), "A")
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert err.value.details() == "Ambiguous agent certificates provided!"


@pytest.mark.parametrize("case", ["foreign-ca", "no-client-cert", "plain-http"])
async def test_mtls_handshake_refuses_foreign_or_missing_identities(pki: Pki, case: str) -> None:
    async with _tls_double(pki) as double:
        if case == "foreign-ca":
            channel = _tls_channel(double.address, pki.ca.cert, pki.foreign_ca.agent_identity(["*"]))
        elif case == "no-client-cert":
            channel = _tls_channel(double.address, pki.ca.cert, None)
        else:
            channel = grpc.aio.insecure_channel(double.address)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _first_answer(channel, "A")
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "A" not in double.agents


async def test_agent_does_not_trust_a_server_of_another_ca(pki: Pki) -> None:
    """The wrong-CA case from the agent's side: the server's certificate fails verification."""
    async with _tls_double(pki) as double:
        channel = _tls_channel(double.address, pki.foreign_ca.cert, pki.ca.agent_identity(["*"]))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _first_answer(channel, "A")
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_grpcio_refuses_ed25519_server_keys() -> None:
    """The reference test setup's Ed25519 keys do not work with grpcio: no common signature
    algorithm, so the handshake fails although every certificate is right."""
    ed = Pki.create(key_type="ed25519")
    async with _tls_double(ed) as double:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _first_answer(_tls_channel(double.address, ed.ca.cert, ed.agent), "A")
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert double.hellos == {}


async def test_the_agents_tls_bridge_reaches_a_server_with_ed25519_keys() -> None:
    """What grpcio's TLS cannot, the agent's OpenSSL bridge can: with the reference setup's Ed25519
    keys everywhere, the double (plain, behind an OpenSSL terminator) answers with its ServerHello."""
    ed = Pki.create(key_type="ed25519")
    server = ServerDoubleV1(state_from_yaml(STATE))
    port = await server.start()
    agent_tls = AgentTlsMaterial(ed.ca.cert, ed.agent.cert, ed.agent.key)
    try:
        async with (
            TlsTerminator(port, ed.server.cert, ed.server.key, ed.ca.cert) as terminator,
            TlsBridge(terminator.address, agent_tls, connect_timeout=5) as bridge,
        ):
            answer = await _first_answer(open_channel(terminator.address, ConnectionTimings(), bridge), "A")
            assert {w.instanceName.workloadName for w in answer.serverHello.addedWorkloads} == {"db", "web"}
        assert len(terminator.peer_certificates) == 1  # the agent's certificate passed the handshake
    finally:
        await server.stop()


async def test_server_certificate_carries_the_fixed_server_name(pki: Pki) -> None:
    """Dialled as 127.0.0.1 but verified as ank-server; another name fails."""
    async with _tls_double(pki) as double:
        identity = pki.ca.agent_identity(["*"])
        credentials = grpc.ssl_channel_credentials(pki.ca.cert, identity.key, identity.cert)
        channel = grpc.aio.secure_channel(
            double.address, credentials, options=[("grpc.ssl_target_name_override", "not-ank-server")]
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _first_answer(channel, "A")
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def _written_certificates(folder: Path) -> dict[str, bytes]:
    assert certs_main([str(folder)]) == 0
    files = {p.name: p for p in folder.iterdir()}
    assert set(files) == {"ca.pem", "server.pem", "server-key.pem", "agent.pem", "agent-key.pem"}
    assert {p.stat().st_mode & 0o777 for p in files.values()} == {0o600}
    return {name: path.read_bytes() for name, path in files.items()}


async def test_certificate_files_written_by_hand_work(tmp_path: Path) -> None:
    """``python -m tests.support.certs DIR`` writes mode-0600 PEM files a TLS double and agent can use."""
    read = _written_certificates(tmp_path)
    server = ServerDoubleV1(tls=TlsMaterial(read["ca.pem"], read["server.pem"], read["server-key.pem"]))
    await server.start()
    try:
        agent = Identity(read["agent.pem"], read["agent-key.pem"])
        answer = await _first_answer(_tls_channel(server.address, read["ca.pem"], agent), "agent_A")
        assert answer.HasField("serverHello")
    finally:
        await server.stop()
