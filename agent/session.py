"""How a session learns the complete list of this agent's workloads (pure, no I/O).

Each dialect has its own rule, and the manager follows the one of the session
that is current:

* v0.3.1 (:class:`DesiredStateQuery`): the server sends no UpdateWorkload at
  all to an agent with nothing assigned, so after each hello the agent asks
  for the desired workloads itself and reconciles with the answer;
* v1.0.1 (``agent.dialect_v1.session.ServerHelloSession``): the server sends
  the authoritative list itself, in a ServerHello after each hello.

Both turn what they get into a :class:`~agent.reconcile.DesiredSnapshot`, so
``Manager.reconcile`` does not care how it was obtained.
"""

from __future__ import annotations

import logging
from typing import Protocol

from ankaios_agent.agent.lifecycle_rules import V0_3_RULES, LifecycleRules
from ankaios_agent.agent.model import AGENT_REQUEST_PREFIX, DesiredState, DesiredStateRequest, ServerHello
from ankaios_agent.agent.ports import MessageSink
from ankaios_agent.agent.reconcile import DesiredSnapshot

log = logging.getLogger(__name__)


class SessionRules(Protocol):
    """What differs per dialect in how a session starts and reconciles."""

    @property
    def lifecycle(self) -> LifecycleRules:
        """The lifecycle rules that apply while a session of this dialect is current."""
        ...

    def start(self) -> None:
        """Right after the hello of a new session."""

    def snapshot(self, msg: DesiredState | ServerHello) -> DesiredSnapshot | None:
        """The snapshot to reconcile with, when ``msg`` is one; None otherwise."""


class DesiredStateQuery:
    """The v0.3.1 rule: the agent's own request for the desired workloads after each hello.

    The request id is one no workload can own. Only the answer to the latest
    request counts: a reconnect may overtake an answer.
    """

    def __init__(self, sink: MessageSink, agent_name: str) -> None:
        self._sink = sink
        self._agent_name = agent_name
        self._seq = 0
        self._awaited: str | None = None

    @property
    def lifecycle(self) -> LifecycleRules:
        return V0_3_RULES

    def start(self) -> None:
        self.ask()

    def snapshot(self, msg: DesiredState | ServerHello) -> DesiredSnapshot | None:
        if isinstance(msg, ServerHello):
            log.warning("ignoring a ServerHello on an Ankaios v0.3.1 session")
            return None
        return self.answer(msg)

    def ask(self) -> None:
        self._seq += 1
        self._awaited = f"{AGENT_REQUEST_PREFIX}reconcile-{self._seq}"
        self._sink.send(DesiredStateRequest(self._awaited))

    def answer(self, msg: DesiredState) -> DesiredSnapshot | None:
        """The snapshot in the answer to the latest request; None for anything else."""
        if msg.request_id != self._awaited:
            log.debug("ignoring the answer to an earlier reconciliation request %s", msg.request_id)
            return None
        self._awaited = None
        if msg.error is not None:
            log.warning("cannot reconcile, the server answered with an error: %s", msg.error)
            return None
        known = frozenset(i for i in msg.known_instances if i.agent == self._agent_name)
        return DesiredSnapshot(msg.workloads, known)
