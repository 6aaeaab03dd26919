"""Decoding whatever a v1.0.1 server or workload sends never raises anything but ConversionError."""

from __future__ import annotations

import contextlib
from typing import cast

from hypothesis import given, settings
from hypothesis import strategies as st

from ankaios_agent.agent.dialect_v1 import control_codec
from ankaios_agent.agent.dialect_v1 import conversion as v1
from ankaios_agent.agent.errors import ConversionError
from ankaios_agent.agent.model import (
    AGENT_REQUEST_PREFIX,
    ControlHello,
    DesiredState,
    LogsCancelRequest,
    LogsRequest,
    Response,
    ServerHello,
    UpdateWorkload,
    UpdateWorkloadState,
    WorkloadRequest,
)
from ankaios_agent.proto import ank_base_pb2 as base
from ankaios_agent.proto import control_api_pb2 as ctl
from ankaios_agent.proto import grpc_api_pb2 as api

ENUM = st.integers(min_value=-3, max_value=12)
TEXT = st.text(max_size=8)
STATE_FIELDS = [
    "agentDisconnected",
    "pending",
    "running",
    "stopping",
    "succeeded",
    "failed",
    "notScheduled",
    "removed",
]
V1_MESSAGES = (
    ServerHello,
    UpdateWorkload,
    UpdateWorkloadState,
    Response,
    DesiredState,
    LogsRequest,
    LogsCancelRequest,
)


def _maybe(draw: st.DrawFn) -> bool:
    return draw(st.booleans())


@st.composite
def instance_names(draw: st.DrawFn) -> base.WorkloadInstanceName | None:
    if _maybe(draw):
        return None
    return base.WorkloadInstanceName(workloadName=draw(TEXT), agentName=draw(TEXT), id=draw(TEXT))


@st.composite
def workload_states(draw: st.DrawFn) -> base.WorkloadState:
    ws = base.WorkloadState()
    inst = draw(instance_names())
    if inst is not None:
        ws.instanceName.CopyFrom(inst)
    field = draw(st.sampled_from([None, *STATE_FIELDS]))
    if field is not None:
        setattr(ws.executionState, field, draw(ENUM))
    if _maybe(draw):
        ws.executionState.additionalInfo = draw(TEXT)
    return ws


@st.composite
def access_rules(draw: st.DrawFn) -> base.AccessRightsRule:
    rule = base.AccessRightsRule()
    kind = draw(st.sampled_from([None, "state", "log"]))
    if kind == "state":
        rule.stateRule.operation = cast(base.ReadWriteEnum, draw(ENUM))
        rule.stateRule.filterMasks.extend(draw(st.lists(TEXT, max_size=2)))
    elif kind == "log":
        rule.logRule.workloadNames.extend(draw(st.lists(TEXT, max_size=2)))
    return rule


@st.composite
def workloads(draw: st.DrawFn) -> base.Workload:
    wl = base.Workload()
    for name, value in (
        ("agent", st.sampled_from(["me", "other", ""])),
        ("restartPolicy", ENUM),
        ("runtime", TEXT),
        ("runtimeConfig", TEXT),
    ):
        if draw(st.integers(0, 4)):
            setattr(wl, name, draw(value))
    if _maybe(draw):
        conditions = draw(st.dictionaries(TEXT, ENUM, max_size=2))
        wl.dependencies.dependencies.update({k: cast(base.AddCondition, v) for k, v in conditions.items()})
    if _maybe(draw):
        wl.tags.tags.update(draw(st.dictionaries(TEXT, TEXT, max_size=2)))
    if _maybe(draw):
        wl.configs.configs.update(draw(st.dictionaries(TEXT, TEXT, max_size=2)))
    if _maybe(draw):
        wl.controlInterfaceAccess.allowRules.extend(draw(st.lists(access_rules(), max_size=2)))
        wl.controlInterfaceAccess.denyRules.extend(draw(st.lists(access_rules(), max_size=2)))
    for _ in range(draw(st.integers(0, 2))):
        file = wl.files.files.add(mountPoint=draw(TEXT))
        content = draw(st.sampled_from([None, "data", "binaryData"]))
        if content is not None:
            setattr(file, content, draw(TEXT))
    return wl


@st.composite
def added(draw: st.DrawFn) -> api.AddedWorkload:
    wire = api.AddedWorkload()
    inst = draw(instance_names())
    if inst is not None:
        wire.instanceName.CopyFrom(inst)
    if draw(st.integers(0, 4)):
        wire.workload.CopyFrom(draw(workloads()))
    return wire


