"""Protobuf <-> domain conversion of the v1.0.1 server stream (grpc_api + ank_base).

Everything the connection receives goes through :func:`from_server`; everything
it sends through :func:`to_server` (the hello is built in ``dialect_v1.hello``).

Decoding is strict, like the v1.0.1 reference: a message that breaks the
contract anywhere is rejected as a whole with a :class:`ConversionError` that
names the workload, so nothing of it is applied. The caller logs and drops it.
Contract breaches are: a missing instance name, workload or execution state;
a Workload without ``agent``, ``runtime`` or ``runtimeConfig`` (their presence
is explicit on the wire); an ExecutionState without ``additionalInfo`` or
without a state; any enum number the contract does not define; an access rule
without a rule; a file without content; a logs request without its body.
Absent ``restartPolicy`` means NEVER; absent dependencies, tags, access rules,
configs and files mean empty.

Responses to workloads are not looked into: they travel as opaque bytes with
the request id taken out. Only the answer to the agent's own request (id
starting with ``AGENT_REQUEST_PREFIX``) is decoded into a ``DesiredState``.

Encoding always *assigns* the ExecutionState oneof member (even value 0) and
``additionalInfo`` (even ``""``): the server drops a state without them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import TypeVar, cast

from google.protobuf.message import DecodeError

from ankaios_agent.agent.errors import ConversionError
from ankaios_agent.agent.model import (
    AGENT_REQUEST_PREFIX,
    AccessRule,
    AccessRules,
    AddCondition,
    AgentLoadStatus,
    Base64Content,
    DeleteCondition,
    DeleteRequest,
    DesiredState,
    DesiredStateRequest,
    ExecutionState,
    FromServerMessageV1,
    InstanceName,
    LogEntries,
    LogRule,
    LogsCancelRequest,
    LogsRequest,
    LogsStopped,
    Operation,
    Request,
    Response,
    RestartPolicy,
    ServerHello,
    State,
    StateRule,
    TextContent,
    ToServerMessageV1,
    UpdateWorkload,
    UpdateWorkloadState,
    WorkloadFile,
    WorkloadSpec,
    WorkloadState,
)
from ankaios_agent.agent.wire_format import encode_varint, length_delimited, with_id_first
from ankaios_agent.proto import ank_base_pb2 as base
from ankaios_agent.proto import grpc_api_pb2 as api

DESIRED_WORKLOADS_MASK = "desiredState.workloads"

# Domain state -> (oneof field name, enum number). Every State has exactly one row.
_STATE_TO_WIRE: Mapping[State, tuple[str, int]] = {
    State.AGENT_DISCONNECTED: ("agentDisconnected", base.AGENT_DISCONNECTED),
    State.PENDING_INITIAL: ("pending", base.PENDING_INITIAL),
    State.PENDING_WAITING_TO_START: ("pending", base.PENDING_WAITING_TO_START),
    State.PENDING_STARTING: ("pending", base.PENDING_STARTING),
    State.PENDING_STARTING_FAILED: ("pending", base.PENDING_STARTING_FAILED),
    State.RUNNING_OK: ("running", base.RUNNING_OK),
    State.STOPPING: ("stopping", base.STOPPING),
    State.STOPPING_WAITING_TO_STOP: ("stopping", base.STOPPING_WAITING_TO_STOP),
    State.STOPPING_REQUESTED_AT_RUNTIME: ("stopping", base.STOPPING_REQUESTED_AT_RUNTIME),
    State.STOPPING_DELETE_FAILED: ("stopping", base.STOPPING_DELETE_FAILED),
    State.SUCCEEDED_OK: ("succeeded", base.SUCCEEDED_OK),
    State.FAILED_EXEC_FAILED: ("failed", base.FAILED_EXEC_FAILED),
    State.FAILED_UNKNOWN: ("failed", base.FAILED_UNKNOWN),
    State.FAILED_LOST: ("failed", base.FAILED_LOST),
    State.NOT_SCHEDULED: ("notScheduled", base.NOT_SCHEDULED),
    State.REMOVED: ("removed", base.REMOVED),
}
# The exact inverse: no normalisation of unknown numbers in v1.0.1.
_WIRE_TO_STATE: Mapping[tuple[str, int], State] = {wire: state for state, wire in _STATE_TO_WIRE.items()}

# ReadWriteEnum numbers (3 and 4 are not defined) <-> the operation of a state rule.
_OPERATIONS: Mapping[int, Operation] = {
    base.RW_NOTHING: Operation.NOTHING,
    base.RW_READ: Operation.READ,
    base.RW_WRITE: Operation.WRITE,
    base.RW_READ_WRITE: Operation.READ_WRITE,
}
_OPERATION_NUMBERS: Mapping[Operation, int] = {operation: number for number, operation in _OPERATIONS.items()}


# --- small pieces ---------------------------------------------------------------


def instance_id(runtime_config: str) -> str:
    """Lowercase hex sha256 of the rendered runtimeConfig, computed like the server does."""
    return hashlib.sha256(runtime_config.encode("utf-8")).hexdigest()


def instance_name_to_proto(instance: InstanceName) -> base.WorkloadInstanceName:
    return base.WorkloadInstanceName(workloadName=instance.workload, agentName=instance.agent, id=instance.id)


def instance_name_from_proto(wire: base.WorkloadInstanceName) -> InstanceName:
    return InstanceName(workload=wire.workloadName, agent=wire.agentName, id=wire.id)


_E = TypeVar("_E", AddCondition, DeleteCondition, RestartPolicy)


def _enum_value(kind: type[_E], number: int, workload: str, what: str) -> _E:
    try:
        return kind(number)
    except ValueError:
        raise ConversionError(f"workload {workload!r}: {what} has the undefined value {number}") from None


# --- execution states -------------------------------------------------------------


def execution_state_to_proto(state: ExecutionState) -> base.ExecutionState:
    field, number = _STATE_TO_WIRE[state.state]
    # Both assignments set presence, also for "" and 0; the server drops a state without them.
    wire = base.ExecutionState(additionalInfo=state.info)
    setattr(wire, field, number)
    return wire


def execution_state_from_proto(wire: base.ExecutionState, workload: str = "") -> ExecutionState:
    """Raises ConversionError for a missing additionalInfo or state, or an undefined substate."""
    where = f"workload {workload!r}: " if workload else ""
    field = wire.WhichOneof("ExecutionStateEnum")
    if field is None:
        raise ConversionError(f"{where}execution state without a state")
    number: int = getattr(wire, field)
    state = _WIRE_TO_STATE.get((field, number))
    if state is None:
        raise ConversionError(f"{where}execution state {field} has the undefined value {number}")
    if not wire.HasField("additionalInfo"):
        raise ConversionError(f"{where}execution state without additionalInfo")
    return ExecutionState(state, wire.additionalInfo)


def workload_state_to_proto(state: WorkloadState) -> base.WorkloadState:
    return base.WorkloadState(
        instanceName=instance_name_to_proto(state.instance),
        executionState=execution_state_to_proto(state.state),
    )


def workload_state_from_proto(wire: base.WorkloadState) -> WorkloadState:
    if not wire.HasField("instanceName"):
        raise ConversionError("a workload state has no instance name")
    instance = instance_name_from_proto(wire.instanceName)
    if not wire.HasField("executionState"):
        raise ConversionError(f"workload {str(instance)!r}: workload state without execution state")
    return WorkloadState(instance, execution_state_from_proto(wire.executionState, str(instance)))


# --- workloads ----------------------------------------------------------------------


def _access_rule_from_proto(wire: base.AccessRightsRule, workload: str) -> AccessRule:
    kind = wire.WhichOneof("AccessRightsRuleEnum")
    if kind == "stateRule":
        operation = _OPERATIONS.get(wire.stateRule.operation)
        if operation is None:
            number = wire.stateRule.operation
            raise ConversionError(
                f"workload {workload!r}: state rule operation has the undefined value {number}"
            )
        return StateRule(operation=operation, filter_masks=tuple(wire.stateRule.filterMasks))
    if kind == "logRule":
        return LogRule(workload_names=tuple(wire.logRule.workloadNames))
    raise ConversionError(f"workload {workload!r}: control-interface access rule without a rule")


def _access_rule_to_proto(rule: AccessRule) -> base.AccessRightsRule:
    if isinstance(rule, StateRule):
        return base.AccessRightsRule(
            stateRule=base.StateRule(
                operation=cast("base.ReadWriteEnum", _OPERATION_NUMBERS[rule.operation]),
                filterMasks=rule.filter_masks,
            )
        )
    return base.AccessRightsRule(logRule=base.LogRule(workloadNames=rule.workload_names))


def _access_from_proto(wire: base.ControlInterfaceAccess, workload: str) -> AccessRules:
    return AccessRules(
        allow=tuple(_access_rule_from_proto(r, workload) for r in wire.allowRules),
        deny=tuple(_access_rule_from_proto(r, workload) for r in wire.denyRules),
    )


def _file_from_proto(wire: base.File, workload: str) -> WorkloadFile:
    kind = wire.WhichOneof("FileContent")
    if kind is None:
        raise ConversionError(f"workload {workload!r}: file {wire.mountPoint!r} has no content")
    if kind == "data":
        return WorkloadFile(mount_point=wire.mountPoint, content=TextContent(wire.data))
    return WorkloadFile(mount_point=wire.mountPoint, content=Base64Content(wire.binaryData))


def _file_to_proto(file: WorkloadFile) -> base.File:
    if isinstance(file.content, TextContent):
        return base.File(mountPoint=file.mount_point, data=file.content.text)
    return base.File(mountPoint=file.mount_point, binaryData=file.content.encoded)


def workload_spec_from_proto(instance: InstanceName, wire: base.Workload) -> WorkloadSpec:
    """A rendered ank_base.Workload under its instance name; ConversionError names the workload."""
    name = instance.workload
    for required in ("agent", "runtime", "runtimeConfig"):
        if not wire.HasField(required):
            raise ConversionError(f"workload {name!r}: {required} is missing")
    restart = RestartPolicy.NEVER
    if wire.HasField("restartPolicy"):
        restart = _enum_value(RestartPolicy, wire.restartPolicy, name, "restartPolicy")
    dependencies = {
        dep: _enum_value(AddCondition, number, name, f"add condition on {dep!r}")
        for dep, number in wire.dependencies.dependencies.items()
    }
    return WorkloadSpec(
        instance=instance,
        runtime=wire.runtime,
        runtime_config=wire.runtimeConfig,
        restart_policy=restart,
        dependencies=dependencies,
        # A map has no order on the wire: key order makes equal tags compare equal.
        tags=tuple(sorted(wire.tags.tags.items())),
        configs=dict(wire.configs.configs),
        files=tuple(_file_from_proto(f, name) for f in wire.files.files),
        control_interface_access=_access_from_proto(wire.controlInterfaceAccess, name),
    )


def workload_to_proto(spec: WorkloadSpec) -> base.Workload:
    """The ank_base.Workload of ``spec``, every wrapper and every optional field set."""
    return base.Workload(
        agent=spec.instance.agent,
        restartPolicy=cast("base.RestartPolicy", spec.restart_policy.value),
        dependencies=base.Dependencies(
            dependencies={d: cast("base.AddCondition", c.value) for d, c in spec.dependencies.items()}
        ),
        tags=base.Tags(tags=dict(spec.tags)),
        runtime=spec.runtime,
        runtimeConfig=spec.runtime_config,
        controlInterfaceAccess=base.ControlInterfaceAccess(
            allowRules=[_access_rule_to_proto(r) for r in spec.control_interface_access.allow],
            denyRules=[_access_rule_to_proto(r) for r in spec.control_interface_access.deny],
        ),
        configs=base.ConfigMappings(configs=dict(spec.configs)),
        files=base.Files(files=[_file_to_proto(f) for f in spec.files]),
    )


def added_workload_from_proto(wire: api.AddedWorkload) -> WorkloadSpec:
    if not wire.HasField("instanceName"):
        name = wire.workload.agent if wire.HasField("workload") else ""
        raise ConversionError(f"an added workload has no instance name (agent {name!r})")
    instance = instance_name_from_proto(wire.instanceName)
    if not wire.HasField("workload"):
        raise ConversionError(f"workload {instance.workload!r}: added without its workload")
    return workload_spec_from_proto(instance, wire.workload)


def added_workload_to_proto(spec: WorkloadSpec) -> api.AddedWorkload:
    return api.AddedWorkload(
        instanceName=instance_name_to_proto(spec.instance), workload=workload_to_proto(spec)
    )


def deleted_workload_from_proto(wire: api.DeletedWorkload) -> DeleteRequest:
    if not wire.HasField("instanceName"):
        raise ConversionError("a deleted workload has no instance name")
    instance = instance_name_from_proto(wire.instanceName)
    deps = {
        dep: _enum_value(DeleteCondition, number, instance.workload, f"delete condition on {dep!r}")
        for dep, number in wire.dependencies.items()
    }
    return DeleteRequest(instance=instance, dependencies=deps)


def deleted_workload_to_proto(request: DeleteRequest) -> api.DeletedWorkload:
    return api.DeletedWorkload(
        instanceName=instance_name_to_proto(request.instance),
        dependencies={d: cast("api.DeleteCondition", c.value) for d, c in request.dependencies.items()},
    )


# --- responses ----------------------------------------------------------------------


def _desired_state(wire: base.Response, agent_name: str) -> DesiredState:
    """The answer to the agent's own request for ``desiredState.workloads``.

    The desired state holds the workloads as written, before the server renders
    their templates, so the id of a workload with configs cannot be reproduced
    here; such a snapshot is reported as unusable instead of guessed.
    """
    request_id = wire.requestId
    content = wire.WhichOneof("ResponseContent")
    if content == "error":
        return DesiredState(request_id=request_id, error=wire.error.message or "error without message")
    if content != "completeStateResponse":
        return DesiredState(
            request_id=request_id, error=f"unexpected {content} answer to the agent's request"
        )
    workloads = wire.completeStateResponse.completeState.desiredState.workloads.workloads
    specs: list[WorkloadSpec] = []
    try:
        for name, workload in sorted(workloads.items()):
            if workload.agent != agent_name:
                continue
            if workload.configs.configs:
                raise ConversionError(
                    f"workload {name!r} uses configs; its rendered id is the server's to tell"
                )
            instance = InstanceName(workload=name, agent=agent_name, id=instance_id(workload.runtimeConfig))
            specs.append(workload_spec_from_proto(instance, workload))
    except ConversionError as err:
        return DesiredState(request_id=request_id, error=str(err))
    return DesiredState(request_id=request_id, workloads=tuple(specs))


def _response_from_proto(wire: base.Response, agent_name: str) -> Response | DesiredState:
    if wire.requestId.startswith(AGENT_REQUEST_PREFIX):
        return _desired_state(wire, agent_name)
    body = base.Response()
    body.CopyFrom(wire)
    body.ClearField("requestId")
    return Response(request_id=wire.requestId, body=body.SerializeToString())


def response_to_proto(response: Response) -> base.Response:
    """The ank_base.Response of ``response`` with its id; ConversionError for a body that is none."""
    wire = base.Response()
    try:
        wire.ParseFromString(response.body)
    except DecodeError as err:
        raise ConversionError(f"response {response.request_id!r} has an undecodable body: {err}") from err
    wire.requestId = response.request_id
    return wire


# --- logs -----------------------------------------------------------------------------


def _logs_request_from_proto(wire: api.LogsRequest) -> LogsRequest:
    if not wire.HasField("logsRequest"):
        raise ConversionError(f"logs request {wire.requestId!r} without its content")
    inner = wire.logsRequest
    return LogsRequest(
        request_id=wire.requestId,
        workloads=tuple(instance_name_from_proto(n) for n in inner.workloadNames),
        follow=inner.follow,
        tail=inner.tail if inner.HasField("tail") else None,
        since=inner.since if inner.HasField("since") else None,
        until=inner.until if inner.HasField("until") else None,
    )


def _logs_request_to_proto(request: LogsRequest) -> api.LogsRequest:
    inner = base.LogsRequest(workloadNames=[instance_name_to_proto(i) for i in request.workloads])
    inner.follow = request.follow
    if request.tail is not None:
        inner.tail = request.tail
    if request.since is not None:
        inner.since = request.since
    if request.until is not None:
        inner.until = request.until
    return api.LogsRequest(requestId=request.request_id, logsRequest=inner)


# --- what the server sends ------------------------------------------------------------


def _added(wires: Iterable[api.AddedWorkload]) -> tuple[WorkloadSpec, ...]:
    return tuple(added_workload_from_proto(a) for a in wires)


def from_server(wire: api.FromServer, agent_name: str) -> FromServerMessageV1:
    """Decode one FromServer message; ConversionError (naming the workload) rejects all of it."""
    content = wire.WhichOneof("FromServerEnum")
    if content == "serverHello":
        return ServerHello(added=_added(wire.serverHello.addedWorkloads))
    if content == "updateWorkload":
        return UpdateWorkload(
            added=_added(wire.updateWorkload.addedWorkloads),
            deleted=tuple(deleted_workload_from_proto(d) for d in wire.updateWorkload.deletedWorkloads),
        )
    if content == "updateWorkloadState":
        states = wire.updateWorkloadState.workloadStates
        return UpdateWorkloadState(tuple(workload_state_from_proto(s) for s in states))
    if content == "response":
        return _response_from_proto(wire.response, agent_name)
    if content == "logsRequest":
        return _logs_request_from_proto(wire.logsRequest)
    if content == "logsCancelRequest":
        return LogsCancelRequest(request_id=wire.logsCancelRequest.requestId)
    raise ConversionError("a message from the server without content")


def decode_from_server(data: bytes, agent_name: str) -> FromServerMessageV1:
    """:func:`from_server` for raw bytes; undecodable bytes are a ConversionError too."""
    wire = api.FromServer()
    try:
        wire.ParseFromString(data)
    except DecodeError as err:
        raise ConversionError(f"undecodable message from the server: {err}") from err
    return from_server(wire, agent_name)


def from_server_to_proto(msg: FromServerMessageV1) -> api.FromServer:
    """The server's side of :func:`from_server`, for test servers and round trips."""
    if isinstance(msg, ServerHello):
        return api.FromServer(
            serverHello=api.ServerHello(addedWorkloads=[added_workload_to_proto(s) for s in msg.added])
        )
    if isinstance(msg, UpdateWorkload):
        return api.FromServer(
            updateWorkload=api.UpdateWorkload(
                addedWorkloads=[added_workload_to_proto(s) for s in msg.added],
                deletedWorkloads=[deleted_workload_to_proto(d) for d in msg.deleted],
            )
        )
    if isinstance(msg, UpdateWorkloadState):
        return api.FromServer(
            updateWorkloadState=api.UpdateWorkloadState(
                workloadStates=[workload_state_to_proto(s) for s in msg.states]
            )
        )
    if isinstance(msg, Response):
        return api.FromServer(response=response_to_proto(msg))
    if isinstance(msg, LogsRequest):
        return api.FromServer(logsRequest=_logs_request_to_proto(msg))
    if isinstance(msg, LogsCancelRequest):
        return api.FromServer(logsCancelRequest=api.LogsCancelRequest(requestId=msg.request_id))
    raise ConversionError(f"{type(msg).__name__} is the agent's own view and has no wire form")


