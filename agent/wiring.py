"""The one place that assembles the product: runtimes, control interfaces, manager.

``assemble`` is the production ``ManagerFactory`` of ``agent.app.run_agent``.
It depends on the other branches (lifecycle: ``agent.manager``/``agent.timings``;
podman: ``runtimes.podman.runtime``; ctl: ``control_interface``), so it is
imported only when the agent really starts (``agent.cli``), never by tests of
the connection layer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from runtimes.podman.runtime import PodmanRuntime  # type: ignore[import-not-found, unused-ignore]

from agent.app import AgentManager
from agent.config import AgentConfig
from agent.manager import Manager  # type: ignore[import-not-found, unused-ignore]
from agent.outbox import MessageSink
from agent.timings import AgentTimings  # type: ignore[import-not-found, unused-ignore]
from control_interface import ControlInterfaces  # type: ignore[attr-defined, unused-ignore]


@asynccontextmanager
async def assemble(config: AgentConfig, sink: MessageSink) -> AsyncIterator[AgentManager]:
    """Build the manager with every runtime; close the runtimes when the agent ends."""
    # Raises RuntimeUnavailable (exit 1 with one line) when no Podman can be found or started.
    podman = await PodmanRuntime.open(config.name, config.io_folder, config.podman_socket)
    try:
        control_interfaces = ControlInterfaces(config.io_folder, forward=sink.send)
        manager: AgentManager = Manager(
            config.name, {podman.name: podman}, control_interfaces, sink, AgentTimings()
        )
        yield manager
    finally:
        await podman.close()
