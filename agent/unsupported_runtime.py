"""The stand-in for a runtime the agent does not run.

A workload naming such a runtime still gets a control loop, so the server and
``ank`` see why it never starts: the create fails for good with
``Unsupported Runtime``, nothing exists to delete, nothing is listed and no
state ever changes by itself. It writes nothing anywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ankaios_agent.agent.errors import WorkloadConfigError
from ankaios_agent.agent.model import UNSUPPORTED_RUNTIME, InstanceName
from ankaios_agent.agent.ports import CreateRequest, OwnedWorkload, StateChange


class UnsupportedRuntime:
    """Implements ``agent.ports.Runtime`` for a runtime name nobody runs."""

    reuses_containers = False

    def __init__(self, name: str) -> None:
        self.name = name

    async def create(self, request: CreateRequest) -> str:
        raise WorkloadConfigError(request.spec.instance, UNSUPPORTED_RUNTIME)

    async def delete(self, instance: InstanceName) -> None:
        return None

    async def list_owned(self) -> list[OwnedWorkload]:
        return []

    def events(self) -> AsyncIterator[StateChange]:
        return self._never()

    async def _never(self) -> AsyncIterator[StateChange]:
        nothing: asyncio.Queue[StateChange] = asyncio.Queue()  # nobody ever puts into it
        while True:
            yield await nothing.get()
