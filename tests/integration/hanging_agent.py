"""``run_agent`` with the real manager and a runtime whose engine calls never return.

``python -m tests.integration.hanging_agent --name X --server host:port`` runs the
real app and manager; every create and delete of its runtime blocks forever in a
``run_blocking`` thread, like a Podman pull or stop that hangs. The runtime
prints ``create blocked <workload>`` once a create is parked in its thread, so
a test knows the call is in flight before it sends SIGTERM.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ankaios_agent.agent.app import AgentManager, run_agent
from ankaios_agent.agent.blocking import run_blocking
from ankaios_agent.agent.cli import setup_logging
from ankaios_agent.agent.config import AgentConfig, parse_args
from ankaios_agent.agent.fakes import FakeControlInterfaceHost, FakeRuntime
from ankaios_agent.agent.manager import Manager
from ankaios_agent.agent.model import InstanceName
from ankaios_agent.agent.ports import CreateRequest, MessageSink
from ankaios_agent.agent.timings import AgentTimings


class HangingRuntime(FakeRuntime):
    """Creates and deletes park a worker thread on an event nobody sets."""

    def __init__(self) -> None:
        super().__init__(name="podman")
        self._never = threading.Event()
        self.parked: list[str] = []
        # Set once a call is parked: the server sees nothing of it, so a test cannot wait for it there.
        self.some_call_parked = threading.Event()

    def release(self) -> None:
        """Let every parked call return (an in-process test cleaning up its threads)."""
        self._never.set()

    def _park(self, what: str, workload: str) -> None:
        self.parked.append(f"{what} {workload}")
        self.some_call_parked.set()
        print(f"{what} blocked {workload}", flush=True)
        self._never.wait()

    async def create(self, request: CreateRequest) -> str:
        await run_blocking(self._park, "create", request.spec.name)
        return await super().create(request)

    async def delete(self, instance: InstanceName) -> None:
        await run_blocking(self._park, "delete", instance.workload)
        await super().delete(instance)


@asynccontextmanager
async def hanging_factory(config: AgentConfig, sink: MessageSink) -> AsyncIterator[AgentManager]:
    manager = Manager(
        config.name, {"podman": HangingRuntime()}, FakeControlInterfaceHost(), sink, AgentTimings()
    )
    yield manager


def main() -> int:
    config = parse_args(sys.argv[1:], {})
    setup_logging(config.log_level)
    return asyncio.run(run_agent(config, hanging_factory))


if __name__ == "__main__":
    sys.exit(main())
