"""The shared Podman test environment itself works (tests/support/podman_env.py)."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.support.podman_env import PodmanEnv

pytestmark = pytest.mark.podman


def test_service_answers_ping_and_conf_is_exported(podman_env: PodmanEnv) -> None:
    assert podman_env.ping()
    assert os.environ["CONTAINERS_CONF"] == str(podman_env.containers_conf)
    assert 'runtime = "runc"' in podman_env.containers_conf.read_text()


def test_busybox_image_runs_and_label_helpers_find_only_own(podman_env: PodmanEnv) -> None:
    label = f"ank-test={uuid.uuid4().hex[:10]}"
    try:
        result = podman_env.podman(
            "run", "--label", label, "--network", "none", podman_env.image, "echo", "hi"
        )
        assert result.stdout.strip() == "hi"
        assert len(podman_env.containers(label)) == 1
    finally:
        podman_env.remove_by_label(label)
    assert podman_env.containers(label) == []
