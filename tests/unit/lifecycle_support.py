"""Builders shared by the lifecycle unit tests (scheduler, state store, loops, manager)."""

from __future__ import annotations

from collections.abc import Mapping

from ankaios_agent.agent.model import (
    AddCondition,
    DeleteCondition,
    DeleteRequest,
    ExecutionState,
    InstanceName,
    RestartPolicy,
    WorkloadSpec,
)

AGENT = "agent_A"


def inst(name: str, id_: str = "1", agent: str = AGENT) -> InstanceName:
    return InstanceName(workload=name, agent=agent, id=id_)


def spec(
    name: str,
    id_: str = "1",
    *,
    runtime: str = "podman",
    restart: RestartPolicy = RestartPolicy.NEVER,
    deps: Mapping[str, AddCondition] | None = None,
) -> WorkloadSpec:
    return WorkloadSpec(
        instance=inst(name, id_),
        runtime=runtime,
        runtime_config=f"image: example/{name}:{id_}",
        restart_policy=restart,
        dependencies=deps or {},
    )


def delete(name: str, id_: str = "1", deps: Mapping[str, DeleteCondition] | None = None) -> DeleteRequest:
    return DeleteRequest(instance=inst(name, id_), dependencies=deps or {})


STARTING = ExecutionState.starting()
RUNNING = ExecutionState.running()
STOPPING_REQUESTED = ExecutionState.requested_at_runtime()
REMOVED = ExecutionState.removed()
WAITING_TO_START = ExecutionState.waiting_to_start()
WAITING_TO_STOP = ExecutionState.waiting_to_stop()
NO_MORE_RETRIES = ExecutionState.starting_failed("No more retries.")
