"""Decoding never raises, whatever the server sends (behaviour "Decoding": drop, don't crash)."""

from __future__ import annotations

from typing import cast

from hypothesis import given, settings
from hypothesis import strategies as st

from ankaios_agent.agent import conversion
from ankaios_agent.agent.model import (
    AGENT_REQUEST_PREFIX,
    DesiredState,
    Response,
    UpdateWorkload,
    UpdateWorkloadState,
)
from ankaios_agent.proto import ankaios_pb2 as pb

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


@st.composite
def instance_names(draw: st.DrawFn) -> pb.WorkloadInstanceName | None:
    if draw(st.booleans()):
        return None
    return pb.WorkloadInstanceName(workloadName=draw(TEXT), agentName=draw(TEXT), id=draw(TEXT))


@st.composite
def workload_states(draw: st.DrawFn) -> pb.WorkloadState:
    ws = pb.WorkloadState()
    inst = draw(instance_names())
    if inst is not None:
        ws.instanceName.CopyFrom(inst)
    field = draw(st.sampled_from([None, *STATE_FIELDS]))
    if field is not None:
        setattr(ws.executionState, field, draw(ENUM))
    if draw(st.booleans()):
        ws.executionState.additionalInfo = draw(TEXT)
    return ws


@st.composite
def workloads(draw: st.DrawFn) -> pb.Workload:
    return pb.Workload(
        agent=draw(st.sampled_from(["me", "other", ""])),
        restartPolicy=cast(pb.RestartPolicy, draw(ENUM)),
        dependencies={
            k: cast(pb.AddCondition, v) for k, v in draw(st.dictionaries(TEXT, ENUM, max_size=2)).items()
        },
        runtime=draw(TEXT),
        runtimeConfig=draw(TEXT),
    )


@st.composite
def from_server(draw: st.DrawFn) -> pb.FromServer:
    kind = draw(st.sampled_from(["none", "update", "states", "response", "own_response"]))
    msg = pb.FromServer()
    if kind == "update":
        for _ in range(draw(st.integers(0, 3))):
            added = msg.updateWorkload.addedWorkloads.add(
                restartPolicy=draw(ENUM), dependencies=draw(st.dictionaries(TEXT, ENUM, max_size=2))
            )
            inst = draw(instance_names())
            if inst is not None:
                added.instanceName.CopyFrom(inst)
        for _ in range(draw(st.integers(0, 3))):
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
    elif kind in ("response", "own_response"):
        prefix = AGENT_REQUEST_PREFIX if kind == "own_response" else "wl@"
        msg.response.requestId = prefix + draw(TEXT)
        content = draw(st.sampled_from(["none", "error", "complete", "success"]))
        if content == "error":
            msg.response.error.message = draw(TEXT)
        elif content == "complete":
            cs = msg.response.completeState
            for name, wl in draw(st.dictionaries(TEXT, workloads(), max_size=3)).items():
                cs.desiredState.workloads[name].CopyFrom(wl)
            cs.workloadStates.extend(draw(st.lists(workload_states(), max_size=3)))
            cs.SetInParent()
        elif content == "success":
            msg.response.UpdateStateSuccess.addedWorkloads.append(draw(TEXT))
    return msg


@settings(max_examples=300, deadline=None)
@given(from_server())
def test_decoding_any_from_server_never_raises(wire: pb.FromServer) -> None:
    """behaviour "Decoding": every input gives a domain message or None (dropped and logged)."""
    result = conversion.from_server(wire, "me")
    assert result is None or isinstance(
        result, UpdateWorkload | UpdateWorkloadState | Response | DesiredState
    )
    if isinstance(result, DesiredState):
        assert all(spec.instance.agent == "me" for spec in result.workloads)
    if isinstance(result, Response):
        assert pb.Response.FromString(result.body).requestId == ""
