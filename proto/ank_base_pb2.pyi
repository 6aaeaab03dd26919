from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AddCondition(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADD_COND_RUNNING: _ClassVar[AddCondition]
    ADD_COND_SUCCEEDED: _ClassVar[AddCondition]
    ADD_COND_FAILED: _ClassVar[AddCondition]

class Removed(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REMOVED: _ClassVar[Removed]

class AgentDisconnected(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENT_DISCONNECTED: _ClassVar[AgentDisconnected]

class NotScheduled(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOT_SCHEDULED: _ClassVar[NotScheduled]

class Pending(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PENDING_INITIAL: _ClassVar[Pending]
    PENDING_WAITING_TO_START: _ClassVar[Pending]
    PENDING_STARTING: _ClassVar[Pending]
    PENDING_STARTING_FAILED: _ClassVar[Pending]

class Running(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUNNING_OK: _ClassVar[Running]

class Stopping(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STOPPING: _ClassVar[Stopping]
    STOPPING_WAITING_TO_STOP: _ClassVar[Stopping]
    STOPPING_REQUESTED_AT_RUNTIME: _ClassVar[Stopping]
    STOPPING_DELETE_FAILED: _ClassVar[Stopping]

class Succeeded(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUCCEEDED_OK: _ClassVar[Succeeded]

class Failed(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILED_EXEC_FAILED: _ClassVar[Failed]
    FAILED_UNKNOWN: _ClassVar[Failed]
    FAILED_LOST: _ClassVar[Failed]

class RestartPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NEVER: _ClassVar[RestartPolicy]
    ON_FAILURE: _ClassVar[RestartPolicy]
    ALWAYS: _ClassVar[RestartPolicy]

class ReadWriteEnum(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RW_NOTHING: _ClassVar[ReadWriteEnum]
    RW_READ: _ClassVar[ReadWriteEnum]
    RW_WRITE: _ClassVar[ReadWriteEnum]
    RW_READ_WRITE: _ClassVar[ReadWriteEnum]
ADD_COND_RUNNING: AddCondition
ADD_COND_SUCCEEDED: AddCondition
ADD_COND_FAILED: AddCondition
REMOVED: Removed
AGENT_DISCONNECTED: AgentDisconnected
NOT_SCHEDULED: NotScheduled
PENDING_INITIAL: Pending
PENDING_WAITING_TO_START: Pending
PENDING_STARTING: Pending
PENDING_STARTING_FAILED: Pending
RUNNING_OK: Running
STOPPING: Stopping
STOPPING_WAITING_TO_STOP: Stopping
STOPPING_REQUESTED_AT_RUNTIME: Stopping
STOPPING_DELETE_FAILED: Stopping
SUCCEEDED_OK: Succeeded
FAILED_EXEC_FAILED: Failed
FAILED_UNKNOWN: Failed
FAILED_LOST: Failed
NEVER: RestartPolicy
ON_FAILURE: RestartPolicy
ALWAYS: RestartPolicy
RW_NOTHING: ReadWriteEnum
RW_READ: ReadWriteEnum
RW_WRITE: ReadWriteEnum
RW_READ_WRITE: ReadWriteEnum

class Request(_message.Message):
    __slots__ = ("requestId", "updateStateRequest", "completeStateRequest", "logsRequest", "logsCancelRequest", "eventsCancelRequest")
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    UPDATESTATEREQUEST_FIELD_NUMBER: _ClassVar[int]
    COMPLETESTATEREQUEST_FIELD_NUMBER: _ClassVar[int]
    LOGSREQUEST_FIELD_NUMBER: _ClassVar[int]
    LOGSCANCELREQUEST_FIELD_NUMBER: _ClassVar[int]
    EVENTSCANCELREQUEST_FIELD_NUMBER: _ClassVar[int]
    requestId: str
    updateStateRequest: UpdateStateRequest
    completeStateRequest: CompleteStateRequest
    logsRequest: LogsRequest
    logsCancelRequest: LogsCancelRequest
    eventsCancelRequest: EventsCancelRequest
    def __init__(self, requestId: _Optional[str] = ..., updateStateRequest: _Optional[_Union[UpdateStateRequest, _Mapping]] = ..., completeStateRequest: _Optional[_Union[CompleteStateRequest, _Mapping]] = ..., logsRequest: _Optional[_Union[LogsRequest, _Mapping]] = ..., logsCancelRequest: _Optional[_Union[LogsCancelRequest, _Mapping]] = ..., eventsCancelRequest: _Optional[_Union[EventsCancelRequest, _Mapping]] = ...) -> None: ...

class Response(_message.Message):
    __slots__ = ("requestId", "error", "completeStateResponse", "UpdateStateSuccess", "logsRequestAccepted", "logEntriesResponse", "logsStopResponse", "logsCancelAccepted", "eventsCancelAccepted")
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    COMPLETESTATERESPONSE_FIELD_NUMBER: _ClassVar[int]
    UPDATESTATESUCCESS_FIELD_NUMBER: _ClassVar[int]
    LOGSREQUESTACCEPTED_FIELD_NUMBER: _ClassVar[int]
    LOGENTRIESRESPONSE_FIELD_NUMBER: _ClassVar[int]
    LOGSSTOPRESPONSE_FIELD_NUMBER: _ClassVar[int]
    LOGSCANCELACCEPTED_FIELD_NUMBER: _ClassVar[int]
    EVENTSCANCELACCEPTED_FIELD_NUMBER: _ClassVar[int]
    requestId: str
    error: Error
    completeStateResponse: CompleteStateResponse
    UpdateStateSuccess: UpdateStateSuccess
    logsRequestAccepted: LogsRequestAccepted
    logEntriesResponse: LogEntriesResponse
    logsStopResponse: LogsStopResponse
    logsCancelAccepted: LogsCancelAccepted
    eventsCancelAccepted: EventsCancelAccepted
    def __init__(self, requestId: _Optional[str] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., completeStateResponse: _Optional[_Union[CompleteStateResponse, _Mapping]] = ..., UpdateStateSuccess: _Optional[_Union[UpdateStateSuccess, _Mapping]] = ..., logsRequestAccepted: _Optional[_Union[LogsRequestAccepted, _Mapping]] = ..., logEntriesResponse: _Optional[_Union[LogEntriesResponse, _Mapping]] = ..., logsStopResponse: _Optional[_Union[LogsStopResponse, _Mapping]] = ..., logsCancelAccepted: _Optional[_Union[LogsCancelAccepted, _Mapping]] = ..., eventsCancelAccepted: _Optional[_Union[EventsCancelAccepted, _Mapping]] = ...) -> None: ...

class LogsRequest(_message.Message):
    __slots__ = ("workloadNames", "follow", "tail", "since", "until")
    WORKLOADNAMES_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    workloadNames: _containers.RepeatedCompositeFieldContainer[WorkloadInstanceName]
    follow: bool
    tail: int
    since: str
    until: str
    def __init__(self, workloadNames: _Optional[_Iterable[_Union[WorkloadInstanceName, _Mapping]]] = ..., follow: _Optional[bool] = ..., tail: _Optional[int] = ..., since: _Optional[str] = ..., until: _Optional[str] = ...) -> None: ...

class LogsCancelRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EventsCancelRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LogsRequestAccepted(_message.Message):
    __slots__ = ("workloadNames",)
    WORKLOADNAMES_FIELD_NUMBER: _ClassVar[int]
    workloadNames: _containers.RepeatedCompositeFieldContainer[WorkloadInstanceName]
    def __init__(self, workloadNames: _Optional[_Iterable[_Union[WorkloadInstanceName, _Mapping]]] = ...) -> None: ...

class LogEntriesResponse(_message.Message):
    __slots__ = ("logEntries",)
    LOGENTRIES_FIELD_NUMBER: _ClassVar[int]
    logEntries: _containers.RepeatedCompositeFieldContainer[LogEntry]
    def __init__(self, logEntries: _Optional[_Iterable[_Union[LogEntry, _Mapping]]] = ...) -> None: ...

class LogsStopResponse(_message.Message):
    __slots__ = ("workloadName",)
    WORKLOADNAME_FIELD_NUMBER: _ClassVar[int]
    workloadName: WorkloadInstanceName
    def __init__(self, workloadName: _Optional[_Union[WorkloadInstanceName, _Mapping]] = ...) -> None: ...

class LogsCancelAccepted(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EventsCancelAccepted(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LogEntry(_message.Message):
    __slots__ = ("workloadName", "message")
    WORKLOADNAME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    workloadName: WorkloadInstanceName
    message: str
    def __init__(self, workloadName: _Optional[_Union[WorkloadInstanceName, _Mapping]] = ..., message: _Optional[str] = ...) -> None: ...

class CompleteStateRequest(_message.Message):
    __slots__ = ("fieldMask", "subscribeForEvents")
    FIELDMASK_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBEFOREVENTS_FIELD_NUMBER: _ClassVar[int]
    fieldMask: _containers.RepeatedScalarFieldContainer[str]
    subscribeForEvents: bool
    def __init__(self, fieldMask: _Optional[_Iterable[str]] = ..., subscribeForEvents: _Optional[bool] = ...) -> None: ...

class UpdateStateRequest(_message.Message):
    __slots__ = ("newState", "updateMask")
    NEWSTATE_FIELD_NUMBER: _ClassVar[int]
    UPDATEMASK_FIELD_NUMBER: _ClassVar[int]
    newState: CompleteState
    updateMask: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, newState: _Optional[_Union[CompleteState, _Mapping]] = ..., updateMask: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateStateSuccess(_message.Message):
    __slots__ = ("addedWorkloads", "deletedWorkloads")
    ADDEDWORKLOADS_FIELD_NUMBER: _ClassVar[int]
    DELETEDWORKLOADS_FIELD_NUMBER: _ClassVar[int]
    addedWorkloads: _containers.RepeatedScalarFieldContainer[str]
    deletedWorkloads: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, addedWorkloads: _Optional[_Iterable[str]] = ..., deletedWorkloads: _Optional[_Iterable[str]] = ...) -> None: ...

class CompleteStateResponse(_message.Message):
    __slots__ = ("completeState", "alteredFields")
    COMPLETESTATE_FIELD_NUMBER: _ClassVar[int]
    ALTEREDFIELDS_FIELD_NUMBER: _ClassVar[int]
    completeState: CompleteState
    alteredFields: AlteredFields
    def __init__(self, completeState: _Optional[_Union[CompleteState, _Mapping]] = ..., alteredFields: _Optional[_Union[AlteredFields, _Mapping]] = ...) -> None: ...

class AlteredFields(_message.Message):
    __slots__ = ("addedFields", "updatedFields", "removedFields")
    ADDEDFIELDS_FIELD_NUMBER: _ClassVar[int]
    UPDATEDFIELDS_FIELD_NUMBER: _ClassVar[int]
    REMOVEDFIELDS_FIELD_NUMBER: _ClassVar[int]
    addedFields: _containers.RepeatedScalarFieldContainer[str]
    updatedFields: _containers.RepeatedScalarFieldContainer[str]
    removedFields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, addedFields: _Optional[_Iterable[str]] = ..., updatedFields: _Optional[_Iterable[str]] = ..., removedFields: _Optional[_Iterable[str]] = ...) -> None: ...

class CompleteState(_message.Message):
    __slots__ = ("desiredState", "workloadStates", "agents")
    DESIREDSTATE_FIELD_NUMBER: _ClassVar[int]
    WORKLOADSTATES_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    desiredState: State
    workloadStates: WorkloadStatesMap
    agents: AgentMap
    def __init__(self, desiredState: _Optional[_Union[State, _Mapping]] = ..., workloadStates: _Optional[_Union[WorkloadStatesMap, _Mapping]] = ..., agents: _Optional[_Union[AgentMap, _Mapping]] = ...) -> None: ...

class WorkloadStatesMap(_message.Message):
    __slots__ = ("agentStateMap",)
    class AgentStateMapEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ExecutionsStatesOfWorkload
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ExecutionsStatesOfWorkload, _Mapping]] = ...) -> None: ...
    AGENTSTATEMAP_FIELD_NUMBER: _ClassVar[int]
    agentStateMap: _containers.MessageMap[str, ExecutionsStatesOfWorkload]
    def __init__(self, agentStateMap: _Optional[_Mapping[str, ExecutionsStatesOfWorkload]] = ...) -> None: ...

class ExecutionsStatesOfWorkload(_message.Message):
    __slots__ = ("wlNameStateMap",)
    class WlNameStateMapEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ExecutionsStatesForId
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ExecutionsStatesForId, _Mapping]] = ...) -> None: ...
    WLNAMESTATEMAP_FIELD_NUMBER: _ClassVar[int]
    wlNameStateMap: _containers.MessageMap[str, ExecutionsStatesForId]
    def __init__(self, wlNameStateMap: _Optional[_Mapping[str, ExecutionsStatesForId]] = ...) -> None: ...

class ExecutionsStatesForId(_message.Message):
    __slots__ = ("idStateMap",)
    class IdStateMapEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ExecutionState
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ExecutionState, _Mapping]] = ...) -> None: ...
    IDSTATEMAP_FIELD_NUMBER: _ClassVar[int]
    idStateMap: _containers.MessageMap[str, ExecutionState]
    def __init__(self, idStateMap: _Optional[_Mapping[str, ExecutionState]] = ...) -> None: ...

class ExecutionState(_message.Message):
    __slots__ = ("additionalInfo", "agentDisconnected", "pending", "running", "stopping", "succeeded", "failed", "notScheduled", "removed")
    ADDITIONALINFO_FIELD_NUMBER: _ClassVar[int]
    AGENTDISCONNECTED_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    STOPPING_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    NOTSCHEDULED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    additionalInfo: str
    agentDisconnected: AgentDisconnected
    pending: Pending
    running: Running
    stopping: Stopping
    succeeded: Succeeded
    failed: Failed
    notScheduled: NotScheduled
    removed: Removed
    def __init__(self, additionalInfo: _Optional[str] = ..., agentDisconnected: _Optional[_Union[AgentDisconnected, str]] = ..., pending: _Optional[_Union[Pending, str]] = ..., running: _Optional[_Union[Running, str]] = ..., stopping: _Optional[_Union[Stopping, str]] = ..., succeeded: _Optional[_Union[Succeeded, str]] = ..., failed: _Optional[_Union[Failed, str]] = ..., notScheduled: _Optional[_Union[NotScheduled, str]] = ..., removed: _Optional[_Union[Removed, str]] = ...) -> None: ...

class AgentMap(_message.Message):
    __slots__ = ("agents",)
    class AgentsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: AgentAttributes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[AgentAttributes, _Mapping]] = ...) -> None: ...
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.MessageMap[str, AgentAttributes]
    def __init__(self, agents: _Optional[_Mapping[str, AgentAttributes]] = ...) -> None: ...

