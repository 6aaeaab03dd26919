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
DEL_COND_RUNNING: DeleteCondition
DEL_COND_NOT_PENDING_NOR_RUNNING: DeleteCondition
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

class ToServer(_message.Message):
    __slots__ = ("agentHello", "updateWorkloadState", "request", "goodbye")
    AGENTHELLO_FIELD_NUMBER: _ClassVar[int]
    UPDATEWORKLOADSTATE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    GOODBYE_FIELD_NUMBER: _ClassVar[int]
    agentHello: AgentHello
    updateWorkloadState: UpdateWorkloadState
    request: Request
    goodbye: Goodbye
    def __init__(self, agentHello: _Optional[_Union[AgentHello, _Mapping]] = ..., updateWorkloadState: _Optional[_Union[UpdateWorkloadState, _Mapping]] = ..., request: _Optional[_Union[Request, _Mapping]] = ..., goodbye: _Optional[_Union[Goodbye, _Mapping]] = ...) -> None: ...

class FromServer(_message.Message):
    __slots__ = ("updateWorkload", "updateWorkloadState", "response")
    UPDATEWORKLOAD_FIELD_NUMBER: _ClassVar[int]
    UPDATEWORKLOADSTATE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    updateWorkload: UpdateWorkload
    updateWorkloadState: UpdateWorkloadState
    response: Response
    def __init__(self, updateWorkload: _Optional[_Union[UpdateWorkload, _Mapping]] = ..., updateWorkloadState: _Optional[_Union[UpdateWorkloadState, _Mapping]] = ..., response: _Optional[_Union[Response, _Mapping]] = ...) -> None: ...

class AgentHello(_message.Message):
    __slots__ = ("agentName",)
    AGENTNAME_FIELD_NUMBER: _ClassVar[int]
    agentName: str
    def __init__(self, agentName: _Optional[str] = ...) -> None: ...

class Request(_message.Message):
    __slots__ = ("requestId", "updateStateRequest", "completeStateRequest")
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    UPDATESTATEREQUEST_FIELD_NUMBER: _ClassVar[int]
    COMPLETESTATEREQUEST_FIELD_NUMBER: _ClassVar[int]
    requestId: str
    updateStateRequest: UpdateStateRequest
    completeStateRequest: CompleteStateRequest
    def __init__(self, requestId: _Optional[str] = ..., updateStateRequest: _Optional[_Union[UpdateStateRequest, _Mapping]] = ..., completeStateRequest: _Optional[_Union[CompleteStateRequest, _Mapping]] = ...) -> None: ...

class Goodbye(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UpdateWorkload(_message.Message):
    __slots__ = ("addedWorkloads", "deletedWorkloads")
    ADDEDWORKLOADS_FIELD_NUMBER: _ClassVar[int]
    DELETEDWORKLOADS_FIELD_NUMBER: _ClassVar[int]
    addedWorkloads: _containers.RepeatedCompositeFieldContainer[AddedWorkload]
    deletedWorkloads: _containers.RepeatedCompositeFieldContainer[DeletedWorkload]
    def __init__(self, addedWorkloads: _Optional[_Iterable[_Union[AddedWorkload, _Mapping]]] = ..., deletedWorkloads: _Optional[_Iterable[_Union[DeletedWorkload, _Mapping]]] = ...) -> None: ...

class AddedWorkload(_message.Message):
    __slots__ = ("instanceName", "runtime", "dependencies", "restartPolicy", "tags", "runtimeConfig")
    class DependenciesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: AddCondition
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[AddCondition, str]] = ...) -> None: ...
    INSTANCENAME_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    RESTARTPOLICY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    RUNTIMECONFIG_FIELD_NUMBER: _ClassVar[int]
    instanceName: WorkloadInstanceName
    runtime: str
    dependencies: _containers.ScalarMap[str, AddCondition]
    restartPolicy: RestartPolicy
    tags: _containers.RepeatedCompositeFieldContainer[Tag]
    runtimeConfig: str
    def __init__(self, instanceName: _Optional[_Union[WorkloadInstanceName, _Mapping]] = ..., runtime: _Optional[str] = ..., dependencies: _Optional[_Mapping[str, AddCondition]] = ..., restartPolicy: _Optional[_Union[RestartPolicy, str]] = ..., tags: _Optional[_Iterable[_Union[Tag, _Mapping]]] = ..., runtimeConfig: _Optional[str] = ...) -> None: ...

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
    instanceName: WorkloadInstanceName
    dependencies: _containers.ScalarMap[str, DeleteCondition]
    def __init__(self, instanceName: _Optional[_Union[WorkloadInstanceName, _Mapping]] = ..., dependencies: _Optional[_Mapping[str, DeleteCondition]] = ...) -> None: ...

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

