"""The answer to the agent's own request carries the instances of this agent the server knows."""

from __future__ import annotations

from ankaios_agent.agent import conversion
from ankaios_agent.agent.model import AGENT_REQUEST_PREFIX, DesiredState, InstanceName
from ankaios_agent.proto import ankaios_pb2 as pb

AGENT = "agent_A"


def _state(workload: str, agent: str, id_: str) -> pb.WorkloadState:
    return pb.WorkloadState(
        instanceName=pb.WorkloadInstanceName(workloadName=workload, agentName=agent, id=id_),
        executionState=pb.ExecutionState(agentDisconnected=pb.AGENT_DISCONNECTED),
    )


def test_state_rows_of_this_agent_become_known_instances() -> None:
    """The v0.3.1 server sends every state it holds whatever the field mask; only ours count."""
    states = [
        _state("gone", AGENT, "7"),
        _state("theirs", "agent_B", "1"),
        pb.WorkloadState(executionState=pb.ExecutionState(running=pb.RUNNING_OK)),  # no instance: dropped
    ]
    wire = pb.FromServer(
        response=pb.Response(
            requestId=AGENT_REQUEST_PREFIX + "1",
            completeState=pb.CompleteState(desiredState=pb.State(apiVersion="v0.1"), workloadStates=states),
        )
    )
    msg = conversion.from_server(wire, AGENT)
    assert isinstance(msg, DesiredState)
    assert msg.workloads == ()
    assert msg.known_instances == frozenset({InstanceName("gone", AGENT, "7")})


def test_answer_without_states_knows_no_instances() -> None:
    wire = pb.FromServer(
        response=pb.Response(requestId=AGENT_REQUEST_PREFIX + "1", completeState=pb.CompleteState())
    )
    msg = conversion.from_server(wire, AGENT)
    assert isinstance(msg, DesiredState) and msg.known_instances == frozenset()