class CpuUsage(_message.Message):
    __slots__ = ("cpu_usage",)
    CPU_USAGE_FIELD_NUMBER: _ClassVar[int]
    cpu_usage: int
    def __init__(self, cpu_usage: _Optional[int] = ...) -> None: ...

class FreeMemory(_message.Message):
    __slots__ = ("free_memory",)
    FREE_MEMORY_FIELD_NUMBER: _ClassVar[int]
    free_memory: int
    def __init__(self, free_memory: _Optional[int] = ...) -> None: ...

class AgentAttributes(_message.Message):
    __slots__ = ("status", "tags")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    status: AgentStatus
    tags: Tags
    def __init__(self, status: _Optional[_Union[AgentStatus, _Mapping]] = ..., tags: _Optional[_Union[Tags, _Mapping]] = ...) -> None: ...

class AgentStatus(_message.Message):
    __slots__ = ("cpu_usage", "free_memory")
    CPU_USAGE_FIELD_NUMBER: _ClassVar[int]
    FREE_MEMORY_FIELD_NUMBER: _ClassVar[int]
    cpu_usage: CpuUsage
    free_memory: FreeMemory
    def __init__(self, cpu_usage: _Optional[_Union[CpuUsage, _Mapping]] = ..., free_memory: _Optional[_Union[FreeMemory, _Mapping]] = ...) -> None: ...