# --- what the agent sends -------------------------------------------------------------


def request_to_proto(request: Request) -> base.Request:
    """The ank_base.Request to forward; ConversionError for anything the server must not get.

    The v1.0.1 server ends the agent's whole connection on a request without
    content or an update without ``newState``, so those never leave the agent.
    """
    try:
        wire = base.Request.FromString(request.body)
    except DecodeError as err:
        raise ConversionError(
            f"request {request.request_id!r} has a body that is not a Request: {err}"
        ) from err
    content = wire.WhichOneof("RequestContent")
    if content is None:
        raise ConversionError(f"request {request.request_id!r} has no content")
    if content == "updateStateRequest" and not wire.updateStateRequest.HasField("newState"):
        raise ConversionError(f"request {request.request_id!r} updates the state without a new state")
    wire.requestId = request.request_id
    return wire


def _uint(value: int, bits: int, what: str) -> int:
    if not 0 <= value < 1 << bits:
        raise ConversionError(f"{what} {value} does not fit an unsigned {bits}-bit field")
    return value


def to_server(msg: ToServerMessageV1) -> api.ToServer:
    """Encode one outgoing message; ConversionError for a message the server must not get."""
    if isinstance(msg, WorkloadState):
        # Exactly one state per message, like the reference agent.
        return api.ToServer(
            updateWorkloadState=api.UpdateWorkloadState(workloadStates=[workload_state_to_proto(msg)])
        )
    if isinstance(msg, Request):
        return api.ToServer(request=request_to_proto(msg))
    if isinstance(msg, DesiredStateRequest):
        return api.ToServer(
            request=base.Request(
                requestId=msg.request_id,
                completeStateRequest=base.CompleteStateRequest(fieldMask=[DESIRED_WORKLOADS_MASK]),
            )
        )
    if isinstance(msg, AgentLoadStatus):
        return api.ToServer(
            AgentLoadStatus=api.AgentLoadStatus(
                agent_name=msg.agent_name,
                cpu_usage=base.CpuUsage(cpu_usage=_uint(msg.cpu_usage, 32, "cpu usage")),
                free_memory=base.FreeMemory(free_memory=_uint(msg.free_memory, 64, "free memory")),
            )
        )
    if isinstance(msg, LogEntries):
        return api.ToServer.FromString(_log_entries_wire(msg))
    if isinstance(msg, LogsStopped):
        return api.ToServer(
            logsStopResponse=api.LogsStopResponse(
                requestId=msg.request_id,
                logsStopResponse=base.LogsStopResponse(workloadName=instance_name_to_proto(msg.instance)),
            )
        )
    raise ConversionError(f"{type(msg).__name__} has no v1.0.1 wire form")


