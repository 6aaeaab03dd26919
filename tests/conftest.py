"""Project-wide pytest setup: the shared Podman environment (tests/support/podman_env.py)."""

from tests.support.podman_env import _podman_marker_gate, podman_env

__all__ = ["_podman_marker_gate", "podman_env"]