class WorkloadState(_message.Message):
    __slots__ = ("instanceName", "executionState")
    INSTANCENAME_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONSTATE_FIELD_NUMBER: _ClassVar[int]
    instanceName: WorkloadInstanceName
    executionState: ExecutionState
    def __init__(self, instanceName: _Optional[_Union[WorkloadInstanceName, _Mapping]] = ..., executionState: _Optional[_Union[ExecutionState, _Mapping]] = ...) -> None: ...

class WorkloadInstanceName(_message.Message):
    __slots__ = ("workloadName", "agentName", "id")
    WORKLOADNAME_FIELD_NUMBER: _ClassVar[int]
    AGENTNAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    workloadName: str
    agentName: str
    id: str
    def __init__(self, workloadName: _Optional[str] = ..., agentName: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class State(_message.Message):
    __slots__ = ("apiVersion", "workloads", "configs")
    APIVERSION_FIELD_NUMBER: _ClassVar[int]
    WORKLOADS_FIELD_NUMBER: _ClassVar[int]
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    apiVersion: str
    workloads: WorkloadMap
    configs: ConfigMap
    def __init__(self, apiVersion: _Optional[str] = ..., workloads: _Optional[_Union[WorkloadMap, _Mapping]] = ..., configs: _Optional[_Union[ConfigMap, _Mapping]] = ...) -> None: ...

class WorkloadMap(_message.Message):
    __slots__ = ("workloads",)
    class WorkloadsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Workload
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Workload, _Mapping]] = ...) -> None: ...
    WORKLOADS_FIELD_NUMBER: _ClassVar[int]
    workloads: _containers.MessageMap[str, Workload]
    def __init__(self, workloads: _Optional[_Mapping[str, Workload]] = ...) -> None: ...

