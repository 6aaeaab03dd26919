"""Protobuf <-> domain conversion of the v0.3.1 dialect: the server stream and control-interface requests.

This module and the control interface's ``codec_v0_3_1`` are the only places
that import the generated code. Everything the connection receives goes through
:func:`from_server`; everything it sends through :func:`to_server` or
:func:`agent_hello`.

Decoding rules of the server stream, all deliberately tolerant so that one
bad message never stops the stream:

* unknown substate numbers are normalised (Pending -> StartingFailed,
  Stopping -> Stopping, Failed -> Unknown, Running/Succeeded -> Ok);
* an ExecutionState without a oneof member is ``Failed(Unknown)``; a
  WorkloadState without executionState is ``Failed(Unknown)`` with the
  reference's text ``Cannot covert, proceeding with unknown``;
* a WorkloadState without instanceName is dropped (Rust panics) with a warning;
* one bad AddedWorkload/DeletedWorkload (no instanceName, enum out of range)
  drops the whole UpdateWorkload, like the reference, but with a WARNING that
  names the workload instead of a debug line;
* a Response without content and a FromServer without content are dropped.

Encoding always *assigns* the oneof enum member, so ``running = RUNNING_OK = 0``
is on the wire (proto3 would otherwise leave the oneof unset).

Control-interface requests are the opposite: they are checked strictly, because
the v0.3.1 server drops the whole agent for a request it cannot convert.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from typing import TypeVar, cast

from ankaios_agent.agent.errors import ConversionError
from ankaios_agent.agent.model import (
    AGENT_REQUEST_PREFIX,
    AddCondition,
    CompleteState,
    CompleteStateRequest,
    DeclaredState,
    DeclaredWorkload,
    DeleteCondition,
    DeleteRequest,
    DesiredState,
    DesiredStateRequest,
    ExecutionState,
    FromServerMessage,
    InstanceName,
    Request,
    RequestContent,
    Response,
    RestartPolicy,
    State,
    ToServerMessage,
    ToServerMessageV1,
    UpdateStateRequest,
    UpdateWorkload,
    UpdateWorkloadState,
    WorkloadSpec,
    WorkloadState,
)
from ankaios_agent.agent.wire_format import with_id_first
from ankaios_agent.proto import ankaios_pb2 as pb

logger = logging.getLogger(__name__)

MISSING_EXECUTION_STATE_INFO = "Cannot covert, proceeding with unknown"  # typo as in v0.3.1
DESIRED_WORKLOADS_MASK = "desiredState.workloads"

# Domain state -> (oneof field name, enum number). Every State has exactly one row.
_STATE_TO_WIRE: Mapping[State, tuple[str, int]] = {
    State.AGENT_DISCONNECTED: ("agentDisconnected", pb.AGENT_DISCONNECTED),
    State.PENDING_INITIAL: ("pending", pb.PENDING_INITIAL),
    State.PENDING_WAITING_TO_START: ("pending", pb.PENDING_WAITING_TO_START),
    State.PENDING_STARTING: ("pending", pb.PENDING_STARTING),
    State.PENDING_STARTING_FAILED: ("pending", pb.PENDING_STARTING_FAILED),
    State.RUNNING_OK: ("running", pb.RUNNING_OK),
    State.STOPPING: ("stopping", pb.STOPPING),
    State.STOPPING_WAITING_TO_STOP: ("stopping", pb.STOPPING_WAITING_TO_STOP),
    State.STOPPING_REQUESTED_AT_RUNTIME: ("stopping", pb.STOPPING_REQUESTED_AT_RUNTIME),
    State.STOPPING_DELETE_FAILED: ("stopping", pb.STOPPING_DELETE_FAILED),
    State.SUCCEEDED_OK: ("succeeded", pb.SUCCEEDED_OK),
    State.FAILED_EXEC_FAILED: ("failed", pb.FAILED_EXEC_FAILED),
    State.FAILED_UNKNOWN: ("failed", pb.FAILED_UNKNOWN),
    State.FAILED_LOST: ("failed", pb.FAILED_LOST),
    State.NOT_SCHEDULED: ("notScheduled", pb.NOT_SCHEDULED),
    State.REMOVED: ("removed", pb.REMOVED),
}

# Oneof field -> (known numbers -> State, fallback for any other number the reference maps).
_WIRE_TO_STATE: Mapping[str, tuple[Mapping[int, State], State]] = {
    "agentDisconnected": ({}, State.AGENT_DISCONNECTED),
    "pending": (
        {
            pb.PENDING_INITIAL: State.PENDING_INITIAL,
            pb.PENDING_WAITING_TO_START: State.PENDING_WAITING_TO_START,
            pb.PENDING_STARTING: State.PENDING_STARTING,
        },
        State.PENDING_STARTING_FAILED,
    ),
    "running": ({}, State.RUNNING_OK),
    "stopping": (
        {
            pb.STOPPING_WAITING_TO_STOP: State.STOPPING_WAITING_TO_STOP,
            pb.STOPPING_REQUESTED_AT_RUNTIME: State.STOPPING_REQUESTED_AT_RUNTIME,
            pb.STOPPING_DELETE_FAILED: State.STOPPING_DELETE_FAILED,
        },
        State.STOPPING,
    ),
    "succeeded": ({}, State.SUCCEEDED_OK),
    "failed": (
        {
            pb.FAILED_EXEC_FAILED: State.FAILED_EXEC_FAILED,
            pb.FAILED_UNKNOWN: State.FAILED_UNKNOWN,
            pb.FAILED_LOST: State.FAILED_LOST,
        },
        State.FAILED_UNKNOWN,
    ),
    "notScheduled": ({}, State.NOT_SCHEDULED),
    "removed": ({}, State.REMOVED),
}


# --- execution states ---------------------------------------------------------


def execution_state_to_proto(state: ExecutionState) -> pb.ExecutionState:
    field, number = _STATE_TO_WIRE[state.state]
    wire = pb.ExecutionState(additionalInfo=state.info)
    # Assign even when number == 0: that is what sets the oneof case.
    setattr(wire, field, number)
    return wire


def execution_state_from_proto(wire: pb.ExecutionState) -> ExecutionState:
    field = wire.WhichOneof("ExecutionStateEnum")
    if field is None:
        return ExecutionState(State.FAILED_UNKNOWN, wire.additionalInfo)
    known, fallback = _WIRE_TO_STATE[field]
    number: int = getattr(wire, field)
    return ExecutionState(known.get(number, fallback), wire.additionalInfo)


def instance_name_to_proto(instance: InstanceName) -> pb.WorkloadInstanceName:
    return pb.WorkloadInstanceName(workloadName=instance.workload, agentName=instance.agent, id=instance.id)


def _instance_name_from_proto(wire: pb.WorkloadInstanceName) -> InstanceName:
    return InstanceName(workload=wire.workloadName, agent=wire.agentName, id=wire.id)


def workload_state_to_proto(state: WorkloadState) -> pb.WorkloadState:
    return pb.WorkloadState(
        instanceName=instance_name_to_proto(state.instance),
        executionState=execution_state_to_proto(state.state),
    )


def workload_state_from_proto(wire: pb.WorkloadState) -> WorkloadState | None:
    """None (with a warning) for an entry without instanceName (the reference crashes on it)."""
    if not wire.HasField("instanceName"):
        logger.warning("dropping a workload state without instance name from the server: %s", _short(wire))
        return None
    if wire.HasField("executionState"):
        state = execution_state_from_proto(wire.executionState)
    else:
        state = ExecutionState(State.FAILED_UNKNOWN, MISSING_EXECUTION_STATE_INFO)
    return WorkloadState(_instance_name_from_proto(wire.instanceName), state)


def _update_workload_state_from_proto(wire: pb.UpdateWorkloadState) -> UpdateWorkloadState:
    states = (workload_state_from_proto(s) for s in wire.workloadStates)
    return UpdateWorkloadState(tuple(s for s in states if s is not None))


# --- workloads ----------------------------------------------------------------


_E = TypeVar("_E", AddCondition, DeleteCondition, RestartPolicy)


def _enum_value(kind: type[_E], number: int, workload: str, what: str) -> _E:
    try:
        return kind(number)
    except ValueError:
        raise ConversionError(f"workload {workload!r}: {what} has invalid value {number}") from None


def _add_conditions(deps: Mapping[str, int], workload: str) -> dict[str, AddCondition]:
    return {
        dep: _enum_value(AddCondition, number, workload, f"add condition on {dep!r}")
        for dep, number in deps.items()
    }


def _tags(tags: Iterable[pb.Tag]) -> tuple[tuple[str, str], ...]:
    return tuple((t.key, t.value) for t in tags)


def _added_from_proto(wire: pb.AddedWorkload) -> WorkloadSpec:
    if not wire.HasField("instanceName"):
        raise ConversionError("an added workload has no instance name")
    instance = _instance_name_from_proto(wire.instanceName)
    return WorkloadSpec(
        instance=instance,
        runtime=wire.runtime,
        runtime_config=wire.runtimeConfig,
        restart_policy=_enum_value(RestartPolicy, wire.restartPolicy, instance.workload, "restartPolicy"),
        dependencies=_add_conditions(wire.dependencies, instance.workload),
        tags=_tags(wire.tags),
    )


def _deleted_from_proto(wire: pb.DeletedWorkload) -> DeleteRequest:
    if not wire.HasField("instanceName"):
        raise ConversionError("a deleted workload has no instance name")
    instance = _instance_name_from_proto(wire.instanceName)
    deps = {
        dep: _enum_value(DeleteCondition, number, instance.workload, f"delete condition on {dep!r}")
        for dep, number in wire.dependencies.items()
    }
    return DeleteRequest(instance=instance, dependencies=deps)


def _update_workload_from_proto(wire: pb.UpdateWorkload) -> UpdateWorkload | None:
    try:
        added = tuple(_added_from_proto(a) for a in wire.addedWorkloads)
        deleted = tuple(_deleted_from_proto(d) for d in wire.deletedWorkloads)
    except ConversionError as err:
        # Like v0.3.1 the whole message goes, but loudly: nothing of it is applied.
        logger.warning(
            "dropping a whole UpdateWorkload from the server (%d added, %d deleted): %s",
            len(wire.addedWorkloads),
            len(wire.deletedWorkloads),
            err,
        )
        return None
    return UpdateWorkload(added=added, deleted=deleted)


def instance_id(runtime_config: str) -> str:
    """Lowercase hex sha256 of runtimeConfig, computed like the server does."""
    return hashlib.sha256(runtime_config.encode("utf-8")).hexdigest()


def _spec_from_workload(name: str, wire: pb.Workload) -> WorkloadSpec:
    return WorkloadSpec(
        instance=InstanceName(workload=name, agent=wire.agent, id=instance_id(wire.runtimeConfig)),
        runtime=wire.runtime,
        runtime_config=wire.runtimeConfig,
        restart_policy=_enum_value(RestartPolicy, wire.restartPolicy, name, "restartPolicy"),
        dependencies=_add_conditions(wire.dependencies, name),
        tags=_tags(wire.tags),
    )


# --- responses ----------------------------------------------------------------


def _normalise_complete_state(state: pb.CompleteState) -> None:
    """Re-encode like the reference does: both states present, substates normalised.

    Raises ConversionError for a workload with an out-of-range enum (the
    reference drops such a response).
    """
    state.startupState.SetInParent()
    state.desiredState.SetInParent()
    for part in (state.startupState, state.desiredState):
        for name, workload in part.workloads.items():
            # Only the enums can fail; no spec (and no instance id hash) is needed to know that.
            _enum_value(RestartPolicy, workload.restartPolicy, name, "restartPolicy")
            _add_conditions(workload.dependencies, name)
    kept = [workload_state_from_proto(s) for s in state.workloadStates]
    del state.workloadStates[:]
    state.workloadStates.extend(workload_state_to_proto(s) for s in kept if s is not None)


def _desired_state(request_id: str, wire: pb.Response, agent_name: str) -> DesiredState:
    content = wire.WhichOneof("ResponseContent")
    if content == "error":
        return DesiredState(request_id=request_id, error=wire.error.message or "error without message")
    if content != "completeState":
        return DesiredState(
            request_id=request_id, error=f"unexpected {content} answer to the agent's request"
        )
    try:
        workloads = tuple(
            _spec_from_workload(name, workload)
            for name, workload in sorted(wire.completeState.desiredState.workloads.items())
            if workload.agent == agent_name
        )
    except ConversionError as err:
        # Not silently dropped: the manager must know it has no usable snapshot this time.
        logger.warning("the server's desired state cannot be used for reconciliation: %s", err)
        return DesiredState(request_id=request_id, error=str(err))
    # The v0.3.1 server ignores the field mask and sends every state it holds: the rows of this
    # agent show which instances it still knows, e.g. one whose Removed was lost with the stream.
    states = (workload_state_from_proto(s) for s in wire.completeState.workloadStates)
    known = frozenset(s.instance for s in states if s is not None and s.instance.agent == agent_name)
    return DesiredState(request_id=request_id, workloads=workloads, known_instances=known)


def _response_from_proto(wire: pb.Response, agent_name: str) -> Response | DesiredState | None:
    if wire.WhichOneof("ResponseContent") is None:
        logger.warning("dropping a response without content from the server (request id %r)", wire.requestId)
        return None
    if wire.requestId.startswith(AGENT_REQUEST_PREFIX):
        return _desired_state(wire.requestId, wire, agent_name)
    # The message is ours alone (freshly parsed from the stream): edit it in place and
    # serialise it once; the control interface frames these bytes without parsing them.
    request_id = wire.requestId
    wire.ClearField("requestId")
    if wire.HasField("completeState"):
        try:
            _normalise_complete_state(wire.completeState)
        except ConversionError as err:
            logger.warning("dropping the response to request %r: %s", request_id, err)
            return None
    return Response(request_id=request_id, body=wire.SerializeToString())


# --- control-interface requests (v0.3.1) ----------------------------------------
#
# A workload's request is decoded into the domain model before it may leave the
# agent: the v0.3.1 server ends the whole agent connection when it cannot convert
# a request (an enum out of range, a workload state without instance name), so
# anything that does not convert cleanly here is answered with an error instead.


def control_request_content(wire: pb.Request) -> RequestContent:
    """The checked content of one control-interface request.

    Raises ConversionError with a message for the workload that names the first
    field the server could not take.
    """
    content = wire.WhichOneof("RequestContent")
    if content == "completeStateRequest":
        return CompleteStateRequest(tuple(wire.completeStateRequest.fieldMask))
    if content == "updateStateRequest":
        update = wire.updateStateRequest
        new_state = _complete_state_from_proto(update.newState) if update.HasField("newState") else None
        return UpdateStateRequest(new_state, tuple(update.updateMask))
    raise ConversionError("the request has neither updateStateRequest nor completeStateRequest")


def _complete_state_from_proto(wire: pb.CompleteState) -> CompleteState:
    startup = (
        _declared_state_from_proto(wire.startupState, "startupState")
        if wire.HasField("startupState")
        else None
    )
    desired = (
        _declared_state_from_proto(wire.desiredState, "desiredState")
        if wire.HasField("desiredState")
        else None
    )
    states = []
    for index, entry in enumerate(wire.workloadStates):
        if not entry.HasField("instanceName"):
            raise ConversionError(f"newState.workloadStates[{index}] has no instanceName")
        state = workload_state_from_proto(entry)
        assert state is not None  # only None without instanceName, checked above
        states.append(state)
    return CompleteState(startup_state=startup, desired_state=desired, workload_states=tuple(states))


def _declared_state_from_proto(wire: pb.State, part: str) -> DeclaredState:
    try:
        workloads = {name: _declared_workload_from_proto(name, w) for name, w in wire.workloads.items()}
    except ConversionError as err:
        raise ConversionError(f"newState.{part}: {err}") from None
    return DeclaredState(api_version=wire.apiVersion, workloads=workloads)


def _declared_workload_from_proto(name: str, wire: pb.Workload) -> DeclaredWorkload:
    return DeclaredWorkload(
        agent=wire.agent,
        runtime=wire.runtime,
        runtime_config=wire.runtimeConfig,
        restart_policy=_enum_value(RestartPolicy, wire.restartPolicy, name, "restartPolicy"),
        dependencies=_add_conditions(wire.dependencies, name),
        tags=_tags(wire.tags),
    )


def control_request_to_proto(request: Request) -> pb.Request:
    """Encode a checked request with its (already prefixed) id."""
    content = request.content
    if content is None:
        raise ConversionError(f"request {request.request_id!r} was never checked (it has no content)")
    if isinstance(content, CompleteStateRequest):
        return pb.Request(
            requestId=request.request_id,
            completeStateRequest=pb.CompleteStateRequest(fieldMask=content.field_mask),
        )
    wire = pb.Request(requestId=request.request_id)
    update = wire.updateStateRequest
    update.SetInParent()
    update.updateMask.extend(content.update_mask)
    if content.new_state is not None:
        new = content.new_state
        update.newState.SetInParent()
        for part, out in (
            (new.startup_state, update.newState.startupState),
            (new.desired_state, update.newState.desiredState),
        ):
            if part is not None:
                _declared_state_to_proto(part, out)
        update.newState.workloadStates.extend(workload_state_to_proto(s) for s in new.workload_states)
    return wire


def _declared_state_to_proto(state: DeclaredState, out: pb.State) -> None:
    out.SetInParent()
    out.apiVersion = state.api_version
    for name, workload in state.workloads.items():
        out.workloads[name].CopyFrom(
            pb.Workload(
                agent=workload.agent,
                # The domain enums carry the wire numbers; the stubs type them as proto enums.
                restartPolicy=cast(pb.RestartPolicy, workload.restart_policy.value),
                dependencies={
                    dep: cast(pb.AddCondition, cond.value) for dep, cond in workload.dependencies.items()
                },
                tags=[pb.Tag(key=key, value=value) for key, value in workload.tags],
                runtime=workload.runtime,
                runtimeConfig=workload.runtime_config,
            )
        )


# --- the two directions -------------------------------------------------------


def from_server(wire: pb.FromServer, agent_name: str) -> FromServerMessage | None:
    """Decode one FromServer message; None when the reference would drop it too (always logged)."""
    content = wire.WhichOneof("FromServerEnum")
    if content == "updateWorkload":
        return _update_workload_from_proto(wire.updateWorkload)
    if content == "updateWorkloadState":
        return _update_workload_state_from_proto(wire.updateWorkloadState)
    if content == "response":
        return _response_from_proto(wire.response, agent_name)
    logger.warning("dropping a message without content from the server")
    return None


def agent_hello(agent_name: str) -> pb.ToServer:
    return pb.ToServer(agentHello=pb.AgentHello(agentName=agent_name))


def encode(msg: ToServerMessageV1) -> pb.ToServer | bytes | None:
    """:func:`to_server` for anything the outbox holds; None for a message v0.3.1 has no form for.

    A request checked with its body comes back already serialized (see
    :func:`_checked_request_bytes`); ``wire_format.serialized`` passes those bytes through.

    Load reports and log answers exist only in v1.0.1; the outbox may hold some
    from before a server swap, or a timer may produce them regardless of the
    session: they are dropped here, never sent and never an error.
    """
    if isinstance(msg, Request) and msg.content is None:
        # Only a v1.0.1 control interface leaves a request opaque; its bytes mean something
        # else to this server, so one queued before the server changed version is not sent.
        logger.warning(
            "not forwarding request %r to the Ankaios v0.3.1 server: it was made under the "
            "v1.0.1 protocol before the server changed; the workload gets no answer",
            msg.request_id,
        )
        return None
    if isinstance(msg, Request) and msg.body:
        # Checked where it left the workload and serialized there once: framed as it is.
        return _checked_request_bytes(msg)
    if isinstance(msg, (WorkloadState, Request, DesiredStateRequest)):
        return to_server(msg)
    logger.debug("not sending %s to the Ankaios v0.3.1 server: it has no such message", type(msg).__name__)
    return None


def to_server(msg: ToServerMessage) -> pb.ToServer:
    """Encode one outgoing message.

    A control-interface request goes out from its checked ``content``; one that
    carries only an opaque ``body`` is parsed here (raises ConversionError if the
    body is not a Request).
    """
    if isinstance(msg, WorkloadState):
        # Exactly one state per message, like the reference.
        return pb.ToServer(
            updateWorkloadState=pb.UpdateWorkloadState(workloadStates=[workload_state_to_proto(msg)])
        )
    if isinstance(msg, DesiredStateRequest):
        return pb.ToServer(
            request=pb.Request(
                requestId=msg.request_id,
                completeStateRequest=pb.CompleteStateRequest(fieldMask=[DESIRED_WORKLOADS_MASK]),
            )
        )
    if msg.content is not None:
        return pb.ToServer(request=control_request_to_proto(msg))
    try:
        request = pb.Request.FromString(msg.body)
    except Exception as err:  # protobuf raises DecodeError, a bare Exception subclass
        raise ConversionError(f"request {msg.request_id!r} has a body that is not a Request: {err}") from err
    request.requestId = msg.request_id
    return pb.ToServer(request=request)


# Wire keys (field number << 3 | length-delimited): ToServer.request = 3, Request.requestId = 1.
_TO_SERVER_REQUEST_KEY = b"\x1a"
_REQUEST_ID_KEY = b"\x0a"


def _checked_request_bytes(request: Request) -> bytes:
    """The serialized ToServer of a request whose ``body`` was checked where it left the
    workload: the routed id in front of the body's fields, without building the message
    again from the domain content."""
    return with_id_first(_TO_SERVER_REQUEST_KEY, _REQUEST_ID_KEY, request.request_id, request.body)


def _short(wire: object, limit: int = 200) -> str:
    text = " ".join(str(wire).split())
    return text if len(text) <= limit else text[:limit] + "..."
