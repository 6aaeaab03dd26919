from ankaios_agent.proto import ank_base_pb2 as _ank_base_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeleteCondition(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEL_COND_RUNNING: _ClassVar[DeleteCondition]
    DEL_COND_NOT_PENDING_NOR_RUNNING: _ClassVar[DeleteCondition]
DEL_COND_RUNNING: DeleteCondition
DEL_COND_NOT_PENDING_NOR_RUNNING: DeleteCondition

class ToServer(_message.Message):
    __slots__ = ("agentHello", "updateWorkloadState", "request", "goodbye", "AgentLoadStatus", "commanderHello", "logEntriesResponse", "logsStopResponse")
    AGENTHELLO_FIELD_NUMBER: _ClassVar[int]
    UPDATEWORKLOADSTATE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    GOODBYE_FIELD_NUMBER: _ClassVar[int]
    AGENTLOADSTATUS_FIELD_NUMBER: _ClassVar[int]
    COMMANDERHELLO_FIELD_NUMBER: _ClassVar[int]
    LOGENTRIESRESPONSE_FIELD_NUMBER: _ClassVar[int]
    LOGSSTOPRESPONSE_FIELD_NUMBER: _ClassVar[int]
    agentHello: AgentHello
    updateWorkloadState: UpdateWorkloadState
    request: _ank_base_pb2.Request
    goodbye: Goodbye
    AgentLoadStatus: AgentLoadStatus
    commanderHello: CommanderHello
    logEntriesResponse: LogEntriesResponse
    logsStopResponse: LogsStopResponse
    def __init__(self, agentHello: _Optional[_Union[AgentHello, _Mapping]] = ..., updateWorkloadState: _Optional[_Union[UpdateWorkloadState, _Mapping]] = ..., request: _Optional[_Union[_ank_base_pb2.Request, _Mapping]] = ..., goodbye: _Optional[_Union[Goodbye, _Mapping]] = ..., AgentLoadStatus: _Optional[_Union[AgentLoadStatus, _Mapping]] = ..., commanderHello: _Optional[_Union[CommanderHello, _Mapping]] = ..., logEntriesResponse: _Optional[_Union[LogEntriesResponse, _Mapping]] = ..., logsStopResponse: _Optional[_Union[LogsStopResponse, _Mapping]] = ...) -> None: ...

class LogEntriesResponse(_message.Message):
    __slots__ = ("requestId", "logEntriesResponse")
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    LOGENTRIESRESPONSE_FIELD_NUMBER: _ClassVar[int]
    requestId: str
    logEntriesResponse: _ank_base_pb2.LogEntriesResponse
    def __init__(self, requestId: _Optional[str] = ..., logEntriesResponse: _Optional[_Union[_ank_base_pb2.LogEntriesResponse, _Mapping]] = ...) -> None: ...

class LogsStopResponse(_message.Message):
    __slots__ = ("requestId", "logsStopResponse")
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    LOGSSTOPRESPONSE_FIELD_NUMBER: _ClassVar[int]
    requestId: str
    logsStopResponse: _ank_base_pb2.LogsStopResponse
    def __init__(self, requestId: _Optional[str] = ..., logsStopResponse: _Optional[_Union[_ank_base_pb2.LogsStopResponse, _Mapping]] = ...) -> None: ...

class FromServer(_message.Message):
    __slots__ = ("updateWorkload", "updateWorkloadState", "response", "serverHello", "logsRequest", "logsCancelRequest")
    UPDATEWORKLOAD_FIELD_NUMBER: _ClassVar[int]
    UPDATEWORKLOADSTATE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    SERVERHELLO_FIELD_NUMBER: _ClassVar[int]
    LOGSREQUEST_FIELD_NUMBER: _ClassVar[int]
    LOGSCANCELREQUEST_FIELD_NUMBER: _ClassVar[int]
    updateWorkload: UpdateWorkload
    updateWorkloadState: UpdateWorkloadState
    response: _ank_base_pb2.Response
    serverHello: ServerHello
    logsRequest: LogsRequest
    logsCancelRequest: LogsCancelRequest
    def __init__(self, updateWorkload: _Optional[_Union[UpdateWorkload, _Mapping]] = ..., updateWorkloadState: _Optional[_Union[UpdateWorkloadState, _Mapping]] = ..., response: _Optional[_Union[_ank_base_pb2.Response, _Mapping]] = ..., serverHello: _Optional[_Union[ServerHello, _Mapping]] = ..., logsRequest: _Optional[_Union[LogsRequest, _Mapping]] = ..., logsCancelRequest: _Optional[_Union[LogsCancelRequest, _Mapping]] = ...) -> None: ...

class LogsRequest(_message.Message):
    __slots__ = ("requestId", "logsRequest")
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    LOGSREQUEST_FIELD_NUMBER: _ClassVar[int]
    requestId: str
    logsRequest: _ank_base_pb2.LogsRequest
    def __init__(self, requestId: _Optional[str] = ..., logsRequest: _Optional[_Union[_ank_base_pb2.LogsRequest, _Mapping]] = ...) -> None: ...

class LogsCancelRequest(_message.Message):
    __slots__ = ("requestId",)
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    requestId: str
    def __init__(self, requestId: _Optional[str] = ...) -> None: ...

class AgentHello(_message.Message):
    __slots__ = ("agentName", "protocolVersion", "tags")
    AGENTNAME_FIELD_NUMBER: _ClassVar[int]
    PROTOCOLVERSION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    agentName: str
    protocolVersion: str
    tags: _ank_base_pb2.Tags
    def __init__(self, agentName: _Optional[str] = ..., protocolVersion: _Optional[str] = ..., tags: _Optional[_Union[_ank_base_pb2.Tags, _Mapping]] = ...) -> None: ...

class AgentLoadStatus(_message.Message):
    __slots__ = ("agent_name", "cpu_usage", "free_memory")
    AGENT_NAME_FIELD_NUMBER: _ClassVar[int]
    CPU_USAGE_FIELD_NUMBER: _ClassVar[int]
    FREE_MEMORY_FIELD_NUMBER: _ClassVar[int]
    agent_name: str
    cpu_usage: _ank_base_pb2.CpuUsage
    free_memory: _ank_base_pb2.FreeMemory
    def __init__(self, agent_name: _Optional[str] = ..., cpu_usage: _Optional[_Union[_ank_base_pb2.CpuUsage, _Mapping]] = ..., free_memory: _Optional[_Union[_ank_base_pb2.FreeMemory, _Mapping]] = ...) -> None: ...

class CommanderHello(_message.Message):
    __slots__ = ("protocolVersion",)
    PROTOCOLVERSION_FIELD_NUMBER: _ClassVar[int]
    protocolVersion: str
    def __init__(self, protocolVersion: _Optional[str] = ...) -> None: ...

class Goodbye(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerHello(_message.Message):
    __slots__ = ("addedWorkloads",)
    ADDEDWORKLOADS_FIELD_NUMBER: _ClassVar[int]
    addedWorkloads: _containers.RepeatedCompositeFieldContainer[AddedWorkload]
    def __init__(self, addedWorkloads: _Optional[_Iterable[_Union[AddedWorkload, _Mapping]]] = ...) -> None: ...

class UpdateWorkload(_message.Message):
    __slots__ = ("addedWorkloads", "deletedWorkloads")
    ADDEDWORKLOADS_FIELD_NUMBER: _ClassVar[int]
    DELETEDWORKLOADS_FIELD_NUMBER: _ClassVar[int]
    addedWorkloads: _containers.RepeatedCompositeFieldContainer[AddedWorkload]
    deletedWorkloads: _containers.RepeatedCompositeFieldContainer[DeletedWorkload]
    def __init__(self, addedWorkloads: _Optional[_Iterable[_Union[AddedWorkload, _Mapping]]] = ..., deletedWorkloads: _Optional[_Iterable[_Union[DeletedWorkload, _Mapping]]] = ...) -> None: ...

class AddedWorkload(_message.Message):
    __slots__ = ("instanceName", "workload")
    INSTANCENAME_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    instanceName: _ank_base_pb2.WorkloadInstanceName
    workload: _ank_base_pb2.Workload
    def __init__(self, instanceName: _Optional[_Union[_ank_base_pb2.WorkloadInstanceName, _Mapping]] = ..., workload: _Optional[_Union[_ank_base_pb2.Workload, _Mapping]] = ...) -> None: ...

class DeletedWorkload(_message.Message):
    __slots__ = ("instanceName", "dependencies")
    class DependenciesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: DeleteCondition
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[DeleteCondition, str]] = ...) -> None: ...
    INSTANCENAME_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    instanceName: _ank_base_pb2.WorkloadInstanceName
    dependencies: _containers.ScalarMap[str, DeleteCondition]
    def __init__(self, instanceName: _Optional[_Union[_ank_base_pb2.WorkloadInstanceName, _Mapping]] = ..., dependencies: _Optional[_Mapping[str, DeleteCondition]] = ...) -> None: ...

class UpdateWorkloadState(_message.Message):
    __slots__ = ("workloadStates",)
    WORKLOADSTATES_FIELD_NUMBER: _ClassVar[int]
    workloadStates: _containers.RepeatedCompositeFieldContainer[_ank_base_pb2.WorkloadState]
    def __init__(self, workloadStates: _Optional[_Iterable[_Union[_ank_base_pb2.WorkloadState, _Mapping]]] = ...) -> None: ...