class Workload(_message.Message):
    __slots__ = ("agent", "restartPolicy", "dependencies", "tags", "runtime", "runtimeConfig", "controlInterfaceAccess", "configs", "files")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    RESTARTPOLICY_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    RUNTIMECONFIG_FIELD_NUMBER: _ClassVar[int]
    CONTROLINTERFACEACCESS_FIELD_NUMBER: _ClassVar[int]
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    agent: str
    restartPolicy: RestartPolicy
    dependencies: Dependencies
    tags: Tags
    runtime: str
    runtimeConfig: str
    controlInterfaceAccess: ControlInterfaceAccess
    configs: ConfigMappings
    files: Files
    def __init__(self, agent: _Optional[str] = ..., restartPolicy: _Optional[_Union[RestartPolicy, str]] = ..., dependencies: _Optional[_Union[Dependencies, _Mapping]] = ..., tags: _Optional[_Union[Tags, _Mapping]] = ..., runtime: _Optional[str] = ..., runtimeConfig: _Optional[str] = ..., controlInterfaceAccess: _Optional[_Union[ControlInterfaceAccess, _Mapping]] = ..., configs: _Optional[_Union[ConfigMappings, _Mapping]] = ..., files: _Optional[_Union[Files, _Mapping]] = ...) -> None: ...

