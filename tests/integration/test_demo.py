"""The README's demo command works: the real agent, real Podman, the server double, the sample state."""

from __future__ import annotations

import secrets
import subprocess
import sys

import pytest

from tests.support.podman_env import PodmanEnv

pytestmark = pytest.mark.podman


def test_demo_runs_sample_state_and_update_to_the_end(podman_env: PodmanEnv) -> None:
    """`python -m demo --once`: every sample workload settles, the update settles, the agent exits 0."""
    agent = f"demo_{secrets.token_hex(4)}"
    result = subprocess.run(
        [sys.executable, "-m", "demo", "--once", "--port", "0", "--agent", agent, "--timeout", "120"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "completeStateRequest 'ctl_client@demo-1' answered" in out
    for row in ("migrate", "Succeeded(Ok)"), ("webserver", "Removed"), ("ctl_client", "Succeeded(Ok)"):
        assert any(row[0] in line and row[1] in line for line in out.splitlines()), row
    assert "agent exited with code 0" in out
    assert podman_env.container_ids(f"agent={agent}") == []


def test_demo_against_the_v1_server_double(podman_env: PodmanEnv) -> None:
    """`python -m demo --protocol v1 --once`: the agent finds the v1.0.1 server, the sample settles."""
    agent = f"demo_{secrets.token_hex(4)}"
    args = ["--once", "--port", "0", "--agent", agent, "--timeout", "120", "--protocol", "v1"]
    result = subprocess.run(
        [sys.executable, "-m", "demo", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Ankaios v1.0.1 server double" in out
    for row in ("migrate", "Succeeded(Ok)"), ("webserver", "Removed"), ("state_reader", "Running(Ok)"):
        assert any(row[0] in line and row[1] in line for line in out.splitlines()), row
    assert "agent exited with code 0" in out
    assert podman_env.container_ids(f"agent={agent}") == []
