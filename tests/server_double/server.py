"""A protocol-faithful stand-in for the v0.3.1 ank-server, on a loopback port.

What it does, as the real server (behaviour "Session", "Requests and responses", "Delete conditions"):

* the first message of a ConnectAgent call must be AgentHello (an empty one
  ends the call with INVALID_ARGUMENT "Empty"); a second hello with the same
  name replaces the old connection;
* hello reply: first one updateWorkloadState with the states of workloads *not*
  on this agent (if there are any), then one updateWorkload with the agent's
  workloads (only if it has any);
* updateWorkloadState from an agent: stored under the full instance name,
  ``Removed`` deletes the entry and the delete-graph entry, then forwarded to
  every other agent (without the receiver's own workloads, skipped if empty);
* requests: the id gets ``<agent>@`` on the way in and loses it on the way out;
  CompleteStateRequest ignores fieldMask; UpdateStateRequest applies update
  masks and answers UpdateStateSuccess or Error (cycle, apiVersion);
* an UpdateStateRequest the real server cannot convert (an enum out of range,
  a workload state without instance name) ends the agent's call with an error;
* a call that fails (agent killed, stream cancelled) marks all of the agent's
  states AgentDisconnected and tells the other agents; a clean end of the
  request stream only stops reading.

Test API (all coroutines run on the test's event loop): ``start``, ``stop``,
``restart`` (same port; states start over from the desired state, like a real
server restarted with the same config), ``set_state``, ``delete_workload``,
``wait_for_state``, ``wait_until``, ``send``, the per-agent message logs
``received`` / ``sent`` and the ``states`` table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc
import grpc.aio

from ankaios_agent.agent.conversion import execution_state_from_proto
from ankaios_agent.agent.model import ExecutionState, InstanceName
from ankaios_agent.proto import ankaios_pb2 as pb
from ankaios_agent.proto import ankaios_pb2_grpc as pb_grpc
from tests.server_double.state import (
    API_VERSION,
    DeleteGraph,
    StateError,
    apply_update,
    diff,
    instance_name,
    instance_text,
    key_of,
)

logger = logging.getLogger("server_double")

# Accept the agent's keepalive pings (a tonic server does not police them either).
SERVER_OPTIONS = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 1000),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.so_reuseport", 0),
]


@dataclass
class _Connection:
    agent: str
    queue: asyncio.Queue[pb.FromServer]


class UnconvertibleRequest(Exception):
    """An agent forwarded a request the real server cannot convert; the call fails."""


_RESTART_POLICIES = frozenset(pb.RestartPolicy.values())
_ADD_CONDITIONS = frozenset(pb.AddCondition.values())


def unconvertible(request: pb.Request) -> str | None:
    """What in ``request`` the v0.3.1 server could not convert, or None if it is fine."""
    if request.WhichOneof("RequestContent") != "updateStateRequest":
        return None
    new = request.updateStateRequest.newState
    for part in (new.startupState, new.desiredState):
        for name, workload in part.workloads.items():
            if workload.restartPolicy not in _RESTART_POLICIES:
                return f"workload {name!r} has restartPolicy {workload.restartPolicy}"
            for dep, condition in workload.dependencies.items():
                if condition not in _ADD_CONDITIONS:
                    return f"workload {name!r} has add condition {condition} on {dep!r}"
    for index, state in enumerate(new.workloadStates):
        if not state.HasField("instanceName"):
            return f"workloadStates[{index}] has no instanceName"
    return None


class ServerDouble(pb_grpc.AgentConnectionServicer):
    def __init__(self, desired: pb.State | None = None, host: str = "127.0.0.1") -> None:
        self._host = host
        self._port = 0
        self._server: grpc.aio.Server | None = None
        self._startup = pb.State()
        self._startup.CopyFrom(desired or pb.State(apiVersion=API_VERSION))
        self.desired = pb.State()
        self.desired.CopyFrom(self._startup)
        self._states: dict[tuple[str, str, str], pb.WorkloadState] = {}
        self._graph = DeleteGraph()
        self._connections: dict[str, _Connection] = {}
        self._changed = asyncio.Event()
        self._stopping = False
        self.received: dict[str, list[pb.ToServer]] = {}
        self.sent: dict[str, list[pb.FromServer]] = {}
        self.disconnects: dict[str, int] = {}
        self._reset_states()

    # --- lifecycle -----------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        return f"{self._host}:{self._port}"

    async def start(self, port: int = 0) -> int:
        """Listen on ``port`` (0: any free port) and return the port."""
        server = grpc.aio.server(options=SERVER_OPTIONS)
        pb_grpc.add_AgentConnectionServicer_to_server(self, server)
        bound: int = server.add_insecure_port(f"{self._host}:{port}")
        if bound == 0:
            raise OSError(f"cannot listen on {self._host}:{port}")
        await server.start()
        self._server, self._port, self._stopping = server, bound, False
        logger.info("server double listening on %s", self.address)
        return bound

    async def stop(self) -> None:
        """Stop listening and break every stream (the agents see an error)."""
        if self._server is None:
            return
        self._stopping = True
        await self._server.stop(grace=None)
        self._server = None
        self._connections.clear()
        self._notify()

    async def restart(self, down_for: float = 0.0) -> None:
        """Stop, wait ``down_for`` seconds, start again on the same port with fresh states."""
        port = self._port
        await self.stop()
        await asyncio.sleep(down_for)
        self._reset_states()
        await self.start(port)

    def _reset_states(self) -> None:
        self._states.clear()
        self._graph.clear()
        added = list(self.desired.workloads.items())
        self._graph.insert(added)
        self._store_initial(added)

    # --- observation ---------------------------------------------------------

    @property
    def states(self) -> dict[InstanceName, ExecutionState]:
        return {
            InstanceName(*k): execution_state_from_proto(s.executionState) for k, s in self._states.items()
        }

    @property
    def connected_agents(self) -> set[str]:
        return set(self._connections)

    def state_of(self, workload: str, agent: str | None = None) -> list[ExecutionState]:
        return [
            s
            for i, s in self.states.items()
            if i.workload == workload and (agent is None or i.agent == agent)
        ]

    async def wait_until(self, predicate: Callable[[], bool], timeout: float | None = 5.0) -> None:
        """Wait until ``predicate()`` holds, re-checked after every change; TimeoutError (None: no limit)."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    async def wait_for_state(
        self, workload: str, display: str, agent: str | None = None, timeout: float = 5.0
    ) -> None:
        """Wait until a row of ``workload`` shows ``display`` (e.g. ``Running(Ok)``), like the stests."""
        await self.wait_until(
            lambda: any(s.display == display for s in self.state_of(workload, agent)), timeout
        )

    async def wait_for_agent(self, agent: str, timeout: float = 5.0) -> None:
        await self.wait_until(lambda: agent in self._connections, timeout)

    # --- driving it like `ank` -----------------------------------------------

    async def set_state(
        self, new: pb.CompleteState, update_mask: Iterable[str] = ()
    ) -> pb.UpdateStateSuccess:
        """Like ``ank set state``; raises StateError for what the server refuses."""
        return await self._update(new, list(update_mask))

    async def set_desired(self, desired: pb.State) -> pb.UpdateStateSuccess:
        return await self._update(pb.CompleteState(desiredState=desired), [])

    async def delete_workload(self, name: str) -> pb.UpdateStateSuccess:
        """Like ``ank delete workload <name>``."""
        return await self._update(pb.CompleteState(), [f"desiredState.workloads.{name}"])

    async def send(self, agent: str, msg: pb.FromServer) -> None:
        """Send any FromServer to a connected agent (for protocol tests)."""
        self._push(agent, msg)

    # --- the gRPC service ----------------------------------------------------

    async def ConnectAgent(self, request_iterator: object, context: grpc.aio.ServicerContext) -> None:  # noqa: N802
        first = await context.read()
        if first is grpc.aio.EOF or first.WhichOneof("ToServerEnum") is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Empty")
        if first.WhichOneof("ToServerEnum") != "agentHello":
            # The real server's handler panics here; the call fails.
            await context.abort(grpc.StatusCode.UNKNOWN, "first message is not an AgentHello")
        agent = first.agentHello.agentName
        self.received.setdefault(agent, []).append(first)
        conn = _Connection(agent, asyncio.Queue())
        self._connections[agent] = conn  # a second hello with the same name replaces the old sender
        await context.send_initial_metadata(())
        self._hello_reply(agent)
        self._notify()
        writer = asyncio.create_task(self._write(conn, context))
        failed = False
        try:
            while True:
                msg = await context.read()
                if msg is grpc.aio.EOF:
                    break  # clean end: stop reading, keep the response stream (behaviour "Session")
                self.received[agent].append(msg)
                await self._handle(agent, msg)
            await writer
        except BaseException:
            failed = True
            raise
        finally:
            writer.cancel()
            if self._connections.get(agent) is conn:
                del self._connections[agent]
            if failed and not self._stopping:
                self._agent_disconnected(agent)
            self._notify()

    async def _write(self, conn: _Connection, context: grpc.aio.ServicerContext) -> None:
        while True:
            msg = await conn.queue.get()
            await context.write(msg)

    def _push(self, agent: str, msg: pb.FromServer) -> None:
        conn = self._connections.get(agent)
        if conn is None:
            return
        self.sent.setdefault(agent, []).append(msg)
        conn.queue.put_nowait(msg)
        self._notify()

    def _hello_reply(self, agent: str) -> None:
        others = [s for s in self._states.values() if s.instanceName.agentName != agent]
        if others:
            self._push(
                agent, pb.FromServer(updateWorkloadState=pb.UpdateWorkloadState(workloadStates=others))
            )
        added = [self._added(n, w) for n, w in sorted(self.desired.workloads.items()) if w.agent == agent]
        if added:
            self._push(agent, pb.FromServer(updateWorkload=pb.UpdateWorkload(addedWorkloads=added)))

    async def _handle(self, agent: str, msg: pb.ToServer) -> None:
        kind = msg.WhichOneof("ToServerEnum")
        if kind == "updateWorkloadState":
            self._store_and_forward(list(msg.updateWorkloadState.workloadStates), source=agent)
        elif kind == "request":
            problem = unconvertible(msg.request)
            if problem is not None:
                # The v0.3.1 server cannot convert such a request into its own objects, and
                # the failure ends the agent's whole connection, not just the request.
                raise UnconvertibleRequest(f"request {msg.request.requestId!r} from agent {agent}: {problem}")
            await self._request(agent, msg.request)
        self._notify()

    async def _request(self, agent: str, request: pb.Request) -> None:
        # The server's own "<agent>@" layer goes on and comes off again (behaviour "Session").
        request_id = f"{agent}@{request.requestId}"
        response = pb.Response(requestId=request_id.split("@", 1)[1])
        content = request.WhichOneof("RequestContent")
        if content == "completeStateRequest":
            # v0.3.1 ignores fieldMask (behaviour "Requests and responses").
            response.completeState.CopyFrom(self.complete_state())
        elif content == "updateStateRequest":
            try:
                success = await self._update(
                    request.updateStateRequest.newState, list(request.updateStateRequest.updateMask)
                )
            except StateError as err:
                response.error.message = str(err)
            else:
                response.UpdateStateSuccess.CopyFrom(success)
        else:
            return  # the real server logs and ignores a request without content
        self._push(agent, pb.FromServer(response=response))

    def complete_state(self) -> pb.CompleteState:
        return pb.CompleteState(
            startupState=self._startup, desiredState=self.desired, workloadStates=list(self._states.values())
        )

    # --- state bookkeeping ---------------------------------------------------

    def _added(self, name: str, workload: pb.Workload) -> pb.AddedWorkload:
        return pb.AddedWorkload(
            instanceName=instance_name(name, workload),
            runtime=workload.runtime,
            runtimeConfig=workload.runtimeConfig,
            restartPolicy=workload.restartPolicy,
            dependencies=dict(workload.dependencies),
            tags=list(workload.tags),
        )

    def _store_initial(self, added: Iterable[tuple[str, pb.Workload]]) -> None:
        for name, workload in added:
            state = pb.ExecutionState()
            if workload.agent:
                state.pending = pb.PENDING_INITIAL
            else:
                state.notScheduled = pb.NOT_SCHEDULED
            inst = instance_name(name, workload)
            self._states[key_of(inst)] = pb.WorkloadState(instanceName=inst, executionState=state)

    async def _update(self, new: pb.CompleteState, mask: list[str]) -> pb.UpdateStateSuccess:
        result = apply_update(self.desired, new, mask)
        changes = diff(self.desired, result)
        self.desired.CopyFrom(result)
        self._graph.insert(changes.added)
        per_agent: dict[str, pb.UpdateWorkload] = {}
        unscheduled_removed: list[pb.WorkloadState] = []
        for name, workload in changes.deleted:
            inst = instance_name(name, workload)
            if not workload.agent:
                self._states.pop(key_of(inst), None)
                unscheduled_removed.append(
                    pb.WorkloadState(instanceName=inst, executionState=pb.ExecutionState(removed=pb.REMOVED))
                )
                continue
            per_agent.setdefault(workload.agent, pb.UpdateWorkload()).deletedWorkloads.append(
                pb.DeletedWorkload(instanceName=inst, dependencies=self._graph.conditions(name))  # type: ignore[arg-type]
            )
        for name, workload in changes.added:
            if workload.agent:
                per_agent.setdefault(workload.agent, pb.UpdateWorkload()).addedWorkloads.append(
                    self._added(name, workload)
                )
        self._store_initial(changes.added)
        for agent, update in per_agent.items():
            self._push(agent, pb.FromServer(updateWorkload=update))
        if unscheduled_removed:
            self._forward(unscheduled_removed, source=None)
        self._notify()
        return pb.UpdateStateSuccess(
            addedWorkloads=[instance_text(instance_name(n, w)) for n, w in changes.added],
            deletedWorkloads=[instance_text(instance_name(n, w)) for n, w in changes.deleted],
        )

    def _store_and_forward(self, states: list[pb.WorkloadState], source: str | None) -> None:
        for state in states:
            key = key_of(state.instanceName)
            if state.executionState.WhichOneof("ExecutionStateEnum") == "removed":
                self._states.pop(key, None)
                self._graph.forget(state.instanceName.workloadName)
            else:
                self._states[key] = state
        self._forward(states, source)

    def _forward(self, states: list[pb.WorkloadState], source: str | None) -> None:
        for agent in list(self._connections):
            if agent == source:
                continue
            theirs = [s for s in states if s.instanceName.agentName != agent]
            if theirs:
                self._push(
                    agent, pb.FromServer(updateWorkloadState=pb.UpdateWorkloadState(workloadStates=theirs))
                )

    def _agent_disconnected(self, agent: str) -> None:
        self.disconnects[agent] = self.disconnects.get(agent, 0) + 1
        changed = []
        for state in self._states.values():
            if state.instanceName.agentName == agent:
                state.executionState.CopyFrom(pb.ExecutionState(agentDisconnected=pb.AGENT_DISCONNECTED))
                changed.append(state)
        if changed:
            self._forward(changed, source=agent)

    def _notify(self) -> None:
        # Wake every waiter once; each re-checks its predicate and waits on the new event.
        self._changed.set()
        self._changed = asyncio.Event()