def encode(msg: ToServerMessageV1) -> api.ToServer | bytes:
    """:func:`to_server` as the connection sends it: the messages put together as bytes stay bytes.

    A workload's request leaves as the body its codec serialized, with the routed id in
    front, and a batch of log entries as the bytes encoded below: neither is parsed into
    a message only to be serialized again. A body's first key is its content (the codec
    serializes the Request without its id), so a body that does not start with one of
    the contents, and every update (which must carry a new state), still goes through
    :func:`request_to_proto` and its checks.
    """
    if isinstance(msg, Request):
        if msg.body[:1] in _CONTENT_NEEDS_NO_CHECK:
            return with_id_first(_TO_SERVER_REQUEST, _REQUEST_REQUEST_ID, msg.request_id, msg.body)
        return to_server(msg)
    if isinstance(msg, LogEntries):
        return _log_entries_wire(msg)
    return to_server(msg)


# --- log entries, encoded by hand ---------------------------------------------------------------
# A fast log makes hundreds of thousands of entries a second. Building one LogEntry message per
# line costs more than everything else on the way to the server, so the wire bytes are put
# together here (a LogEntry is the workload name, the same for a whole batch, and the line) and
# parsed into the message once per batch.


def _tag(message: type, field: str) -> bytes:
    """The key of a length-delimited field (wire type 2) with a number below 16."""
    number = message.DESCRIPTOR.fields_by_name[field].number  # type: ignore[attr-defined]
    assert 0 < number < 16, "a one-byte key"
    return bytes([number << 3 | 2])


