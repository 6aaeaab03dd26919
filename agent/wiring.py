"""The one place that assembles the product: runtimes, control interfaces, manager.

``assemble`` is the production ``ManagerFactory`` of ``agent.app.run_agent``.
Both runtimes share one Podman connection (and so one private ``podman system
service`` when the agent had to start one) and one set of monitor timings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ankaios_agent.agent.app import AgentManager
from ankaios_agent.agent.blocking import run_blocking
from ankaios_agent.agent.config import AgentConfig
from ankaios_agent.agent.lifecycle_rules import RulesHolder
from ankaios_agent.agent.log_collector import OutboxLogSink
from ankaios_agent.agent.manager import Manager
from ankaios_agent.agent.outbox import Outbox
from ankaios_agent.agent.ports import MessageSink, Runtime
from ankaios_agent.agent.timings import AgentTimings
from ankaios_agent.control_interface import ControlInterfaceHost
from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman.runtime import PodmanRuntime, PodmanTimings
from ankaios_agent.runtimes.podman_kube import PodmanKubeRuntime


@asynccontextmanager
async def assemble(config: AgentConfig, sink: MessageSink) -> AsyncIterator[AgentManager]:
    """Build the manager with every runtime; release Podman when the agent ends."""
    # Raises RuntimeUnavailable (one line, exit 1) when no Podman can be found or started.
    connection = await run_blocking(PodmanConnection.discover, config.podman_socket, config.io_folder)
    try:
        timings = PodmanTimings()
        podman = PodmanRuntime(connection, config.name, timings)
        kube = PodmanKubeRuntime(connection, config.name, timings.monitor)
        # Only the runtimes the settings enable; a workload for another one is an unknown runtime.
        runtimes: dict[str, Runtime] = {
            runtime.name: runtime for runtime in (podman, kube) if runtime.name in config.runtimes
        }
        backlog = sink.queued_requests if isinstance(sink, Outbox) else None
        control_interfaces = ControlInterfaceHost(
            config.io_folder,
            forward=sink.send,
            backlog=backlog,
            strict_authorization=config.strict_authorization,
        )
        # The one cell that says which dialect's lifecycle rules apply; sessions switch it.
        rules = RulesHolder()
        # Log collections wait for the writer instead of growing the outbox (states never wait).
        log_sink = OutboxLogSink(sink) if isinstance(sink, Outbox) else None
        yield Manager(
            config.name,
            runtimes,
            control_interfaces,
            sink,
            AgentTimings(),
            rules=rules,
            run_folder=config.io_folder,
            log_sink=log_sink,
        )
    finally:
        # Stops the private Podman service if discovery started one; containers keep running.
        await run_blocking(connection.close)