@st.composite
def from_server(draw: st.DrawFn) -> api.FromServer:
    kind = draw(st.sampled_from(["none", "hello", "update", "states", "response", "own", "logs", "cancel"]))
    msg = api.FromServer()
    if kind == "hello":
        msg.serverHello.addedWorkloads.extend(draw(st.lists(added(), max_size=3)))
        msg.serverHello.SetInParent()
    elif kind == "update":
        msg.updateWorkload.addedWorkloads.extend(draw(st.lists(added(), max_size=3)))
        for _ in range(draw(st.integers(0, 2))):
            deleted = msg.updateWorkload.deletedWorkloads.add(
                dependencies=draw(st.dictionaries(TEXT, ENUM, max_size=2))
            )
            inst = draw(instance_names())
            if inst is not None:
                deleted.instanceName.CopyFrom(inst)
        msg.updateWorkload.SetInParent()
    elif kind == "states":
        msg.updateWorkloadState.workloadStates.extend(draw(st.lists(workload_states(), max_size=4)))
        msg.updateWorkloadState.SetInParent()
    elif kind in ("response", "own"):
        prefix = AGENT_REQUEST_PREFIX if kind == "own" else "wl@"
        msg.response.requestId = prefix + draw(TEXT)
        content = draw(st.sampled_from(["none", "error", "complete", "success"]))
        if content == "error":
            msg.response.error.message = draw(TEXT)
        elif content == "complete":
            state = msg.response.completeStateResponse.completeState
            for name, wl in draw(st.dictionaries(TEXT, workloads(), max_size=3)).items():
                state.desiredState.workloads.workloads[name].CopyFrom(wl)
            state.SetInParent()
        elif content == "success":
            msg.response.UpdateStateSuccess.addedWorkloads.append(draw(TEXT))
    elif kind == "logs":
        msg.logsRequest.requestId = draw(TEXT)
        if draw(st.integers(0, 3)):
            inner = msg.logsRequest.logsRequest
            inner.SetInParent()
            if _maybe(draw):
                inner.tail = draw(st.integers(-(2**31), 2**31 - 1))
            if _maybe(draw):
                inner.follow = draw(st.booleans())
            names = draw(st.lists(instance_names(), max_size=2))
            inner.workloadNames.extend(n for n in names if n is not None)
    elif kind == "cancel":
        msg.logsCancelRequest.requestId = draw(TEXT)
    return msg


@settings(max_examples=400, deadline=None)
@given(from_server())
def test_decoding_any_from_server_message_gives_a_domain_message_or_a_conversion_error(
    wire: api.FromServer,
) -> None:
    try:
        result = v1.from_server(wire, "me")
    except ConversionError:
        return
    assert isinstance(result, V1_MESSAGES)
    if isinstance(result, DesiredState):
        assert all(spec.instance.agent == "me" for spec in result.workloads)
    if isinstance(result, Response):
        assert base.Response.FromString(result.body).requestId == ""
    # What was accepted must survive being sent again (a server double does exactly this).
    if isinstance(
        result, ServerHello | UpdateWorkload | UpdateWorkloadState | LogsRequest | LogsCancelRequest
    ):
        assert v1.from_server(v1.from_server_to_proto(result), "me") == result


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_decoding_arbitrary_bytes_from_the_server_never_raises_anything_else(data: bytes) -> None:
    try:
        result = v1.decode_from_server(data, "me")
    except ConversionError:
        return
    assert isinstance(result, V1_MESSAGES)


@settings(max_examples=400, deadline=None)
@given(from_server())
def test_decoding_serialized_messages_never_raises_anything_else(wire: api.FromServer) -> None:
    data = wire.SerializeToString()
    for cut in (data, data[: len(data) // 2], data[1:]):
        with contextlib.suppress(ConversionError):
            v1.decode_from_server(cut, "me")


@st.composite
def to_ankaios(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["none", "hello", "request", "garbage"]))
    if kind == "garbage":
        return draw(st.binary(max_size=40))
    msg = ctl.ToAnkaios()
    if kind == "hello":
        msg.hello.protocolVersion = draw(TEXT)
    elif kind == "request":
        msg.request.requestId = draw(TEXT)
        content = draw(st.sampled_from([None, "update", "complete", "logs", "cancel", "events"]))
        if content == "update":
            msg.request.updateStateRequest.updateMask.extend(draw(st.lists(TEXT, max_size=2)))
            if _maybe(draw):
                msg.request.updateStateRequest.newState.SetInParent()
            msg.request.updateStateRequest.SetInParent()
        elif content == "complete":
            msg.request.completeStateRequest.fieldMask.extend(draw(st.lists(TEXT, max_size=2)))
            msg.request.completeStateRequest.SetInParent()
        elif content == "logs":
            names = draw(st.lists(instance_names(), max_size=2))
            msg.request.logsRequest.workloadNames.extend(n for n in names if n is not None)
            msg.request.logsRequest.SetInParent()
        elif content == "cancel":
            msg.request.logsCancelRequest.SetInParent()
        elif content == "events":
            msg.request.eventsCancelRequest.SetInParent()
    data = msg.SerializeToString()
    return data[: draw(st.integers(0, len(data)))] if _maybe(draw) else data


@settings(max_examples=400, deadline=None)
@given(to_ankaios())
def test_decoding_any_workload_frame_never_raises_anything_else(payload: bytes) -> None:
    try:
        result = control_codec.decode_to_ankaios(payload)
    except ConversionError:
        return
    assert result is None or isinstance(result, ControlHello | WorkloadRequest)
    if isinstance(result, WorkloadRequest):
        # A forwardable request is one the server stream encoder accepts too.
        if result.forwardable:
            v1.to_server(result.request)
        else:
            try:
                v1.to_server(result.request)
            except ConversionError:
                pass
            else:
                raise AssertionError("an unforwardable request was accepted for sending")