class Tags(_message.Message):
    __slots__ = ("tags",)
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TAGS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.ScalarMap[str, str]
    def __init__(self, tags: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Dependencies(_message.Message):
    __slots__ = ("dependencies",)
    class DependenciesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: AddCondition
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[AddCondition, str]] = ...) -> None: ...
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    dependencies: _containers.ScalarMap[str, AddCondition]
    def __init__(self, dependencies: _Optional[_Mapping[str, AddCondition]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...

class ControlInterfaceAccess(_message.Message):
    __slots__ = ("allowRules", "denyRules")
    ALLOWRULES_FIELD_NUMBER: _ClassVar[int]
    DENYRULES_FIELD_NUMBER: _ClassVar[int]
    allowRules: _containers.RepeatedCompositeFieldContainer[AccessRightsRule]
    denyRules: _containers.RepeatedCompositeFieldContainer[AccessRightsRule]
    def __init__(self, allowRules: _Optional[_Iterable[_Union[AccessRightsRule, _Mapping]]] = ..., denyRules: _Optional[_Iterable[_Union[AccessRightsRule, _Mapping]]] = ...) -> None: ...

class AccessRightsRule(_message.Message):
    __slots__ = ("stateRule", "logRule")
    STATERULE_FIELD_NUMBER: _ClassVar[int]
    LOGRULE_FIELD_NUMBER: _ClassVar[int]
    stateRule: StateRule
    logRule: LogRule
    def __init__(self, stateRule: _Optional[_Union[StateRule, _Mapping]] = ..., logRule: _Optional[_Union[LogRule, _Mapping]] = ...) -> None: ...

class StateRule(_message.Message):
    __slots__ = ("operation", "filterMasks")
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    FILTERMASKS_FIELD_NUMBER: _ClassVar[int]
    operation: ReadWriteEnum
    filterMasks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, operation: _Optional[_Union[ReadWriteEnum, str]] = ..., filterMasks: _Optional[_Iterable[str]] = ...) -> None: ...

class LogRule(_message.Message):
    __slots__ = ("workloadNames",)
    WORKLOADNAMES_FIELD_NUMBER: _ClassVar[int]
    workloadNames: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, workloadNames: _Optional[_Iterable[str]] = ...) -> None: ...

