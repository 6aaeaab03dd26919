"""Log campaigns of the v1.0.1 server double: who asked for which workloads' logs (pure).

The server keeps only the requested instance names that exist in the rendered
desired state, asks each owning agent for its part under the full request id,
routes the providers' answers back to the requester, and cleans up when an
agent goes: campaigns it requested are cancelled, and for its workloads that
were providing, the requester is told they stopped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ankaios_agent.proto import ank_base_pb2 as base
from tests.server_double_v1.state import Instance, instance_key


@dataclass
class Campaign:
    """One log request: who asked (None: the test itself) and which workloads still provide."""

    requester: str | None
    providers: list[base.WorkloadInstanceName]


@dataclass(frozen=True)
class Started:
    """What starting a campaign leads to: the accepted names and one LogsRequest per owning agent."""

    kept: list[base.WorkloadInstanceName]
    per_agent: dict[str, base.LogsRequest]


@dataclass(frozen=True)
class Cleanup:
    """What an agent going away leads to: campaigns to cancel and (request id, workload) stops."""

    cancelled: list[str]
    stopped: list[tuple[str, base.WorkloadInstanceName]]


class LogCampaigns:
    def __init__(self) -> None:
        self._by_id: dict[str, Campaign] = {}

    def start(
        self, request_id: str, requester: str | None, logs: base.LogsRequest, existing: Iterable[Instance]
    ) -> Started:
        known = set(existing)
        kept = [n for n in logs.workloadNames if instance_key(n) in known]
        per_agent: dict[str, base.LogsRequest] = {}
        if kept:
            self._by_id[request_id] = Campaign(requester, list(kept))
            for name in kept:
                if name.agentName not in per_agent:
                    part = base.LogsRequest()
                    part.CopyFrom(logs)
                    del part.workloadNames[:]
                    per_agent[name.agentName] = part
                per_agent[name.agentName].workloadNames.append(name)
        return Started(kept, per_agent)

    def get(self, request_id: str) -> Campaign | None:
        return self._by_id.get(request_id)

    def forget(self, request_id: str) -> None:
        self._by_id.pop(request_id, None)

    def clear(self) -> None:
        self._by_id.clear()

    def agent_gone(self, agent: str) -> Cleanup:
        cancelled = [r for r, c in self._by_id.items() if c.requester == agent]
        for request_id in cancelled:
            del self._by_id[request_id]
        stopped: list[tuple[str, base.WorkloadInstanceName]] = []
        for request_id, campaign in self._by_id.items():
            for name in [n for n in campaign.providers if n.agentName == agent]:
                campaign.providers.remove(name)
                stopped.append((request_id, name))
        return Cleanup(cancelled, stopped)
