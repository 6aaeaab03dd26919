"""The podman runtime package exports a small, pinned surface (STYLE 15)."""

import runtimes.podman


def test_public_names_are_pinned() -> None:
    assert runtimes.podman.__all__ == ["MonitorTimings", "PodmanConnection", "PodmanRuntime", "PodmanTimings"]
