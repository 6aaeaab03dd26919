"""The ``podman`` runtime (DESIGN "Runtimes sit behind one small protocol")."""

from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman.monitor import MonitorTimings
from ankaios_agent.runtimes.podman.runtime import PodmanRuntime, PodmanTimings

__all__ = ["MonitorTimings", "PodmanConnection", "PodmanRuntime", "PodmanTimings"]