class ConfigMappings(_message.Message):
    __slots__ = ("configs",)
    class ConfigsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    configs: _containers.ScalarMap[str, str]
    def __init__(self, configs: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Files(_message.Message):
    __slots__ = ("files",)
    FILES_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[File]
    def __init__(self, files: _Optional[_Iterable[_Union[File, _Mapping]]] = ...) -> None: ...

class File(_message.Message):
    __slots__ = ("mountPoint", "data", "binaryData")
    MOUNTPOINT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    BINARYDATA_FIELD_NUMBER: _ClassVar[int]
    mountPoint: str
    data: str
    binaryData: str
    def __init__(self, mountPoint: _Optional[str] = ..., data: _Optional[str] = ..., binaryData: _Optional[str] = ...) -> None: ...

class ConfigMap(_message.Message):
    __slots__ = ("configs",)
    class ConfigsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ConfigItem
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ConfigItem, _Mapping]] = ...) -> None: ...
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    configs: _containers.MessageMap[str, ConfigItem]
    def __init__(self, configs: _Optional[_Mapping[str, ConfigItem]] = ...) -> None: ...

class ConfigItem(_message.Message):
    __slots__ = ("String", "array", "object")
    STRING_FIELD_NUMBER: _ClassVar[int]
    ARRAY_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    String: str
    array: ConfigArray
    object: ConfigObject
    def __init__(self, String: _Optional[str] = ..., array: _Optional[_Union[ConfigArray, _Mapping]] = ..., object: _Optional[_Union[ConfigObject, _Mapping]] = ...) -> None: ...

class ConfigArray(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[ConfigItem]
    def __init__(self, values: _Optional[_Iterable[_Union[ConfigItem, _Mapping]]] = ...) -> None: ...

class ConfigObject(_message.Message):
    __slots__ = ("fields",)
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ConfigItem
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ConfigItem, _Mapping]] = ...) -> None: ...
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.MessageMap[str, ConfigItem]
    def __init__(self, fields: _Optional[_Mapping[str, ConfigItem]] = ...) -> None: ...