_TO_SERVER_REQUEST = _tag(api.ToServer, "request")
_REQUEST_REQUEST_ID = _tag(base.Request, "requestId")
# The keys of every request content but the update, whose new state must be checked.
_CONTENT_NEEDS_NO_CHECK = frozenset(
    _tag(base.Request, field.name)
    for field in base.Request.DESCRIPTOR.oneofs_by_name["RequestContent"].fields
    if field.name != "updateStateRequest"
)
_TO_SERVER_LOG_ENTRIES = _tag(api.ToServer, "logEntriesResponse")
_REQUEST_ID = _tag(api.LogEntriesResponse, "requestId")
_INNER_RESPONSE = _tag(api.LogEntriesResponse, "logEntriesResponse")
_LOG_ENTRY = _tag(base.LogEntriesResponse, "logEntries")
_WORKLOAD_NAME = _tag(base.LogEntry, "workloadName")
_MESSAGE = _tag(base.LogEntry, "message")


def _log_entries_wire(msg: LogEntries) -> bytes:
    """``ToServer{logEntriesResponse}`` for ``msg``, serialized."""
    parts: list[bytes] = []
    instance: InstanceName | None = None
    name = b""
    prefixes: dict[int, bytes] = {}  # message length -> everything of the entry before the message
    try:
        for entry in msg.entries:
            if entry.instance is not instance and entry.instance != instance:
                instance = entry.instance
                name = length_delimited(_WORKLOAD_NAME, instance_name_to_proto(instance).SerializeToString())
                prefixes = {}
            text = entry.message.encode("utf-8")
            length = len(text)
            prefix = prefixes.get(length)
            if prefix is None:
                message_key = _MESSAGE + encode_varint(length) if length else b""  # proto3 leaves "" out
                entry_length = len(name) + len(message_key) + length
                prefix = _LOG_ENTRY + encode_varint(entry_length) + name + message_key
                prefixes[length] = prefix
            parts.append(prefix)
            parts.append(text)
        request_id = msg.request_id.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ConversionError(
            f"log entries for request {msg.request_id!r} are not valid text: {err}"
        ) from None
    inner = length_delimited(_REQUEST_ID, request_id) if request_id else b""
    inner += length_delimited(_INNER_RESPONSE, b"".join(parts))
    return length_delimited(_TO_SERVER_LOG_ENTRIES, inner)
