"""proto/ankaios.proto against the v0.3.1 wire contract, field by field (behaviour "Wire contract").

The expected tables below are written down from the v0.3.1 wire contract, not read from the .proto,
so a drift in either shows up here.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from ankaios_agent.proto import ankaios_pb2 as pb

MSG = FieldDescriptor.TYPE_MESSAGE
ENUM = FieldDescriptor.TYPE_ENUM
STR = FieldDescriptor.TYPE_STRING
ONE = "singular"
REP = "repeated"
MAP = "map"

# message -> [(number, name, type, type name (message/enum) or None, label, oneof or None)]
MESSAGES: dict[str, list[tuple[int, str, int, str | None, str, str | None]]] = {
    "ToServer": [
        (1, "agentHello", MSG, "AgentHello", ONE, "ToServerEnum"),
        (2, "updateWorkloadState", MSG, "UpdateWorkloadState", ONE, "ToServerEnum"),
        (3, "request", MSG, "Request", ONE, "ToServerEnum"),
        (4, "goodbye", MSG, "Goodbye", ONE, "ToServerEnum"),
    ],
    "FromServer": [
        (1, "updateWorkload", MSG, "UpdateWorkload", ONE, "FromServerEnum"),
        (2, "updateWorkloadState", MSG, "UpdateWorkloadState", ONE, "FromServerEnum"),
        (3, "response", MSG, "Response", ONE, "FromServerEnum"),
    ],
    "AgentHello": [(1, "agentName", STR, None, ONE, None)],
    "Request": [
        (1, "requestId", STR, None, ONE, None),
        (2, "updateStateRequest", MSG, "UpdateStateRequest", ONE, "RequestContent"),
        (3, "completeStateRequest", MSG, "CompleteStateRequest", ONE, "RequestContent"),
    ],
    "Goodbye": [],
    "UpdateWorkload": [
        (1, "addedWorkloads", MSG, "AddedWorkload", REP, None),
        (2, "deletedWorkloads", MSG, "DeletedWorkload", REP, None),
    ],
    "AddedWorkload": [
        (1, "instanceName", MSG, "WorkloadInstanceName", ONE, None),
        (2, "runtime", STR, None, ONE, None),
        (3, "dependencies", MSG, "AddCondition", MAP, None),
        (4, "restartPolicy", ENUM, "RestartPolicy", ONE, None),
        (5, "tags", MSG, "Tag", REP, None),
        (6, "runtimeConfig", STR, None, ONE, None),
    ],
    "DeletedWorkload": [
        (1, "instanceName", MSG, "WorkloadInstanceName", ONE, None),
        (2, "dependencies", MSG, "DeleteCondition", MAP, None),
    ],
    "ExecutionState": [
        (1, "additionalInfo", STR, None, ONE, None),
        (2, "agentDisconnected", ENUM, "AgentDisconnected", ONE, "ExecutionStateEnum"),
        (3, "pending", ENUM, "Pending", ONE, "ExecutionStateEnum"),
        (4, "running", ENUM, "Running", ONE, "ExecutionStateEnum"),
        (5, "stopping", ENUM, "Stopping", ONE, "ExecutionStateEnum"),
        (6, "succeeded", ENUM, "Succeeded", ONE, "ExecutionStateEnum"),
        (7, "failed", ENUM, "Failed", ONE, "ExecutionStateEnum"),
        (8, "notScheduled", ENUM, "NotScheduled", ONE, "ExecutionStateEnum"),
        (9, "removed", ENUM, "Removed", ONE, "ExecutionStateEnum"),
    ],
    "WorkloadState": [
        (1, "instanceName", MSG, "WorkloadInstanceName", ONE, None),
        (2, "executionState", MSG, "ExecutionState", ONE, None),
    ],
    "WorkloadInstanceName": [
        (1, "workloadName", STR, None, ONE, None),
        (2, "agentName", STR, None, ONE, None),
        (3, "id", STR, None, ONE, None),
    ],
    "UpdateWorkloadState": [(1, "workloadStates", MSG, "WorkloadState", REP, None)],
    "Response": [
        (1, "requestId", STR, None, ONE, None),
        (3, "error", MSG, "Error", ONE, "ResponseContent"),
        (4, "completeState", MSG, "CompleteState", ONE, "ResponseContent"),
        (5, "UpdateStateSuccess", MSG, "UpdateStateSuccess", ONE, "ResponseContent"),
    ],
    "Error": [(1, "message", STR, None, ONE, None)],
    "UpdateStateSuccess": [
        (1, "addedWorkloads", STR, None, REP, None),
        (2, "deletedWorkloads", STR, None, REP, None),
    ],
    "CompleteState": [
        (1, "startupState", MSG, "State", ONE, None),
        (2, "desiredState", MSG, "State", ONE, None),
        (3, "workloadStates", MSG, "WorkloadState", REP, None),
    ],
    "CompleteStateRequest": [(1, "fieldMask", STR, None, REP, None)],
    "UpdateStateRequest": [
        (1, "newState", MSG, "CompleteState", ONE, None),
        (2, "updateMask", STR, None, REP, None),
    ],
    "State": [
        (1, "apiVersion", STR, None, ONE, None),
        (2, "workloads", MSG, "Workload", MAP, None),
    ],
    "Workload": [
        (1, "agent", STR, None, ONE, None),
        (2, "restartPolicy", ENUM, "RestartPolicy", ONE, None),
        (3, "dependencies", MSG, "AddCondition", MAP, None),
        (4, "tags", MSG, "Tag", REP, None),
        (5, "runtime", STR, None, ONE, None),
        (6, "runtimeConfig", STR, None, ONE, None),
    ],
    "Tag": [(1, "key", STR, None, ONE, None), (2, "value", STR, None, ONE, None)],
}

ENUMS: dict[str, dict[str, int]] = {
    "DeleteCondition": {"DEL_COND_RUNNING": 0, "DEL_COND_NOT_PENDING_NOR_RUNNING": 1},
    "AddCondition": {"ADD_COND_RUNNING": 0, "ADD_COND_SUCCEEDED": 1, "ADD_COND_FAILED": 2},
    "Removed": {"REMOVED": 0},
    "AgentDisconnected": {"AGENT_DISCONNECTED": 0},
    "NotScheduled": {"NOT_SCHEDULED": 0},
    "Pending": {
        "PENDING_INITIAL": 0,
        "PENDING_WAITING_TO_START": 1,
        "PENDING_STARTING": 2,
        "PENDING_STARTING_FAILED": 8,
    },
    "Running": {"RUNNING_OK": 0},
    "Stopping": {
        "STOPPING": 0,
        "STOPPING_WAITING_TO_STOP": 1,
        "STOPPING_REQUESTED_AT_RUNTIME": 2,
        "STOPPING_DELETE_FAILED": 8,
    },
    "Succeeded": {"SUCCEEDED_OK": 0},
    "Failed": {"FAILED_EXEC_FAILED": 0, "FAILED_UNKNOWN": 1, "FAILED_LOST": 2},
    "RestartPolicy": {"NEVER": 0, "ON_FAILURE": 1, "ALWAYS": 2},
}


def _describe(message: Descriptor) -> list[tuple[int, str, int, str | None, str, str | None]]:
    rows = []
    for f in sorted(message.fields, key=lambda f: f.number):
        type_name: str | None = None
        label = REP if f.is_repeated else ONE
        if f.type == MSG:
            assert f.message_type is not None
            if f.message_type.GetOptions().map_entry:
                label = MAP
                value = f.message_type.fields_by_name["value"]
                assert f.message_type.fields_by_name["key"].type == STR
                value_type = value.enum_type or value.message_type
                assert value_type is not None
                type_name = value_type.name
            else:
                type_name = f.message_type.name
        elif f.type == ENUM:
            assert f.enum_type is not None
            type_name = f.enum_type.name
        oneof = f.containing_oneof.name if f.containing_oneof else None
        rows.append((f.number, f.name, f.type, type_name, label, oneof))
    return rows


def test_package_and_syntax_are_v031() -> None:
    """behaviour "Wire contract": proto3, package ankaios."""
    file_proto = descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
    assert file_proto.package == "ankaios"
    assert file_proto.syntax == "proto3"


def test_every_message_matches_spec_field_by_field() -> None:
    """behaviour "Wire contract": names, numbers, types, labels, maps and oneofs of every message."""
    actual = {name: _describe(d) for name, d in pb.DESCRIPTOR.message_types_by_name.items()}
    assert set(actual) == set(MESSAGES)
    for name, expected in MESSAGES.items():
        assert actual[name] == expected, name


def test_no_proto3_optional_fields() -> None:
    """behaviour "Wire contract": v0.3.1 has no synthetic oneofs; every oneof is a real group."""
    for message in pb.DESCRIPTOR.message_types_by_name.values():
        assert [o.name for o in message.oneofs if o.name.startswith("_")] == []


def test_every_enum_matches_spec() -> None:
    """behaviour "Wire contract": every enum value name and number, including the gaps at 3-7."""
    actual = {
        name: {v.name: v.number for v in enum.values}
        for name, enum in pb.DESCRIPTOR.enum_types_by_name.items()
    }
    assert actual == ENUMS


def test_services_and_streaming_flags() -> None:
    """behaviour "Wire contract": AgentConnection.ConnectAgent and CliConnection.ConnectCli, both bidi
    streams."""
    services = {
        s.name: [
            (m.name, m.input_type.name, m.output_type.name, m.client_streaming, m.server_streaming)
            for m in s.methods
        ]
        for s in pb.DESCRIPTOR.services_by_name.values()
    }
    assert services == {
        "AgentConnection": [("ConnectAgent", "ToServer", "FromServer", True, True)],
        "CliConnection": [("ConnectCli", "ToServer", "FromServer", True, True)],
    }
    assert pb.DESCRIPTOR.services_by_name["AgentConnection"].full_name == "ankaios.AgentConnection"


def test_enum_names_live_at_package_scope() -> None:
    """behaviour "Wire contract": module-level constants such as RUNNING_OK exist in the generated code."""
    for values in ENUMS.values():
        for name, number in values.items():
            assert getattr(pb, name) == number
