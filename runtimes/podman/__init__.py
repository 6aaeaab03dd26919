"""The ``podman`` runtime."""

from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman.monitor import MonitorTimings
from ankaios_agent.runtimes.podman.runtime import PodmanRuntime, PodmanTimings

__all__ = ["MonitorTimings", "PodmanConnection", "PodmanRuntime", "PodmanTimings"]
