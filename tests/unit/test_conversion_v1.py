"""v1.0.1 server-stream conversion: every field both ways, and strict rejection of contract breaches."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from typing import cast

import pytest

from ankaios_agent.agent.dialect_v1 import conversion as v1
from ankaios_agent.agent.dialect_v1.hello import agent_hello
from ankaios_agent.agent.errors import ConversionError
from ankaios_agent.agent.model import (
    AGENT_REQUEST_PREFIX,
    AccessRules,
    AddCondition,
    AgentHello,
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
    LogEntry,
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
    UpdateWorkload,
    UpdateWorkloadState,
    WorkloadFile,
    WorkloadSpec,
    WorkloadState,
)
from ankaios_agent.agent.wire_format import serialized
from ankaios_agent.proto import ank_base_pb2 as base
from ankaios_agent.proto import grpc_api_pb2 as api

AGENT = "agent_A"
INST = InstanceName("nginx", AGENT, "abc")
WIRE_INST = base.WorkloadInstanceName(workloadName="nginx", agentName=AGENT, id="abc")

# Every State with the oneof member and number it has on the wire.
WIRE_OF_STATE = {
    State.AGENT_DISCONNECTED: ("agentDisconnected", 0),
    State.PENDING_INITIAL: ("pending", 0),
    State.PENDING_WAITING_TO_START: ("pending", 1),
    State.PENDING_STARTING: ("pending", 2),
    State.PENDING_STARTING_FAILED: ("pending", 8),
    State.RUNNING_OK: ("running", 0),
    State.STOPPING: ("stopping", 0),
    State.STOPPING_WAITING_TO_STOP: ("stopping", 1),
    State.STOPPING_REQUESTED_AT_RUNTIME: ("stopping", 2),
    State.STOPPING_DELETE_FAILED: ("stopping", 8),
    State.SUCCEEDED_OK: ("succeeded", 0),
    State.FAILED_EXEC_FAILED: ("failed", 0),
    State.FAILED_UNKNOWN: ("failed", 1),
    State.FAILED_LOST: ("failed", 2),
    State.NOT_SCHEDULED: ("notScheduled", 0),
    State.REMOVED: ("removed", 0),
}


def _wire_state(field: str, number: int, info: str | None = "") -> base.ExecutionState:
    wire = base.ExecutionState()
    setattr(wire, field, number)
    if info is not None:
        wire.additionalInfo = info
    return wire


def _full_workload() -> base.Workload:
    """A rendered Workload with every field set to a non-default value."""
    return base.Workload(
        agent=AGENT,
        restartPolicy=base.ALWAYS,
        dependencies=base.Dependencies(
            dependencies={"db": base.ADD_COND_SUCCEEDED, "cache": base.ADD_COND_FAILED}
        ),
        tags=base.Tags(tags={"zone": "b", "owner": "me"}),
        runtime="podman",
        runtimeConfig="image: nginx\n",
        controlInterfaceAccess=base.ControlInterfaceAccess(
            allowRules=[
                base.AccessRightsRule(
                    stateRule=base.StateRule(
                        operation=base.RW_READ_WRITE, filterMasks=["desiredState", "agents.*"]
                    )
                ),
                base.AccessRightsRule(logRule=base.LogRule(workloadNames=["web_*"])),
            ],
            denyRules=[
                base.AccessRightsRule(stateRule=base.StateRule(operation=base.RW_WRITE, filterMasks=["x"]))
            ],
        ),
        configs=base.ConfigMappings(configs={"port": "web_port"}),
        files=base.Files(
            files=[
                base.File(mountPoint="/etc/app.conf", data="a=1\n"),
                base.File(mountPoint="/bin/blob", binaryData="AAEC"),
            ]
        ),
    )


FULL_SPEC = WorkloadSpec(
    instance=INST,
    runtime="podman",
    runtime_config="image: nginx\n",
    restart_policy=RestartPolicy.ALWAYS,
    dependencies={"db": AddCondition.SUCCEEDED, "cache": AddCondition.FAILED},
    tags=(("owner", "me"), ("zone", "b")),
    configs={"port": "web_port"},
    files=(
        WorkloadFile("/etc/app.conf", TextContent("a=1\n")),
        WorkloadFile("/bin/blob", Base64Content("AAEC")),
    ),
    control_interface_access=AccessRules(
        allow=(
            StateRule(Operation.READ_WRITE, ("desiredState", "agents.*")),
            LogRule(("web_*",)),
        ),
        deny=(StateRule(Operation.WRITE, ("x",)),),
    ),
)


def _hello_with(workload: base.Workload, instance: base.WorkloadInstanceName = WIRE_INST) -> api.FromServer:
    return api.FromServer(
        serverHello=api.ServerHello(
            addedWorkloads=[api.AddedWorkload(instanceName=instance, workload=workload)]
        )
    )


# --- execution states ---------------------------------------------------------------


def test_every_state_is_in_the_table() -> None:
    assert set(WIRE_OF_STATE) == set(State)


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("info", ["", "Retry 3: boom"])
def test_every_state_encodes_its_oneof_member_and_additional_info_explicitly(state: State, info: str) -> None:
    """Even number 0 and empty info are on the wire: the server drops a state without them."""
    field, number = WIRE_OF_STATE[state]
    wire = api.ToServer.FromString(
        v1.to_server(WorkloadState(INST, ExecutionState(state, info))).SerializeToString()
    )
    (sent,) = wire.updateWorkloadState.workloadStates
    assert sent.instanceName == WIRE_INST
    assert sent.executionState.WhichOneof("ExecutionStateEnum") == field
    assert getattr(sent.executionState, field) == number
    assert sent.executionState.HasField("additionalInfo")
    assert sent.executionState.additionalInfo == info


@pytest.mark.parametrize("state", list(State))
def test_every_state_decodes_exactly(state: State) -> None:
    field, number = WIRE_OF_STATE[state]
    assert v1.execution_state_from_proto(_wire_state(field, number, "i")) == ExecutionState(state, "i")


@pytest.mark.parametrize(
    ("field", "number"),
    [
        ("pending", 3),
        ("pending", 7),
        ("pending", 9),
        ("running", 1),
        ("stopping", 3),
        ("stopping", -1),
        ("succeeded", 1),
        ("failed", 3),
        ("agentDisconnected", 1),
        ("notScheduled", 2),
        ("removed", 1),
    ],
)
def test_an_undefined_substate_is_rejected_not_normalised(field: str, number: int) -> None:
    with pytest.raises(ConversionError, match="undefined value"):
        v1.execution_state_from_proto(_wire_state(field, number))


def test_an_execution_state_without_additional_info_is_rejected() -> None:
    with pytest.raises(ConversionError, match="additionalInfo"):
        v1.execution_state_from_proto(_wire_state("running", 0, info=None))


def test_an_execution_state_without_a_state_is_rejected() -> None:
    with pytest.raises(ConversionError, match="without a state"):
        v1.execution_state_from_proto(base.ExecutionState(additionalInfo=""))


def test_update_workload_state_decodes_every_state_of_other_agents() -> None:
    other = base.WorkloadInstanceName(workloadName="db", agentName="agent_B", id="1")
    wire = api.FromServer(
        updateWorkloadState=api.UpdateWorkloadState(
            workloadStates=[
                base.WorkloadState(instanceName=other, executionState=_wire_state("running", 0)),
                base.WorkloadState(
                    instanceName=WIRE_INST, executionState=_wire_state("failed", 0, "Exit code: '1'")
                ),
            ]
        )
    )
    assert v1.from_server(wire, AGENT) == UpdateWorkloadState(
        (
            WorkloadState(InstanceName("db", "agent_B", "1"), ExecutionState.running()),
            WorkloadState(INST, ExecutionState.exec_failed(1)),
        )
    )


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (base.WorkloadState(executionState=_wire_state("running", 0)), "no instance name"),
        (base.WorkloadState(instanceName=WIRE_INST), "nginx.abc.agent_A.*without execution state"),
        (base.WorkloadState(instanceName=WIRE_INST, executionState=_wire_state("running", 0, None)), "nginx"),
        (base.WorkloadState(instanceName=WIRE_INST, executionState=_wire_state("pending", 4)), "nginx"),
    ],
)
def test_one_bad_workload_state_rejects_the_whole_message(bad: base.WorkloadState, match: str) -> None:
    good = base.WorkloadState(instanceName=WIRE_INST, executionState=_wire_state("running", 0))
    wire = api.FromServer(updateWorkloadState=api.UpdateWorkloadState(workloadStates=[good, bad]))
    with pytest.raises(ConversionError, match=match):
        v1.from_server(wire, AGENT)


# --- workloads ----------------------------------------------------------------------


def test_a_full_workload_decodes_every_field() -> None:
    assert v1.from_server(_hello_with(_full_workload()), AGENT) == ServerHello((FULL_SPEC,))


def _clear(field: str) -> Callable[[base.Workload], None]:
    return lambda w: w.ClearField(field)


# (change to the full wire workload, the spec it must give)
WORKLOAD_FIELDS: list[tuple[str, Callable[[base.Workload], None], WorkloadSpec]] = [
    ("restartPolicy absent", _clear("restartPolicy"), replace(FULL_SPEC, restart_policy=RestartPolicy.NEVER)),
    (
        "restartPolicy on failure",
        lambda w: setattr(w, "restartPolicy", base.ON_FAILURE),
        replace(FULL_SPEC, restart_policy=RestartPolicy.ON_FAILURE),
    ),
    ("dependencies absent", _clear("dependencies"), replace(FULL_SPEC, dependencies={})),
    (
        "dependency running",
        lambda w: w.dependencies.dependencies.__setitem__("db", base.ADD_COND_RUNNING),
        replace(FULL_SPEC, dependencies={"db": AddCondition.RUNNING, "cache": AddCondition.FAILED}),
    ),
    ("tags absent", _clear("tags"), replace(FULL_SPEC, tags=())),
    ("runtime", lambda w: setattr(w, "runtime", "podman-kube"), replace(FULL_SPEC, runtime="podman-kube")),
    ("runtime empty", lambda w: setattr(w, "runtime", ""), replace(FULL_SPEC, runtime="")),
    ("runtimeConfig empty", lambda w: setattr(w, "runtimeConfig", ""), replace(FULL_SPEC, runtime_config="")),
    (
        "access absent",
        _clear("controlInterfaceAccess"),
        replace(FULL_SPEC, control_interface_access=AccessRules()),
    ),
    (
        "deny rules only",
        lambda w: w.controlInterfaceAccess.ClearField("allowRules"),
        replace(
            FULL_SPEC,
            control_interface_access=AccessRules(deny=(StateRule(Operation.WRITE, ("x",)),)),
        ),
    ),
    (
        "state rule nothing without masks",
        lambda w: w.controlInterfaceAccess.allowRules[0].stateRule.CopyFrom(base.StateRule()),
        replace(
            FULL_SPEC,
            control_interface_access=replace(
                FULL_SPEC.control_interface_access,
                allow=(StateRule(Operation.NOTHING, ()), LogRule(("web_*",))),
            ),
        ),
    ),
    (
        "state rule read",
        lambda w: setattr(w.controlInterfaceAccess.allowRules[0].stateRule, "operation", base.RW_READ),
        replace(
            FULL_SPEC,
            control_interface_access=replace(
                FULL_SPEC.control_interface_access,
                allow=(StateRule(Operation.READ, ("desiredState", "agents.*")), LogRule(("web_*",))),
            ),
        ),
    ),
    ("configs absent", _clear("configs"), replace(FULL_SPEC, configs={})),
    ("files absent", _clear("files"), replace(FULL_SPEC, files=())),
    (
        "file with empty text",
        lambda w: setattr(w.files.files[0], "data", ""),
        replace(FULL_SPEC, files=(WorkloadFile("/etc/app.conf", TextContent("")), FULL_SPEC.files[1])),
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"), [(c, e) for _, c, e in WORKLOAD_FIELDS], ids=[n for n, _, _ in WORKLOAD_FIELDS]
)
def test_each_workload_field_decodes(change: Callable[[base.Workload], None], expected: WorkloadSpec) -> None:
    wire = _full_workload()
    change(wire)
    assert v1.from_server(_hello_with(wire), AGENT) == ServerHello((expected,))


@pytest.mark.parametrize("spec", [e for _, _, e in WORKLOAD_FIELDS], ids=[n for n, _, _ in WORKLOAD_FIELDS])
def test_each_workload_field_encodes_and_comes_back(spec: WorkloadSpec) -> None:
    wire = v1.workload_to_proto(spec)
    for optional in ("agent", "restartPolicy", "runtime", "runtimeConfig"):
        assert wire.HasField(optional), optional
    for wrapper in ("dependencies", "tags", "controlInterfaceAccess", "configs", "files"):
        assert wire.HasField(wrapper), wrapper
    assert (
        v1.workload_spec_from_proto(spec.instance, base.Workload.FromString(wire.SerializeToString())) == spec
    )


@pytest.mark.parametrize("missing", ["agent", "runtime", "runtimeConfig"])
def test_a_workload_without_a_mandatory_optional_field_is_rejected_by_name(missing: str) -> None:
    wire = _full_workload()
    wire.ClearField(missing)
    with pytest.raises(ConversionError, match=f"'nginx': {missing} is missing"):
        v1.from_server(_hello_with(wire), AGENT)


BAD_WORKLOADS: list[tuple[str, Callable[[base.Workload], object], str]] = [
    ("restart policy 3", lambda w: setattr(w, "restartPolicy", 3), "restartPolicy has the undefined value 3"),
    (
        "add condition 3",
        lambda w: w.dependencies.dependencies.__setitem__("db", cast(base.AddCondition, 3)),
        "add condition on 'db' has the undefined value 3",
    ),
    (
        "rule without rule",
        lambda w: w.controlInterfaceAccess.denyRules.add(),
        "control-interface access rule without a rule",
    ),
    (
        "operation 3",
        lambda w: setattr(w.controlInterfaceAccess.allowRules[0].stateRule, "operation", 3),
        "state rule operation has the undefined value 3",
    ),
    (
        "operation 4",
        lambda w: setattr(w.controlInterfaceAccess.allowRules[0].stateRule, "operation", 4),
        "state rule operation has the undefined value 4",
    ),
    ("file without content", lambda w: w.files.files.add(mountPoint="/x"), "file '/x' has no content"),
]


@pytest.mark.parametrize(
    ("change", "match"), [(c, m) for _, c, m in BAD_WORKLOADS], ids=[n for n, _, _ in BAD_WORKLOADS]
)
def test_a_contract_breach_in_a_workload_rejects_the_message_naming_the_workload(
    change: Callable[[base.Workload], None], match: str
) -> None:
    wire = _full_workload()
    change(wire)
    good = api.AddedWorkload(
        instanceName=base.WorkloadInstanceName(workloadName="ok", agentName=AGENT, id="1"),
        workload=_full_workload(),
    )
    message = _hello_with(wire)
    message.serverHello.addedWorkloads.insert(0, good)
    with pytest.raises(ConversionError, match=f"workload 'nginx': {match}"):
        v1.from_server(message, AGENT)
    update = api.FromServer(
        updateWorkload=api.UpdateWorkload(addedWorkloads=message.serverHello.addedWorkloads)
    )
    with pytest.raises(ConversionError, match="'nginx'"):
        v1.from_server(update, AGENT)


def test_an_added_workload_without_instance_name_or_workload_is_rejected() -> None:
    with pytest.raises(ConversionError, match="no instance name"):
        v1.from_server(
            api.FromServer(
                serverHello=api.ServerHello(addedWorkloads=[api.AddedWorkload(workload=_full_workload())])
            ),
            AGENT,
        )
    with pytest.raises(ConversionError, match="'nginx': added without its workload"):
        v1.from_server(
            api.FromServer(
                serverHello=api.ServerHello(addedWorkloads=[api.AddedWorkload(instanceName=WIRE_INST)])
            ),
            AGENT,
        )


def test_an_empty_server_hello_is_a_complete_empty_list() -> None:
    assert v1.from_server(api.FromServer(serverHello=api.ServerHello()), AGENT) == ServerHello(())


def test_update_workload_decodes_added_and_deleted_with_delete_conditions() -> None:
    wire = api.FromServer(
        updateWorkload=api.UpdateWorkload(
            addedWorkloads=[api.AddedWorkload(instanceName=WIRE_INST, workload=_full_workload())],
            deletedWorkloads=[
                api.DeletedWorkload(
                    instanceName=base.WorkloadInstanceName(workloadName="db", agentName=AGENT, id="9"),
                    dependencies={"web": api.DEL_COND_NOT_PENDING_NOR_RUNNING, "x": api.DEL_COND_RUNNING},
                )
            ],
        )
    )
    assert v1.from_server(wire, AGENT) == UpdateWorkload(
        added=(FULL_SPEC,),
        deleted=(
            DeleteRequest(
                InstanceName("db", AGENT, "9"),
                {"web": DeleteCondition.NOT_PENDING_NOR_RUNNING, "x": DeleteCondition.RUNNING},
            ),
        ),
    )


@pytest.mark.parametrize(
    ("deleted", "match"),
    [
        (api.DeletedWorkload(), "a deleted workload has no instance name"),
        (
            api.DeletedWorkload(instanceName=WIRE_INST, dependencies={"a": cast(api.DeleteCondition, 2)}),
            "'nginx': delete condition on 'a'",
        ),
    ],
)
def test_a_bad_deleted_workload_rejects_the_whole_update(deleted: api.DeletedWorkload, match: str) -> None:
    wire = api.FromServer(
        updateWorkload=api.UpdateWorkload(
            addedWorkloads=[api.AddedWorkload(instanceName=WIRE_INST, workload=_full_workload())],
            deletedWorkloads=[deleted],
        )
    )
    with pytest.raises(ConversionError, match=match):
        v1.from_server(wire, AGENT)


# --- responses ----------------------------------------------------------------------

RESPONSE_CONTENTS = [
    base.Response(error=base.Error(message="Update rejected: 'x'")),
    base.Response(
        completeStateResponse=base.CompleteStateResponse(
            completeState=base.CompleteState(
                desiredState=base.State(apiVersion="v1"),
                workloadStates=base.WorkloadStatesMap(
                    agentStateMap={
                        AGENT: base.ExecutionsStatesOfWorkload(
                            wlNameStateMap={
                                "nginx": base.ExecutionsStatesForId(
                                    idStateMap={"abc": _wire_state("running", 0)}
                                )
                            }
                        )
                    }
                ),
                agents=base.AgentMap(
                    agents={
                        AGENT: base.AgentAttributes(
                            status=base.AgentStatus(
                                cpu_usage=base.CpuUsage(cpu_usage=3),
                                free_memory=base.FreeMemory(free_memory=9),
                            ),
                            tags=base.Tags(tags={"k": "v"}),
                        )
                    }
                ),
            ),
            alteredFields=base.AlteredFields(addedFields=["workloadStates.agent_A"]),
        )
    ),
    base.Response(
        UpdateStateSuccess=base.UpdateStateSuccess(addedWorkloads=["a.1.b"], deletedWorkloads=["c.2.d"])
    ),
    base.Response(logsRequestAccepted=base.LogsRequestAccepted(workloadNames=[WIRE_INST])),
    base.Response(
        logEntriesResponse=base.LogEntriesResponse(
            logEntries=[base.LogEntry(workloadName=WIRE_INST, message="hi")]
        )
    ),
    base.Response(logsStopResponse=base.LogsStopResponse(workloadName=WIRE_INST)),
    base.Response(logsCancelAccepted=base.LogsCancelAccepted()),
    base.Response(eventsCancelAccepted=base.EventsCancelAccepted()),
    base.Response(),
]


@pytest.mark.parametrize("content", RESPONSE_CONTENTS, ids=lambda r: str(r.WhichOneof("ResponseContent")))
def test_a_response_for_a_workload_passes_unchanged_apart_from_its_id(content: base.Response) -> None:
    wire = api.FromServer(response=base.Response(requestId="web@42@x"))
    wire.response.MergeFrom(content)
    decoded = v1.from_server(wire, AGENT)
    assert isinstance(decoded, Response)
    assert decoded.request_id == "web@42@x"
    assert base.Response.FromString(decoded.body) == content
    assert v1.from_server_to_proto(decoded) == wire


def _own_answer(workloads: dict[str, base.Workload]) -> api.FromServer:
    response = base.Response(requestId=AGENT_REQUEST_PREFIX + "reconcile-1")
    for name, workload in workloads.items():
        response.completeStateResponse.completeState.desiredState.workloads.workloads[name].CopyFrom(workload)
    return api.FromServer(response=response)


def test_the_answer_to_the_agents_own_request_is_its_desired_state() -> None:
    mine = _full_workload()
    mine.ClearField("configs")
    other = _full_workload()
    other.agent = "agent_B"
    decoded = v1.from_server(_own_answer({"web": mine, "db": other}), AGENT)
    expected_id = hashlib.sha256(b"image: nginx\n").hexdigest()
    assert decoded == DesiredState(
        request_id=AGENT_REQUEST_PREFIX + "reconcile-1",
        workloads=(replace(FULL_SPEC, instance=InstanceName("web", AGENT, expected_id), configs={}),),
    )


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda w: None, "uses configs"),
        (lambda w: w.ClearField("runtime"), "runtime is missing"),
        (lambda w: setattr(w, "restartPolicy", 7), "undefined value 7"),
    ],
)
def test_an_unusable_desired_state_is_reported_not_guessed(
    change: Callable[[base.Workload], None], match: str
) -> None:
    wire = _full_workload()
    if match != "uses configs":
        wire.ClearField("configs")
    change(wire)
    decoded = v1.from_server(_own_answer({"web": wire}), AGENT)
    assert isinstance(decoded, DesiredState)
    assert decoded.workloads == ()
    assert decoded.error is not None and match in decoded.error


def test_an_error_answer_to_the_agents_own_request_is_reported() -> None:
    wire = api.FromServer(
        response=base.Response(requestId=AGENT_REQUEST_PREFIX + "r", error=base.Error(message="nope"))
    )
    assert v1.from_server(wire, AGENT) == DesiredState(AGENT_REQUEST_PREFIX + "r", error="nope")
    wire.response.UpdateStateSuccess.SetInParent()
    decoded = v1.from_server(wire, AGENT)
    assert isinstance(decoded, DesiredState) and decoded.error is not None


# --- logs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inner", "expected"),
    [
        (base.LogsRequest(), LogsRequest("agent_B@reader@1")),
        (
            base.LogsRequest(
                workloadNames=[WIRE_INST], follow=True, tail=-1, since="2024-01-01", until="now"
            ),
            LogsRequest("agent_B@reader@1", (INST,), follow=True, tail=-1, since="2024-01-01", until="now"),
        ),
        (base.LogsRequest(follow=False, tail=0), LogsRequest("agent_B@reader@1", follow=False, tail=0)),
        (base.LogsRequest(since=""), LogsRequest("agent_B@reader@1", since="")),
    ],
)
def test_a_logs_request_decodes_and_encodes(inner: base.LogsRequest, expected: LogsRequest) -> None:
    wire = api.FromServer(logsRequest=api.LogsRequest(requestId="agent_B@reader@1", logsRequest=inner))
    assert v1.from_server(wire, AGENT) == expected
    back = v1.from_server_to_proto(expected)
    assert v1.from_server(back, AGENT) == expected
    for optional in ("tail", "since", "until"):
        assert back.logsRequest.logsRequest.HasField(optional) == inner.HasField(optional)


def test_a_logs_request_without_its_body_is_rejected() -> None:
    with pytest.raises(ConversionError, match="logs request 'r' without its content"):
        v1.from_server(api.FromServer(logsRequest=api.LogsRequest(requestId="r")), AGENT)


def test_a_logs_cancel_request_carries_only_the_id() -> None:
    wire = api.FromServer(logsCancelRequest=api.LogsCancelRequest(requestId="cli-conn-1@7"))
    assert v1.from_server(wire, AGENT) == LogsCancelRequest("cli-conn-1@7")
    assert v1.from_server_to_proto(LogsCancelRequest("cli-conn-1@7")) == wire


def test_a_message_without_content_is_rejected() -> None:
    with pytest.raises(ConversionError, match="without content"):
        v1.from_server(api.FromServer(), AGENT)
    with pytest.raises(ConversionError, match="undecodable"):
        v1.decode_from_server(b"\xff\xff", AGENT)


# --- round trips of what the server sends --------------------------------------------


@pytest.mark.parametrize(
    "msg",
    [
        ServerHello((FULL_SPEC, WorkloadSpec(InstanceName("b", AGENT, "2"), "podman", ""))),
        UpdateWorkload(added=(FULL_SPEC,), deleted=(DeleteRequest(INST, {"d": DeleteCondition.RUNNING}),)),
        UpdateWorkloadState((WorkloadState(INST, ExecutionState.retrying(2, "no image")),)),
        LogsRequest("a@b@c", (INST,), follow=True, tail=5),
    ],
    ids=lambda m: type(m).__name__,
)
def test_what_the_server_sends_round_trips_through_bytes(msg: FromServerMessageV1) -> None:
    wire = v1.from_server_to_proto(msg)
    assert v1.decode_from_server(wire.SerializeToString(), AGENT) == msg


# --- what the agent sends ------------------------------------------------------------


@pytest.mark.parametrize("tags", [{}, {"location": "online", "x": ""}])
def test_agent_hello_carries_name_protocol_version_and_always_tags(tags: dict[str, str]) -> None:
    wire = api.ToServer.FromString(agent_hello(AgentHello(AGENT, tags)).SerializeToString())
    assert wire.WhichOneof("ToServerEnum") == "agentHello"
    assert wire.agentHello.agentName == AGENT
    assert wire.agentHello.protocolVersion == "1.0.1"
    assert wire.agentHello.HasField("tags")
    assert dict(wire.agentHello.tags.tags) == tags


def _request_body(request: base.Request) -> bytes:
    return request.SerializeToString()


@pytest.mark.parametrize(
    "content",
    [
        base.Request(
            completeStateRequest=base.CompleteStateRequest(fieldMask=["a.b"], subscribeForEvents=True)
        ),
        base.Request(
            updateStateRequest=base.UpdateStateRequest(newState=base.CompleteState(), updateMask=["m"])
        ),
        base.Request(logsRequest=base.LogsRequest(workloadNames=[WIRE_INST], follow=True)),
        base.Request(logsCancelRequest=base.LogsCancelRequest()),
        base.Request(eventsCancelRequest=base.EventsCancelRequest()),
    ],
    ids=lambda r: str(r.WhichOneof("RequestContent")),
)
def test_a_workload_request_is_sent_with_its_prefixed_id_and_content_unchanged(content: base.Request) -> None:
    wire = v1.to_server(Request("web@7", _request_body(content)))
    assert wire.WhichOneof("ToServerEnum") == "request"
    assert wire.request.requestId == "web@7"
    wire.request.ClearField("requestId")
    assert wire.request == content


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"\xff", "not a Request"),
        (_request_body(base.Request()), "has no content"),
        (
            _request_body(base.Request(updateStateRequest=base.UpdateStateRequest(updateMask=["x"]))),
            "new state",
        ),
    ],
)
def test_a_request_the_server_would_break_the_connection_on_is_never_sent(body: bytes, match: str) -> None:
    with pytest.raises(ConversionError, match=match):
        v1.to_server(Request("web@7", body))
    with pytest.raises(ConversionError, match=match):  # nor on the connection's own path
        v1.encode(Request("web@7", body))


def test_the_agents_own_request_asks_for_the_desired_workloads() -> None:
    wire = v1.to_server(DesiredStateRequest(AGENT_REQUEST_PREFIX + "reconcile-1"))
    assert wire.request.requestId == AGENT_REQUEST_PREFIX + "reconcile-1"
    assert list(wire.request.completeStateRequest.fieldMask) == ["desiredState.workloads"]
    assert not wire.request.completeStateRequest.subscribeForEvents


def test_agent_load_status_fields() -> None:
    wire = api.ToServer.FromString(v1.to_server(AgentLoadStatus(AGENT, 42, 2**40)).SerializeToString())
    assert wire.WhichOneof("ToServerEnum") == "AgentLoadStatus"
    assert wire.AgentLoadStatus.agent_name == AGENT
    assert wire.AgentLoadStatus.cpu_usage.cpu_usage == 42
    assert wire.AgentLoadStatus.free_memory.free_memory == 2**40
    zero = v1.to_server(AgentLoadStatus(AGENT, 0, 0))
    assert zero.AgentLoadStatus.HasField("cpu_usage") and zero.AgentLoadStatus.HasField("free_memory")


@pytest.mark.parametrize(("cpu", "memory"), [(-1, 0), (2**32, 0), (0, -1), (0, 2**64)])
def test_agent_load_status_out_of_range_is_a_conversion_error(cpu: int, memory: int) -> None:
    with pytest.raises(ConversionError, match="does not fit"):
        v1.to_server(AgentLoadStatus(AGENT, cpu, memory))


def test_log_entries_and_logs_stopped_echo_the_request_id() -> None:
    other = InstanceName("db", AGENT, "2")
    entries = v1.to_server(LogEntries("agent_B@r@1", (LogEntry(INST, "line 1"), LogEntry(other, "x"))))
    assert entries.WhichOneof("ToServerEnum") == "logEntriesResponse"
    assert entries.logEntriesResponse.requestId == "agent_B@r@1"
    assert [
        (e.workloadName, e.message) for e in entries.logEntriesResponse.logEntriesResponse.logEntries
    ] == [
        (WIRE_INST, "line 1"),
        (base.WorkloadInstanceName(workloadName="db", agentName=AGENT, id="2"), "x"),
    ]
    stopped = v1.to_server(LogsStopped("agent_B@r@1", INST))
    assert stopped.WhichOneof("ToServerEnum") == "logsStopResponse"
    assert stopped.logsStopResponse.requestId == "agent_B@r@1"
    assert stopped.logsStopResponse.logsStopResponse.workloadName == WIRE_INST
    empty = v1.to_server(LogEntries("r", ()))
    assert empty.logEntriesResponse.HasField("logEntriesResponse")


def test_the_connection_gets_log_entries_as_the_bytes_they_were_encoded_to() -> None:
    msg = LogEntries("agent_B@r@1", (LogEntry(INST, "line 1"), LogEntry(INST, "")))
    sent = v1.encode(msg)
    assert isinstance(sent, bytes)
    assert sent == v1.to_server(msg).SerializeToString()


def test_a_workloads_request_leaves_as_its_checked_body_behind_the_routed_id() -> None:
    content = base.CompleteStateRequest(fieldMask=["desiredState"], subscribeForEvents=True)
    body = base.Request(completeStateRequest=content).SerializeToString()
    sent = v1.encode(Request("web@7", body=body))
    expected = api.ToServer(request=base.Request(requestId="web@7", completeStateRequest=content))
    assert sent == expected.SerializeToString()
    with pytest.raises(ConversionError, match="no content"):
        v1.encode(Request("web@8", body=b""))


@pytest.mark.parametrize(
    "content",
    [
        base.Request(completeStateRequest=base.CompleteStateRequest(fieldMask=["a"])),
        base.Request(logsRequest=base.LogsRequest(workloadNames=[WIRE_INST], follow=True)),
        base.Request(logsCancelRequest=base.LogsCancelRequest()),
        base.Request(eventsCancelRequest=base.EventsCancelRequest()),
        base.Request(
            updateStateRequest=base.UpdateStateRequest(newState=base.CompleteState(), updateMask=["x"])
        ),
    ],
    ids=lambda r: str(r.WhichOneof("RequestContent")),
)
def test_every_request_content_is_sent_as_to_server_sends_it(content: base.Request) -> None:
    request = Request("web@7", _request_body(content))
    assert api.ToServer.FromString(serialized(v1.encode(request))) == v1.to_server(request)


def test_other_messages_are_encoded_as_to_server_does() -> None:
    stopped = LogsStopped("agent_B@r@1", INST)
    assert v1.encode(stopped) == v1.to_server(stopped)


def _built_by_protobuf(msg: LogEntries) -> api.ToServer:
    entries = [
        base.LogEntry(workloadName=v1.instance_name_to_proto(e.instance), message=e.message)
        for e in msg.entries
    ]
    return api.ToServer(
        logEntriesResponse=api.LogEntriesResponse(
            requestId=msg.request_id, logEntriesResponse=base.LogEntriesResponse(logEntries=entries)
        )
    )


_LONG_NAME = InstanceName("w" * 200, "a" * 70, "f" * 64)


@pytest.mark.parametrize(
    "msg",
    [
        LogEntries("agent_B@r@1", (LogEntry(INST, "one"), LogEntry(INST, "two"))),
        LogEntries("r", (LogEntry(INST, ""), LogEntry(INST, "after an empty line"))),
        LogEntries("", (LogEntry(INST, "no request id"),)),
        LogEntries("r", (LogEntry(InstanceName("", "", ""), "no name"),)),
        LogEntries("r", (LogEntry(INST, "grüße ✓ \ufffd \r"),)),
        LogEntries("r", tuple(LogEntry(INST, "x" * n) for n in (126, 127, 128, 16_383, 16_384, 3_000_000))),
        LogEntries("r", (LogEntry(_LONG_NAME, "long"), LogEntry(INST, "b"), LogEntry(_LONG_NAME, "c"))),
        LogEntries("r" * 300, ()),
    ],
)
def test_log_entries_are_encoded_exactly_as_protobuf_would(msg: LogEntries) -> None:
    wire = v1.to_server(msg)
    assert wire == _built_by_protobuf(msg)
    assert wire.SerializeToString() == _built_by_protobuf(msg).SerializeToString()


def test_log_entries_that_are_no_text_are_a_conversion_error() -> None:
    with pytest.raises(ConversionError, match="not valid text"):
        v1.to_server(LogEntries("r", (LogEntry(INST, "lone \udc80 surrogate"),)))


def test_instance_id_is_the_sha256_of_the_rendered_runtime_config() -> None:
    assert v1.instance_id("image: x") == hashlib.sha256(b"image: x").hexdigest()
