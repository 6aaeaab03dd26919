"""Project-wide pytest setup.

* The shared Podman environment (tests/support/podman_env.py).
* `root`-marked tests need real root (for example container options an unprivileged user
  cannot have, or host paths only root may write). Under rootless Podman (CI runs
  tests/integration a second time as an unprivileged user, .ci/rootless) they are skipped
  with that reason instead of failing for a reason that has nothing to do with the agent.
"""

from __future__ import annotations

import os

import pytest

from tests.support.podman_env import _podman_marker_gate, podman_env

__all__ = ["_podman_marker_gate", "podman_env", "pytest_collection_modifyitems"]

_NOT_ROOT = pytest.mark.skip(reason="needs root; this run is unprivileged (rootless Podman)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    for item in items:
        if item.get_closest_marker("root") is not None:
            item.add_marker(_NOT_ROOT)
