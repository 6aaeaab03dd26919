"""The ``podman`` runtime (DESIGN "Runtimes sit behind one small protocol")."""

from runtimes.podman.client import PodmanConnection
from runtimes.podman.monitor import MonitorTimings
from runtimes.podman.runtime import PodmanRuntime, PodmanTimings

__all__ = ["MonitorTimings", "PodmanConnection", "PodmanRuntime", "PodmanTimings"]
