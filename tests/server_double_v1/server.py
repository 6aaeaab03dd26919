"""A protocol-faithful stand-in for the v1.0.1 ank-server, on a loopback port.

What it does, as the real server:

* transport: plain HTTP/2, or mutual TLS when given a CA, a certificate and a
  key (client certificates are mandatory then). Per call, before anything is
  read, more than one peer certificate or no subjectAltName is refused with
  UNAUTHENTICATED;
* the first message must be an AgentHello (an empty one: INVALID_ARGUMENT
  "Empty"; another kind: INVALID_ARGUMENT "No AgentHello received."); its
  protocolVersion must be semver with major 1, otherwise FAILED_PRECONDITION
  "Unsupported protocol version '<v>'. Currently supported '1'"; then the agent
  name must be one of the certificate's DNS names or ``*`` is listed;
* hello reply: one updateWorkloadState with the states of workloads not on
  this agent, distributed to every connected agent filtered to what is not
  theirs, then always a serverHello with the agent's workloads; the agent's
  entry in ``agents`` is created afresh with the hello's tags;
* updateWorkloadState: each state the strict conversion takes is stored under
  its instance name (``Removed`` deletes it, forgets the delete-graph entry and
  the workload's event subscriptions), the others are skipped; the list goes
  on to every other agent without the receiver's own states;
* requests: the id gets ``<agent>@`` inside and loses it in the answer;
  CompleteStateRequest applies the field masks; UpdateStateRequest applies the
  update masks, sends UpdateWorkload with delete conditions and answers
  UpdateStateSuccess or Error; LogsRequest goes to the owning agents and is
  answered with LogsRequestAccepted, their entries come back as responses;
  LogsCancelRequest goes to every agent; a subscribing CompleteStateRequest
  gets its answer and then an event (the changed parts and AlteredFields) for
  every change within its masks;
* AgentLoadStatus is stored under its own ``agent_name`` if that agent said hello;
* a request without content, an UpdateStateRequest without newState or a
  ToServer without content breaks the agent (AgentGone) and ends the call;
* the request stream failing (agent killed, call cancelled) is AgentGone: the
  agent leaves ``agents``, its states become AgentDisconnected and go to the
  others, its log campaigns are cancelled; a clean end of the request stream
  or a Goodbye only stops reading.

Test API (coroutines run on the test's event loop): ``start``, ``stop``,
``restart`` (same port; states start over from the desired state),
``set_state``, ``set_desired``, ``apply_manifest``, ``delete_workload``,
``complete_state``, ``wait_until``, ``wait_for_state``, ``wait_for_agent``,
``send``, ``request_logs`` / ``cancel_logs`` with ``log_responses``,
``subscribe`` / ``unsubscribe`` with ``events``; the
per-agent logs ``received`` / ``sent`` / ``hellos``, ``refusals``,
``disconnects`` (AgentGone), ``clean_ends`` (clean end or Goodbye),
``states``, ``agents`` and ``subscriptions``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio

from ankaios_agent.proto import ank_base_pb2 as base
from ankaios_agent.proto import grpc_api_pb2 as api
from ankaios_agent.proto import grpc_api_pb2_grpc as api_grpc
from tests.server_double_v1 import peer, tree
from tests.server_double_v1.campaigns import LogCampaigns
from tests.server_double_v1.events import events_since
from tests.server_double_v1.state import (
    API_VERSION,
    SUPPORTED_MAJOR,
    DeleteGraph,
    Instance,
    StateError,
    StateView,
    apply_update,
    diff,
    instance_key,
    instance_of,
    instance_proto,
    protocol_version_supported,
    rendered_state,
    state_from_yaml,
    unsupported_version_message,
    valid_workload_state,
    validated,
    view,
)

logger = logging.getLogger("server_double_v1")

# tonic's defaults: a single received message over 4 MiB breaks the stream, sending has no limit.
MAX_RECEIVE = 4 * 1024 * 1024
SERVER_OPTIONS = [
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", MAX_RECEIVE),
    ("grpc.max_send_message_length", -1),
]
CLI_PREFIX = "cli-conn"


@dataclass(frozen=True)
class TlsMaterial:
    """PEM bytes of the CA that signs client certificates and of the server's own identity."""

    ca: bytes
    cert: bytes
    key: bytes


@dataclass(frozen=True)
class Refusal:
    """A call the double refused, as the agent saw it."""

    agent: str
    code: grpc.StatusCode
    message: str


class _Broken(Exception):
    """The agent sent something the server's reader cannot take; it treats the agent as gone."""


