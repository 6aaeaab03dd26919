"""The v1.0.1 session rule: every ServerHello is the authoritative list of this agent's workloads.

The server sends a ServerHello after every accepted hello, also when nothing is
assigned to the agent, so the agent never asks for its desired state itself.
Unchanged workloads are resumed, changed ones replaced, and what the list does
not name is deleted -- also when the list is empty. Pure: no generated code.
"""

from __future__ import annotations

import logging

from ankaios_agent.agent.lifecycle_rules import V1_RULES, LifecycleRules
from ankaios_agent.agent.model import DesiredState, ServerHello
from ankaios_agent.agent.reconcile import DesiredSnapshot

log = logging.getLogger(__name__)


class ServerHelloSession:
    def __init__(self, agent_name: str) -> None:
        self._agent_name = agent_name

    @property
    def lifecycle(self) -> LifecycleRules:
        return V1_RULES

    def start(self) -> None:
        """Nothing to ask: the server's ServerHello follows the hello on its own."""

    def snapshot(self, msg: DesiredState | ServerHello) -> DesiredSnapshot | None:
        if isinstance(msg, DesiredState):
            log.debug("ignoring an answer to a reconciliation request on a v1.0.1 session")
            return None
        mine = tuple(spec for spec in msg.added if spec.instance.agent == self._agent_name)
        if len(mine) != len(msg.added):
            log.warning(
                "the ServerHello lists %d workloads of other agents; ignoring them",
                len(msg.added) - len(mine),
            )
        # The hello carries no states: the server's view of this agent's instances is not known.
        return DesiredSnapshot(mine)