class UpdateWorkloadState(_message.Message):
    __slots__ = ("workloadStates",)
    WORKLOADSTATES_FIELD_NUMBER: _ClassVar[int]
    workloadStates: _containers.RepeatedCompositeFieldContainer[WorkloadState]
    def __init__(self, workloadStates: _Optional[_Iterable[_Union[WorkloadState, _Mapping]]] = ...) -> None: ...

class Response(_message.Message):
    __slots__ = ("requestId", "error", "completeState", "UpdateStateSuccess")
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    COMPLETESTATE_FIELD_NUMBER: _ClassVar[int]
    UPDATESTATESUCCESS_FIELD_NUMBER: _ClassVar[int]
    requestId: str
    error: Error
    completeState: CompleteState
    UpdateStateSuccess: UpdateStateSuccess
    def __init__(self, requestId: _Optional[str] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., completeState: _Optional[_Union[CompleteState, _Mapping]] = ..., UpdateStateSuccess: _Optional[_Union[UpdateStateSuccess, _Mapping]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...

class UpdateStateSuccess(_message.Message):
    __slots__ = ("addedWorkloads", "deletedWorkloads")
    ADDEDWORKLOADS_FIELD_NUMBER: _ClassVar[int]
    DELETEDWORKLOADS_FIELD_NUMBER: _ClassVar[int]
    addedWorkloads: _containers.RepeatedScalarFieldContainer[str]
    deletedWorkloads: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, addedWorkloads: _Optional[_Iterable[str]] = ..., deletedWorkloads: _Optional[_Iterable[str]] = ...) -> None: ...

class CompleteState(_message.Message):
    __slots__ = ("startupState", "desiredState", "workloadStates")
    STARTUPSTATE_FIELD_NUMBER: _ClassVar[int]
    DESIREDSTATE_FIELD_NUMBER: _ClassVar[int]
    WORKLOADSTATES_FIELD_NUMBER: _ClassVar[int]
    startupState: State
    desiredState: State
    workloadStates: _containers.RepeatedCompositeFieldContainer[WorkloadState]
    def __init__(self, startupState: _Optional[_Union[State, _Mapping]] = ..., desiredState: _Optional[_Union[State, _Mapping]] = ..., workloadStates: _Optional[_Iterable[_Union[WorkloadState, _Mapping]]] = ...) -> None: ...

class CompleteStateRequest(_message.Message):
    __slots__ = ("fieldMask",)
    FIELDMASK_FIELD_NUMBER: _ClassVar[int]
    fieldMask: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, fieldMask: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateStateRequest(_message.Message):
    __slots__ = ("newState", "updateMask")
    NEWSTATE_FIELD_NUMBER: _ClassVar[int]
    UPDATEMASK_FIELD_NUMBER: _ClassVar[int]
    newState: CompleteState
    updateMask: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, newState: _Optional[_Union[CompleteState, _Mapping]] = ..., updateMask: _Optional[_Iterable[str]] = ...) -> None: ...

class State(_message.Message):
    __slots__ = ("apiVersion", "workloads")
    class WorkloadsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Workload
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Workload, _Mapping]] = ...) -> None: ...
    APIVERSION_FIELD_NUMBER: _ClassVar[int]
    WORKLOADS_FIELD_NUMBER: _ClassVar[int]
    apiVersion: str
    workloads: _containers.MessageMap[str, Workload]
    def __init__(self, apiVersion: _Optional[str] = ..., workloads: _Optional[_Mapping[str, Workload]] = ...) -> None: ...

class Workload(_message.Message):
    __slots__ = ("agent", "restartPolicy", "dependencies", "tags", "runtime", "runtimeConfig")
    class DependenciesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: AddCondition
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[AddCondition, str]] = ...) -> None: ...
    AGENT_FIELD_NUMBER: _ClassVar[int]
    RESTARTPOLICY_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    RUNTIMECONFIG_FIELD_NUMBER: _ClassVar[int]
    agent: str
    restartPolicy: RestartPolicy
    dependencies: _containers.ScalarMap[str, AddCondition]
    tags: _containers.RepeatedCompositeFieldContainer[Tag]
    runtime: str
    runtimeConfig: str
    def __init__(self, agent: _Optional[str] = ..., restartPolicy: _Optional[_Union[RestartPolicy, str]] = ..., dependencies: _Optional[_Mapping[str, AddCondition]] = ..., tags: _Optional[_Iterable[_Union[Tag, _Mapping]]] = ..., runtime: _Optional[str] = ..., runtimeConfig: _Optional[str] = ...) -> None: ...

class Tag(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
