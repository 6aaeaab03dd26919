"""The v1.0.1 protos (grpc_api, ank_base, control_api) against the wire contract, field by field.

The expected tables are written down from the published v1.0.1 contract, not read
from our .proto files, so a drift in either shows up here. The comparison reads
the compiled descriptors, i.e. exactly what the generated modules put on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F
from google.protobuf.message import Message

from ankaios_agent.proto import ank_base_pb2, ankaios_pb2, control_api_pb2, grpc_api_pb2

# A row: (number, name, type, label). Types are scalar names or package-qualified
# message/enum names; a map is "map<K, V>". Labels: "singular" (no label),
# "optional" (proto3 optional, explicit presence), "repeated", "map",
# "oneof <Name>" (member of a real oneof).
Row = tuple[int, str, str, str]

GRPC_API: dict[str, list[Row]] = {
    "ToServer": [
        (1, "agentHello", "grpc_api.AgentHello", "oneof ToServerEnum"),
        (2, "updateWorkloadState", "grpc_api.UpdateWorkloadState", "oneof ToServerEnum"),
        (3, "request", "ank_base.Request", "oneof ToServerEnum"),
        (4, "goodbye", "grpc_api.Goodbye", "oneof ToServerEnum"),
        (5, "AgentLoadStatus", "grpc_api.AgentLoadStatus", "oneof ToServerEnum"),
        (6, "commanderHello", "grpc_api.CommanderHello", "oneof ToServerEnum"),
        (7, "logEntriesResponse", "grpc_api.LogEntriesResponse", "oneof ToServerEnum"),
        (8, "logsStopResponse", "grpc_api.LogsStopResponse", "oneof ToServerEnum"),
    ],
    "LogEntriesResponse": [
        (1, "requestId", "string", "singular"),
        (2, "logEntriesResponse", "ank_base.LogEntriesResponse", "singular"),
    ],
    "LogsStopResponse": [
        (1, "requestId", "string", "singular"),
        (2, "logsStopResponse", "ank_base.LogsStopResponse", "singular"),
    ],
    "FromServer": [
        (1, "updateWorkload", "grpc_api.UpdateWorkload", "oneof FromServerEnum"),
        (2, "updateWorkloadState", "grpc_api.UpdateWorkloadState", "oneof FromServerEnum"),
        (3, "response", "ank_base.Response", "oneof FromServerEnum"),
        (4, "serverHello", "grpc_api.ServerHello", "oneof FromServerEnum"),
        (5, "logsRequest", "grpc_api.LogsRequest", "oneof FromServerEnum"),
        (6, "logsCancelRequest", "grpc_api.LogsCancelRequest", "oneof FromServerEnum"),
    ],
    "LogsRequest": [
        (1, "requestId", "string", "singular"),
        (2, "logsRequest", "ank_base.LogsRequest", "singular"),
    ],
    "LogsCancelRequest": [(1, "requestId", "string", "singular")],
    "AgentHello": [
        (1, "agentName", "string", "singular"),
        (2, "protocolVersion", "string", "singular"),
        (3, "tags", "ank_base.Tags", "singular"),
    ],
    "AgentLoadStatus": [
        (1, "agent_name", "string", "singular"),
        (2, "cpu_usage", "ank_base.CpuUsage", "singular"),
        (3, "free_memory", "ank_base.FreeMemory", "singular"),
    ],
    "CommanderHello": [(2, "protocolVersion", "string", "singular")],
    "Goodbye": [],
    "ServerHello": [(1, "addedWorkloads", "grpc_api.AddedWorkload", "repeated")],
    "UpdateWorkload": [
        (1, "addedWorkloads", "grpc_api.AddedWorkload", "repeated"),
        (2, "deletedWorkloads", "grpc_api.DeletedWorkload", "repeated"),
    ],
    "AddedWorkload": [
        (1, "instanceName", "ank_base.WorkloadInstanceName", "singular"),
        (2, "workload", "ank_base.Workload", "singular"),
    ],
    "DeletedWorkload": [
        (1, "instanceName", "ank_base.WorkloadInstanceName", "singular"),
        (2, "dependencies", "map<string, grpc_api.DeleteCondition>", "map"),
    ],
    "UpdateWorkloadState": [(1, "workloadStates", "ank_base.WorkloadState", "repeated")],
}

GRPC_API_ENUMS: dict[str, list[tuple[str, int]]] = {
    "DeleteCondition": [("DEL_COND_RUNNING", 0), ("DEL_COND_NOT_PENDING_NOR_RUNNING", 1)],
}

_STATE = "oneof ExecutionStateEnum"
_RESPONSE = "oneof ResponseContent"
_REQUEST = "oneof RequestContent"

ANK_BASE: dict[str, list[Row]] = {
    "Request": [
        (1, "requestId", "string", "singular"),
        (2, "updateStateRequest", "ank_base.UpdateStateRequest", _REQUEST),
        (3, "completeStateRequest", "ank_base.CompleteStateRequest", _REQUEST),
        (4, "logsRequest", "ank_base.LogsRequest", _REQUEST),
        (5, "logsCancelRequest", "ank_base.LogsCancelRequest", _REQUEST),
        (6, "eventsCancelRequest", "ank_base.EventsCancelRequest", _REQUEST),
    ],
    "Response": [
        (1, "requestId", "string", "singular"),
        (3, "error", "ank_base.Error", _RESPONSE),
        (4, "completeStateResponse", "ank_base.CompleteStateResponse", _RESPONSE),
        (5, "UpdateStateSuccess", "ank_base.UpdateStateSuccess", _RESPONSE),
        (6, "logsRequestAccepted", "ank_base.LogsRequestAccepted", _RESPONSE),
        (7, "logEntriesResponse", "ank_base.LogEntriesResponse", _RESPONSE),
        (8, "logsStopResponse", "ank_base.LogsStopResponse", _RESPONSE),
        (9, "logsCancelAccepted", "ank_base.LogsCancelAccepted", _RESPONSE),
        (10, "eventsCancelAccepted", "ank_base.EventsCancelAccepted", _RESPONSE),
    ],
    "LogsRequest": [
        (1, "workloadNames", "ank_base.WorkloadInstanceName", "repeated"),
        (2, "follow", "bool", "optional"),
        (3, "tail", "int32", "optional"),
        (4, "since", "string", "optional"),
        (5, "until", "string", "optional"),
    ],
    "LogsCancelRequest": [],
    "EventsCancelRequest": [],
    "LogsRequestAccepted": [(1, "workloadNames", "ank_base.WorkloadInstanceName", "repeated")],
    "LogEntriesResponse": [(1, "logEntries", "ank_base.LogEntry", "repeated")],
    "LogsStopResponse": [(1, "workloadName", "ank_base.WorkloadInstanceName", "singular")],
    "LogsCancelAccepted": [],
    "EventsCancelAccepted": [],
    "LogEntry": [
        (1, "workloadName", "ank_base.WorkloadInstanceName", "singular"),
        (2, "message", "string", "singular"),
    ],
    "CompleteStateRequest": [
        (1, "fieldMask", "string", "repeated"),
        (2, "subscribeForEvents", "bool", "singular"),
    ],
    "UpdateStateRequest": [
        (1, "newState", "ank_base.CompleteState", "singular"),
        (2, "updateMask", "string", "repeated"),
    ],
    "UpdateStateSuccess": [
        (1, "addedWorkloads", "string", "repeated"),
        (2, "deletedWorkloads", "string", "repeated"),
    ],
    "CompleteStateResponse": [
        (1, "completeState", "ank_base.CompleteState", "singular"),
        (2, "alteredFields", "ank_base.AlteredFields", "singular"),
    ],
    "AlteredFields": [
        (1, "addedFields", "string", "repeated"),
        (2, "updatedFields", "string", "repeated"),
        (3, "removedFields", "string", "repeated"),
    ],
    "CompleteState": [
        (1, "desiredState", "ank_base.State", "singular"),
        (2, "workloadStates", "ank_base.WorkloadStatesMap", "singular"),
        (3, "agents", "ank_base.AgentMap", "singular"),
    ],
    "WorkloadStatesMap": [
        (1, "agentStateMap", "map<string, ank_base.ExecutionsStatesOfWorkload>", "map"),
    ],
    "ExecutionsStatesOfWorkload": [
        (1, "wlNameStateMap", "map<string, ank_base.ExecutionsStatesForId>", "map"),
    ],
    "ExecutionsStatesForId": [(1, "idStateMap", "map<string, ank_base.ExecutionState>", "map")],
    "ExecutionState": [
        (1, "additionalInfo", "string", "optional"),
        (2, "agentDisconnected", "ank_base.AgentDisconnected", _STATE),
        (3, "pending", "ank_base.Pending", _STATE),
        (4, "running", "ank_base.Running", _STATE),
        (5, "stopping", "ank_base.Stopping", _STATE),
        (6, "succeeded", "ank_base.Succeeded", _STATE),
        (7, "failed", "ank_base.Failed", _STATE),
        (8, "notScheduled", "ank_base.NotScheduled", _STATE),
        (9, "removed", "ank_base.Removed", _STATE),
    ],
    "AgentMap": [(1, "agents", "map<string, ank_base.AgentAttributes>", "map")],
    "CpuUsage": [(1, "cpu_usage", "uint32", "singular")],
    "FreeMemory": [(1, "free_memory", "uint64", "singular")],
    "AgentAttributes": [
        (1, "status", "ank_base.AgentStatus", "singular"),
        (2, "tags", "ank_base.Tags", "singular"),
    ],
    "AgentStatus": [
        (1, "cpu_usage", "ank_base.CpuUsage", "singular"),
        (2, "free_memory", "ank_base.FreeMemory", "singular"),
    ],
    "WorkloadState": [
        (1, "instanceName", "ank_base.WorkloadInstanceName", "singular"),
        (2, "executionState", "ank_base.ExecutionState", "singular"),
    ],
    "WorkloadInstanceName": [
        (1, "workloadName", "string", "singular"),
        (2, "agentName", "string", "singular"),
        (3, "id", "string", "singular"),
    ],
    "State": [
        (1, "apiVersion", "string", "singular"),
        (2, "workloads", "ank_base.WorkloadMap", "singular"),
        (3, "configs", "ank_base.ConfigMap", "singular"),
    ],
    "WorkloadMap": [(1, "workloads", "map<string, ank_base.Workload>", "map")],
    "Workload": [
        (1, "agent", "string", "optional"),
        (2, "restartPolicy", "ank_base.RestartPolicy", "optional"),
        (3, "dependencies", "ank_base.Dependencies", "singular"),
        (4, "tags", "ank_base.Tags", "singular"),
        (5, "runtime", "string", "optional"),
        (6, "runtimeConfig", "string", "optional"),
        (7, "controlInterfaceAccess", "ank_base.ControlInterfaceAccess", "singular"),
        (8, "configs", "ank_base.ConfigMappings", "singular"),
        (9, "files", "ank_base.Files", "singular"),
    ],
    "Tags": [(1, "tags", "map<string, string>", "map")],
    "Dependencies": [(1, "dependencies", "map<string, ank_base.AddCondition>", "map")],
    "Error": [(1, "message", "string", "singular")],
    "ControlInterfaceAccess": [
        (1, "allowRules", "ank_base.AccessRightsRule", "repeated"),
        (2, "denyRules", "ank_base.AccessRightsRule", "repeated"),
    ],
    "AccessRightsRule": [
        (1, "stateRule", "ank_base.StateRule", "oneof AccessRightsRuleEnum"),
        (2, "logRule", "ank_base.LogRule", "oneof AccessRightsRuleEnum"),
    ],
    "StateRule": [
        (1, "operation", "ank_base.ReadWriteEnum", "singular"),
        (2, "filterMasks", "string", "repeated"),
    ],
    "LogRule": [(1, "workloadNames", "string", "repeated")],
    "ConfigMappings": [(1, "configs", "map<string, string>", "map")],
    "Files": [(1, "files", "ank_base.File", "repeated")],
    "File": [
        (1, "mountPoint", "string", "singular"),
        (2, "data", "string", "oneof FileContent"),
        (3, "binaryData", "string", "oneof FileContent"),
    ],
    "ConfigMap": [(1, "configs", "map<string, ank_base.ConfigItem>", "map")],
    "ConfigItem": [
        (1, "String", "string", "oneof ConfigItemEnum"),
        (2, "array", "ank_base.ConfigArray", "oneof ConfigItemEnum"),
        (3, "object", "ank_base.ConfigObject", "oneof ConfigItemEnum"),
    ],
    "ConfigArray": [(1, "values", "ank_base.ConfigItem", "repeated")],
    "ConfigObject": [(1, "fields", "map<string, ank_base.ConfigItem>", "map")],
}

ANK_BASE_ENUMS: dict[str, list[tuple[str, int]]] = {
    "AddCondition": [("ADD_COND_RUNNING", 0), ("ADD_COND_SUCCEEDED", 1), ("ADD_COND_FAILED", 2)],
    "Removed": [("REMOVED", 0)],
    "AgentDisconnected": [("AGENT_DISCONNECTED", 0)],
    "NotScheduled": [("NOT_SCHEDULED", 0)],
    "Pending": [
        ("PENDING_INITIAL", 0),
        ("PENDING_WAITING_TO_START", 1),
        ("PENDING_STARTING", 2),
        ("PENDING_STARTING_FAILED", 8),
    ],
    "Running": [("RUNNING_OK", 0)],
    "Stopping": [
        ("STOPPING", 0),
        ("STOPPING_WAITING_TO_STOP", 1),
        ("STOPPING_REQUESTED_AT_RUNTIME", 2),
        ("STOPPING_DELETE_FAILED", 8),
    ],
    "Succeeded": [("SUCCEEDED_OK", 0)],
    "Failed": [("FAILED_EXEC_FAILED", 0), ("FAILED_UNKNOWN", 1), ("FAILED_LOST", 2)],
    "RestartPolicy": [("NEVER", 0), ("ON_FAILURE", 1), ("ALWAYS", 2)],
    "ReadWriteEnum": [("RW_NOTHING", 0), ("RW_READ", 1), ("RW_WRITE", 2), ("RW_READ_WRITE", 5)],
}

CONTROL_API: dict[str, list[Row]] = {
    "ToAnkaios": [
        (1, "hello", "control_api.Hello", "oneof ToAnkaiosEnum"),
        (3, "request", "ank_base.Request", "oneof ToAnkaiosEnum"),
    ],
    "Hello": [(2, "protocolVersion", "string", "singular")],
    "FromAnkaios": [
        (3, "response", "ank_base.Response", "oneof FromAnkaiosEnum"),
        (4, "controlInterfaceAccepted", "control_api.ControlInterfaceAccepted", "oneof FromAnkaiosEnum"),
        (5, "connectionClosed", "control_api.ConnectionClosed", "oneof FromAnkaiosEnum"),
    ],
    "ControlInterfaceAccepted": [],
    "ConnectionClosed": [(1, "reason", "string", "singular")],
}


@dataclass(frozen=True)
class Contract:
    module: ModuleType
    file_name: str
    package: str
    imports: list[str]
    messages: dict[str, list[Row]]  # in file order
    enums: dict[str, list[tuple[str, int]]]  # in file order


CONTRACTS = [
    Contract(grpc_api_pb2, "grpc_api.proto", "grpc_api", ["ank_base.proto"], GRPC_API, GRPC_API_ENUMS),
    Contract(ank_base_pb2, "ank_base.proto", "ank_base", [], ANK_BASE, ANK_BASE_ENUMS),
    Contract(control_api_pb2, "control_api.proto", "control_api", ["ank_base.proto"], CONTROL_API, {}),
]
by_file = pytest.mark.parametrize("contract", CONTRACTS, ids=[c.file_name for c in CONTRACTS])

_SCALARS = {
    F.TYPE_STRING: "string",
    F.TYPE_BOOL: "bool",
    F.TYPE_INT32: "int32",
    F.TYPE_UINT32: "uint32",
    F.TYPE_UINT64: "uint64",
}


def _file_proto(module: ModuleType) -> descriptor_pb2.FileDescriptorProto:
    return descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)


def _type_text(field: F) -> str:
    if field.type in (F.TYPE_MESSAGE, F.TYPE_ENUM):
        return field.type_name.removeprefix(".")
    return _SCALARS[field.type]


def _rows(message: descriptor_pb2.DescriptorProto) -> list[Row]:
    entries = {nested.name: nested for nested in message.nested_type if nested.options.map_entry}
    rows: list[Row] = []
    for field in message.field:
        entry_name = field.type_name.rsplit(".", 1)[-1]
        if field.label == F.LABEL_REPEATED and entry_name in entries:
            key, value = entries[entry_name].field
            assert (key.number, key.name, value.number, value.name) == (1, "key", 2, "value")
            rows.append((field.number, field.name, f"map<{_type_text(key)}, {_type_text(value)}>", "map"))
            continue
        if field.label == F.LABEL_REPEATED:
            label = "repeated"
        elif field.proto3_optional:
            # The synthetic oneof protoc makes for explicit presence: "_<field>", this field only.
            assert message.oneof_decl[field.oneof_index].name == "_" + field.name
            assert [
                f.name
                for f in message.field
                if f.HasField("oneof_index") and f.oneof_index == field.oneof_index
            ] == [field.name]
            label = "optional"
        elif field.HasField("oneof_index"):
            label = "oneof " + message.oneof_decl[field.oneof_index].name
        else:
            label = "singular"
        rows.append((field.number, field.name, _type_text(field), label))
    return rows


@by_file
def test_file_name_package_syntax_and_imports(contract: Contract) -> None:
    """Plain file names and the v1 package names: type names like .ank_base.Request go on the wire."""
    proto = _file_proto(contract.module)
    assert (proto.name, proto.package, proto.syntax) == (contract.file_name, contract.package, "proto3")
    assert list(proto.dependency) == contract.imports
    assert not proto.options.ListFields()


@by_file
def test_every_message_matches_the_contract_field_by_field(contract: Contract) -> None:
    """Message order, then per message: numbers, names, types, labels, presence, oneofs and maps."""
    proto = _file_proto(contract.module)
    assert [m.name for m in proto.message_type] == list(contract.messages)
    for message in proto.message_type:
        assert _rows(message) == contract.messages[message.name], message.name
        # Nothing nested but map entries; no reserved ranges, no extensions.
        assert all(n.options.map_entry for n in message.nested_type), message.name
        assert not message.enum_type and not message.reserved_range and not message.extension_range


@by_file
def test_every_enum_matches_the_contract(contract: Contract) -> None:
    """Enum names, value names and numbers including the gaps (Pending/Stopping 3-7, ReadWriteEnum 3-4)."""
    proto = _file_proto(contract.module)
    assert {e.name: [(v.name, v.number) for v in e.value] for e in proto.enum_type} == contract.enums
    assert [e.name for e in proto.enum_type] == list(contract.enums)
    for values in contract.enums.values():
        for name, number in values:
            assert getattr(contract.module, name) == number


def _declared(file_name: str) -> list[str]:
    """Top-level messages and enums in the order the .proto file declares them."""
    text = (Path(grpc_api_pb2.__file__).resolve().parent / file_name).read_text(encoding="utf-8")
    return [line.split()[1] for line in text.splitlines() if line.startswith(("message ", "enum "))]


@pytest.mark.parametrize(
    ("file_name", "enum_name", "after"),
    [
        ("ank_base.proto", "AddCondition", "LogEntry"),
        ("ank_base.proto", "Removed", "ExecutionState"),
        ("ank_base.proto", "RestartPolicy", "Dependencies"),
        ("ank_base.proto", "ReadWriteEnum", "LogRule"),
        ("grpc_api.proto", "DeleteCondition", "DeletedWorkload"),
    ],
)
def test_enums_are_declared_where_the_contract_declares_them(
    file_name: str, enum_name: str, after: str
) -> None:
    declared = _declared(file_name)
    assert declared.index(enum_name) == declared.index(after) + 1


def test_services_and_streaming_flags() -> None:
    """grpc_api has AgentConnection.ConnectAgent and CliConnection.ConnectCli, both bidirectional."""
    services = {
        s.name: [
            (m.name, m.input_type, m.output_type, m.client_streaming, m.server_streaming) for m in s.method
        ]
        for s in _file_proto(grpc_api_pb2).service
    }
    assert services == {
        "AgentConnection": [("ConnectAgent", ".grpc_api.ToServer", ".grpc_api.FromServer", True, True)],
        "CliConnection": [("ConnectCli", ".grpc_api.ToServer", ".grpc_api.FromServer", True, True)],
    }
    assert list(services) == ["AgentConnection", "CliConnection"]
    assert not _file_proto(ank_base_pb2).service
    assert not _file_proto(control_api_pb2).service


def test_v1_and_v031_coexist_in_one_process() -> None:
    """Both dialects load side by side: same short names, distinct full names, one descriptor pool."""
    pairs: list[tuple[type[Message], type[Message]]] = [
        (ankaios_pb2.ToServer, grpc_api_pb2.ToServer),
        (ankaios_pb2.ExecutionState, ank_base_pb2.ExecutionState),
        (ankaios_pb2.Request, ank_base_pb2.Request),
        (ankaios_pb2.Workload, ank_base_pb2.Workload),
    ]
    for old, new in pairs:
        assert old.DESCRIPTOR.name == new.DESCRIPTOR.name
        assert old.DESCRIPTOR.full_name != new.DESCRIPTOR.full_name
    pool = ankaios_pb2.DESCRIPTOR.pool
    assert pool is grpc_api_pb2.DESCRIPTOR.pool is control_api_pb2.DESCRIPTOR.pool
    assert pool.FindMessageTypeByName("ankaios.ToServer") is ankaios_pb2.ToServer.DESCRIPTOR
    assert pool.FindMessageTypeByName("grpc_api.ToServer") is grpc_api_pb2.ToServer.DESCRIPTOR
    # The v1 request type is the one ank_base module's class, whichever file refers to it.
    assert (
        grpc_api_pb2.ToServer.DESCRIPTOR.fields_by_name["request"].message_type
        is ank_base_pb2.Request.DESCRIPTOR
    )
    assert (
        control_api_pb2.ToAnkaios.DESCRIPTOR.fields_by_name["request"].message_type
        is ank_base_pb2.Request.DESCRIPTOR
    )


def test_optional_fields_have_explicit_presence_on_the_wire() -> None:
    """Setting a proto3 optional field to its default still puts it on the wire."""
    state = ank_base_pb2.ExecutionState(additionalInfo="", running=ank_base_pb2.RUNNING_OK)
    decoded = ank_base_pb2.ExecutionState.FromString(state.SerializeToString())
    assert decoded.HasField("additionalInfo")
    assert decoded.WhichOneof("ExecutionStateEnum") == "running"
    assert not ank_base_pb2.ExecutionState.FromString(b"").HasField("additionalInfo")