@dataclass
class _Connection:
    agent: str
    queue: asyncio.Queue[api.FromServer | None] = field(default_factory=asyncio.Queue)
    handler: asyncio.Task[Any] | None = None
    sender_dropped: bool = False


def _es(**member: int) -> base.ExecutionState:
    """A server-made ExecutionState: additionalInfo present and empty, one oneof member set."""
    es = base.ExecutionState(additionalInfo="")
    for name, value in member.items():
        setattr(es, name, value)
    return es


class ServerDoubleV1(api_grpc.AgentConnectionServicer):
    CLEAN_END_GRACE = 0.5  # seconds

    def __init__(
        self, desired: base.State | None = None, host: str = "127.0.0.1", tls: TlsMaterial | None = None
    ) -> None:
        self._host = host
        self._tls = tls
        self._port = 0
        self._server: grpc.aio.Server | None = None
        self.desired = validated(desired or base.State(apiVersion=API_VERSION))
        self._states: dict[Instance, base.ExecutionState] = {}
        self._graph = DeleteGraph()
        self._connections: dict[str, _Connection] = {}
        self.agents: dict[str, base.AgentAttributes] = {}
        self._campaigns = LogCampaigns()
        self.subscriptions: dict[str, list[str]] = {}
        self.events: dict[str, list[base.Response]] = {}
        self._published: tree.Tree = {}
        self.log_responses: dict[str, list[base.Response]] = {}
        self._cli_ids = itertools.count(1)
        self._changed = asyncio.Event()
        self._stopping = False
        self.received: dict[str, list[api.ToServer]] = {}
        self.sent: dict[str, list[api.FromServer]] = {}
        self.hellos: dict[str, list[api.AgentHello]] = {}
        self.refusals: list[Refusal] = []
        # The protocol major version this server accepts; a test sets another one to play a
        # server of another release (and sets it back to play its upgrade).
        self.supported_major = SUPPORTED_MAJOR
        self.disconnects: dict[str, int] = {}
        self.clean_ends: dict[str, int] = {}
        self._reset_states()

    # --- lifecycle -------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        return f"{self._host}:{self._port}"

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self.address}"

    async def start(self, port: int = 0) -> int:
        """Listen on ``port`` (0: any free port) and return the port."""
        server = grpc.aio.server(options=SERVER_OPTIONS)
        api_grpc.add_AgentConnectionServicer_to_server(self, server)
        target = f"{self._host}:{port}"
        if self._tls is None:
            bound: int = server.add_insecure_port(target)
        else:
            credentials = grpc.ssl_server_credentials(
                [(self._tls.key, self._tls.cert)], root_certificates=self._tls.ca, require_client_auth=True
            )
            bound = server.add_secure_port(target, credentials)
        if bound == 0:
            raise OSError(f"cannot listen on {target}")
        await server.start()
        self._server, self._port, self._stopping = server, bound, False
        logger.info("v1.0.1 server double listening on %s", self.url)
        return bound

    async def stop(self) -> None:
        """Stop listening and break every stream (the agents see an error)."""
        if self._server is None:
            return
        self._stopping = True
        await self._server.stop(grace=None)
        self._server = None
        self._connections.clear()
        self.agents.clear()
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
        self._campaigns.clear()
        self.subscriptions.clear()
        added = list(self.rendered_desired.workloads.workloads.items())
        self._graph.insert(added)
        self._store_initial(added)
        self._published = tree.to_tree(self.complete_state())

    # --- observation -----------------------------------------------------------

    @property
    def rendered_desired(self) -> base.State:
        """The desired state with every workload as its agent receives it."""
        return rendered_state(self.desired)

    @property
    def states(self) -> dict[Instance, StateView]:
        return {inst: view(es) for inst, es in self._states.items()}

    @property
    def connected_agents(self) -> set[str]:
        return set(self._connections)

    def state_of(self, workload: str, agent: str | None = None) -> list[StateView]:
        return [
            view(es)
            for inst, es in self._states.items()
            if inst.workload == workload and (agent is None or inst.agent == agent)
        ]

    def complete_state(self, field_mask: Iterable[str] = ()) -> base.CompleteState:
        """The CompleteState a request with ``field_mask`` gets (empty: everything)."""
        whole = base.CompleteState(desiredState=self.desired)
        whole.workloadStates.SetInParent()
        for inst, es in self._states.items():
            by_agent = whole.workloadStates.agentStateMap[inst.agent]
            by_agent.wlNameStateMap[inst.workload].idStateMap[inst.id].CopyFrom(es)
        whole.agents.SetInParent()
        for name, attributes in self.agents.items():
            whole.agents.agents[name].CopyFrom(attributes)
        masks = list(field_mask)
        if not masks:
            return whole
        return tree.from_tree(tree.select(tree.to_tree(whole), masks), base.CompleteState)

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

    # --- driving it like `ank` -------------------------------------------------

    async def set_state(
        self, new: base.CompleteState, update_mask: Iterable[str] = ()
    ) -> base.UpdateStateSuccess:
        """Like ``ank set state``; raises StateError for what the server refuses."""
        return self._update(new, list(update_mask))

    async def set_desired(self, desired: base.State) -> base.UpdateStateSuccess:
        return self._update(base.CompleteState(desiredState=desired), [])

    async def apply_manifest(self, text: str) -> base.UpdateStateSuccess:
        """Like ``ank apply``: add or replace the manifest's workloads, keep the others."""
        manifest = state_from_yaml(text)
        new = base.CompleteState(desiredState=manifest)
        masks = [f"desiredState.workloads.{name}" for name in sorted(manifest.workloads.workloads)]
        return self._update(new, masks or ["desiredState.workloads"])

    async def delete_workload(self, name: str) -> base.UpdateStateSuccess:
        """Like ``ank delete workload <name>``."""
        return self._update(base.CompleteState(), [f"desiredState.workloads.{name}"])

    async def send(self, agent: str, msg: api.FromServer) -> None:
        """Send any FromServer to a connected agent (for protocol tests)."""
        self._push(agent, msg)

    async def request_logs(
        self,
        names: Iterable[base.WorkloadInstanceName],
        *,
        follow: bool | None = None,
        tail: int | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> str:
        """Like ``ank logs``: start a campaign; its responses collect in ``log_responses[id]``."""
        request_id = f"{CLI_PREFIX}-double@{next(self._cli_ids)}"
        logs = base.LogsRequest(workloadNames=list(names))
        for key, value in (("follow", follow), ("tail", tail), ("since", since), ("until", until)):
            if value is not None:
                setattr(logs, key, value)
        self.log_responses[request_id] = [self._start_logs(request_id, None, logs)]
        self._notify()
        return request_id

    async def subscribe(self, field_mask: Iterable[str] = ()) -> str:
        """Like ``ank get events``: the first answer and every event collect in ``events[id]``."""
        request_id = f"{CLI_PREFIX}-double@{next(self._cli_ids)}"
        masks = list(field_mask)
        first = base.Response(requestId=request_id)
        first.completeStateResponse.completeState.CopyFrom(self.complete_state(masks))
        self.events[request_id] = [first]
        self._subscribe(request_id, masks)
        self._notify()
        return request_id

    async def unsubscribe(self, request_id: str) -> None:
        self.subscriptions.pop(request_id, None)

    async def cancel_logs(self, request_id: str) -> None:
        self._cancel_logs(request_id)
        self._notify()

    # --- the gRPC service ------------------------------------------------------

    async def ConnectAgent(self, request_iterator: object, context: grpc.aio.ServicerContext) -> None:  # noqa: N802
        dns_names: tuple[str, ...] = ()
        if self._tls is not None:
            checked = peer.check_peer(context.auth_context())
            if checked.refusal is not None:
                await self._refuse(context, "", grpc.StatusCode.UNAUTHENTICATED, checked.refusal)
            dns_names = checked.dns_names
        first = await context.read()
        if first is grpc.aio.EOF or first.WhichOneof("ToServerEnum") is None:
            await self._refuse(context, "", grpc.StatusCode.INVALID_ARGUMENT, "Empty")
        if first.WhichOneof("ToServerEnum") != "agentHello":
            await self._refuse(context, "", grpc.StatusCode.INVALID_ARGUMENT, "No AgentHello received.")
        hello = first.agentHello
        agent = hello.agentName
        self.received.setdefault(agent, []).append(first)
        self.hellos.setdefault(agent, []).append(hello)
        if not protocol_version_supported(hello.protocolVersion, self.supported_major):
            logger.info(
                "Refused connection from agent '%s' due to unsupported version: '%s'",
                agent,
                hello.protocolVersion,
            )
            await self._refuse(
                context,
                agent,
                grpc.StatusCode.FAILED_PRECONDITION,
                unsupported_version_message(hello.protocolVersion, self.supported_major),
            )
        refusal = peer.name_refusal(agent, dns_names) if self._tls is not None else None
        if refusal is not None:
            await self._refuse(context, agent, grpc.StatusCode.UNAUTHENTICATED, refusal)
        await self._serve(agent, hello, context)

    async def _refuse(
        self, context: grpc.aio.ServicerContext, agent: str, code: grpc.StatusCode, message: str
    ) -> None:
        self.refusals.append(Refusal(agent, code, message))
        self._notify()
        await context.abort(code, message)

    async def _serve(self, agent: str, hello: api.AgentHello, context: grpc.aio.ServicerContext) -> None:
        conn = _Connection(agent)
        self._connections[agent] = conn  # a second hello with the same name replaces the old sender
        # A fresh entry: the hello's tags, no status until the first AgentLoadStatus.
        self.agents[agent] = base.AgentAttributes(tags=base.Tags(tags=dict(hello.tags.tags)))
        await context.send_initial_metadata(())
        self._hello_reply(agent)
        self._publish()
        self._notify()
        conn.handler = asyncio.current_task()
        writer = asyncio.ensure_future(self._write(conn, context))
        gone = clean = False
        try:
            gone = await self._read(agent, context)
            if not gone:
                # grpcio may hand a cancelled call to the handler as a plain end of stream
                # first and cancel it a moment later; only a stream that outlives that
                # moment ended cleanly.
                await asyncio.sleep(self.CLEAN_END_GRACE)
                # Clean end or Goodbye: the server has stopped reading, so a later failure of
                # the call is never noticed and the agent stays listed with its last states.
                clean = True
                self.clean_ends[agent] = self.clean_ends.get(agent, 0) + 1
                self._notify()
                await writer
        except asyncio.CancelledError:
            if not conn.sender_dropped:
                gone = not clean
                raise
            # The name was taken over and then lost: this response stream just ends.
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
        except BaseException:
            gone = not clean
            raise
        finally:
            writer.cancel()
            if gone and not self._stopping:
                self._agent_gone(agent)
                self._publish()
            elif self._connections.get(agent) is conn:
                del self._connections[agent]
            self._notify()

    async def _read(self, agent: str, context: grpc.aio.ServicerContext) -> bool:
        """Read until the stream ends; True if the agent must be treated as gone."""
        while True:
            msg = await context.read()
            if msg is grpc.aio.EOF:
                return False
            self.received[agent].append(msg)
            try:
                if not self._handle(agent, msg):
                    return False
            except _Broken as err:
                logger.warning("agent '%s' sent a message the server cannot take: %s", agent, err)
                return True
            finally:
                self._publish()
                self._notify()

    async def _write(self, conn: _Connection, context: grpc.aio.ServicerContext) -> None:
        while True:
            msg = await conn.queue.get()
            if msg is None:
                conn.sender_dropped = True
                if conn.handler is not None:
                    conn.handler.cancel()
                return
            await context.write(msg)

    def _push(self, agent: str, msg: api.FromServer) -> None:
        conn = self._connections.get(agent)
        if conn is None:
            return
        self.sent.setdefault(agent, []).append(msg)
        conn.queue.put_nowait(msg)
        self._notify()

    def _hello_reply(self, agent: str) -> None:
        others = [
            base.WorkloadState(instanceName=instance_proto(inst), executionState=es)
            for inst, es in self._states.items()
            if inst.agent != agent
        ]
        self._forward(others, source=None)
        added = [
            self._added(name, workload)
            for name, workload in sorted(self.rendered_desired.workloads.workloads.items())
            if workload.agent == agent
        ]
        self._push(agent, api.FromServer(serverHello=api.ServerHello(addedWorkloads=added)))

    def _handle(self, agent: str, msg: api.ToServer) -> bool:
        """Handle one message; False when the server stops reading (Goodbye); _Broken for AgentGone."""
        kind = msg.WhichOneof("ToServerEnum")
        if kind is None:
            raise _Broken("ToServer without content")
        if kind == "updateWorkloadState":
            states = [s for s in msg.updateWorkloadState.workloadStates if valid_workload_state(s)]
            self._store_and_forward(states, source=agent)
        elif kind == "request":
            self._request(agent, msg.request)
        elif kind == "AgentLoadStatus":
            status = msg.AgentLoadStatus
            if status.agent_name in self.agents:
                target = self.agents[status.agent_name].status
                target.cpu_usage.cpu_usage = status.cpu_usage.cpu_usage
                target.free_memory.free_memory = status.free_memory.free_memory
        elif kind == "logEntriesResponse":
            entries = msg.logEntriesResponse
            if entries.HasField("logEntriesResponse"):
                response = base.Response(logEntriesResponse=entries.logEntriesResponse)
                self._route_log_response(entries.requestId, response)
            else:
                logger.warning("agent '%s' sent logEntriesResponse without entries", agent)
        elif kind == "logsStopResponse":
            stop = msg.logsStopResponse
            if stop.HasField("logsStopResponse"):
                self._route_log_response(
                    stop.requestId, base.Response(logsStopResponse=stop.logsStopResponse)
                )
            else:
                logger.warning("agent '%s' sent logsStopResponse without content", agent)
        elif kind == "goodbye":
            return False
        else:
            logger.warning("agent '%s' sent %s on an established stream; ignored", agent, kind)
        return True

    # --- requests --------------------------------------------------------------

    def _request(self, agent: str, request: base.Request) -> None:
        content = request.WhichOneof("RequestContent")
        if content is None:
            raise _Broken("Request without content")
        if content == "updateStateRequest" and not request.updateStateRequest.HasField("newState"):
            raise _Broken("UpdateStateRequest without newState")
        internal_id = f"{agent}@{request.requestId}" if request.requestId else ""
        response = base.Response()
        if content == "completeStateRequest":
            ask = request.completeStateRequest
            response.completeStateResponse.completeState.CopyFrom(self.complete_state(ask.fieldMask))
            if ask.subscribeForEvents:
                self._subscribe(internal_id, list(ask.fieldMask))
        elif content == "updateStateRequest":
            ask_update = request.updateStateRequest
            try:
                success = self._update(ask_update.newState, list(ask_update.updateMask))
            except StateError as err:
                response.error.message = str(err)
            else:
                response.UpdateStateSuccess.CopyFrom(success)
        elif content == "logsRequest":
            response = self._start_logs(internal_id, agent, request.logsRequest)
        elif content == "logsCancelRequest":
            self._cancel_logs(internal_id)
            response.logsCancelAccepted.SetInParent()
        elif content == "eventsCancelRequest":
            self.subscriptions.pop(internal_id, None)
            response.eventsCancelAccepted.SetInParent()
        response.requestId = request.requestId
        self._push(agent, api.FromServer(response=response))

    def _start_logs(self, request_id: str, requester: str | None, logs: base.LogsRequest) -> base.Response:
        workloads = self.rendered_desired.workloads.workloads
        existing = [instance_of(name, w) for name, w in workloads.items() if w.agent]
        started = self._campaigns.start(request_id, requester, logs, existing)
        for provider, part in started.per_agent.items():
            self._push(
                provider, api.FromServer(logsRequest=api.LogsRequest(requestId=request_id, logsRequest=part))
            )
        response = base.Response(requestId=request_id)
        response.logsRequestAccepted.workloadNames.extend(started.kept)
        return response

    def _cancel_logs(self, request_id: str) -> None:
        self._campaigns.forget(request_id)
        for agent in list(self._connections):
            self._push(agent, api.FromServer(logsCancelRequest=api.LogsCancelRequest(requestId=request_id)))

    def _route_log_response(self, request_id: str, response: base.Response) -> None:
        campaign = self._campaigns.get(request_id)
        if campaign is None:
            logger.info("log response for unknown request '%s' dropped", request_id)
            return
        if campaign.requester is None:
            response.requestId = request_id
            self.log_responses.setdefault(request_id, []).append(response)
            return
        response.requestId = request_id.split("@", 1)[1]
        self._push(campaign.requester, api.FromServer(response=response))

    # --- state bookkeeping -----------------------------------------------------

    def _added(self, name: str, workload: base.Workload) -> api.AddedWorkload:
        return api.AddedWorkload(instanceName=instance_proto(instance_of(name, workload)), workload=workload)

    def _store_initial(self, added: Iterable[tuple[str, base.Workload]]) -> None:
        for name, workload in added:
            es = _es(pending=base.PENDING_INITIAL) if workload.agent else _es(notScheduled=base.NOT_SCHEDULED)
            self._states[instance_of(name, workload)] = es

    def _update(self, new: base.CompleteState, mask: list[str]) -> base.UpdateStateSuccess:
        update = apply_update(self.complete_state(), new, mask)
        changes = diff(self.rendered_desired, rendered_state(update.desired))
        self.desired.CopyFrom(update.desired)
        for agent, tags in update.agent_tags.items():
            if agent in self.agents:
                self.agents[agent].tags.CopyFrom(base.Tags(tags=tags))
        self._graph.insert(changes.added)
        per_agent: dict[str, api.UpdateWorkload] = {}
        unscheduled_removed: list[base.WorkloadState] = []
        for name, workload in changes.deleted:
            inst = instance_of(name, workload)
            if not workload.agent:
                self._states.pop(inst, None)
                unscheduled_removed.append(
                    base.WorkloadState(
                        instanceName=instance_proto(inst), executionState=_es(removed=base.REMOVED)
                    )
                )
                continue
            deleted = api.DeletedWorkload(instanceName=instance_proto(inst))
            for dependent, condition in self._graph.conditions(name).items():
                deleted.dependencies[dependent] = condition  # type: ignore[assignment]
            per_agent.setdefault(workload.agent, api.UpdateWorkload()).deletedWorkloads.append(deleted)
        for name, workload in changes.added:
            if workload.agent:
                per_agent.setdefault(workload.agent, api.UpdateWorkload()).addedWorkloads.append(
                    self._added(name, workload)
                )
        self._store_initial(changes.added)
        for agent, workloads in per_agent.items():
            self._push(agent, api.FromServer(updateWorkload=workloads))
        if unscheduled_removed:
            self._forward(unscheduled_removed, source=None)
        self._publish()
        self._notify()
        return base.UpdateStateSuccess(
            addedWorkloads=[instance_of(n, w).text for n, w in changes.added],
            deletedWorkloads=[instance_of(n, w).text for n, w in changes.deleted],
        )

    def _store_and_forward(self, states: list[base.WorkloadState], source: str | None) -> None:
        for state in states:
            inst = instance_key(state.instanceName)
            if state.executionState.WhichOneof("ExecutionStateEnum") == "removed":
                self._states.pop(inst, None)
                self._graph.forget(inst.workload)
                prefix = f"{inst.agent}@{inst.workload}@"
                for request_id in [r for r in self.subscriptions if r.startswith(prefix)]:
                    del self.subscriptions[request_id]
            else:
                self._states[inst] = state.executionState
        self._forward(states, source)

    def _forward(self, states: list[base.WorkloadState], source: str | None) -> None:
        for agent in list(self._connections):
            if agent == source:
                continue
            theirs = [s for s in states if s.instanceName.agentName != agent]
            if theirs:
                self._push(
                    agent, api.FromServer(updateWorkloadState=api.UpdateWorkloadState(workloadStates=theirs))
                )

    def _agent_gone(self, agent: str) -> None:
        self.disconnects[agent] = self.disconnects.get(agent, 0) + 1
        replaced = self._connections.pop(agent, None)
        if replaced is not None:
            # Whoever holds the name now loses its sender too, so its response stream ends.
            replaced.queue.put_nowait(None)
        self.agents.pop(agent, None)
        changed = []
        for inst in self._states:
            if inst.agent == agent:
                self._states[inst] = _es(agentDisconnected=base.AGENT_DISCONNECTED)
                changed.append(
                    base.WorkloadState(instanceName=instance_proto(inst), executionState=self._states[inst])
                )
        if changed:
            self._forward(changed, source=agent)
        for request_id in [r for r in self.subscriptions if r.startswith(f"{agent}@")]:
            del self.subscriptions[request_id]
        cleanup = self._campaigns.agent_gone(agent)
        for request_id in cleanup.cancelled:
            self._cancel_logs(request_id)
        for request_id, name in cleanup.stopped:
            self._route_log_response(
                request_id, base.Response(logsStopResponse=base.LogsStopResponse(workloadName=name))
            )

    # --- events ------------------------------------------------------------------

    def _subscribe(self, request_id: str, masks: list[str]) -> None:
        self._publish()  # what changed before the subscription is not an event of it
        self.subscriptions[request_id] = masks

    def _publish(self) -> None:
        """Send each subscriber the changes since the last call that fall within its masks."""
        now = tree.to_tree(self.complete_state())
        if now == self._published:
            return
        before, self._published = self._published, now
        for request_id, change in events_since(before, now, dict(self.subscriptions)):
            event = base.Response(completeStateResponse=change)
            if request_id.startswith(CLI_PREFIX):
                event.requestId = request_id
                self.events.setdefault(request_id, []).append(event)
            else:
                agent, _, event.requestId = request_id.partition("@")
                self._push(agent, api.FromServer(response=event))

    def _notify(self) -> None:
        # Wake every waiter once; each re-checks its predicate and waits on the new event.
        self._changed.set()
        self._changed = asyncio.Event()
