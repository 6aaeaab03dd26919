"""The podman runtime package exports a small, pinned surface."""

from ankaios_agent.runtimes import podman


def test_public_names_are_pinned() -> None:
    assert podman.__all__ == ["MonitorTimings", "PodmanConnection", "PodmanRuntime", "PodmanTimings"]
