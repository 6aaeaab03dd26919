"""Back-off arithmetic of AgentTimings: doubling up to the cap, and no overflow however long it runs."""

from __future__ import annotations

import pytest

from ankaios_agent.agent.timings import AgentTimings


@pytest.mark.parametrize(
    ("restarts", "delay"),
    [(0, 0.0), (1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0), (10, 300.0), (11, 300.0)],
)
def test_restart_delay_doubles_up_to_the_cap(restarts: int, delay: float) -> None:
    assert AgentTimings().restart_delay(restarts) == delay


@pytest.mark.parametrize("steps", [1_000, 1_025, 10_000, 10**6, 10**12])
def test_restart_delay_stays_at_the_cap_after_any_number_of_restarts(steps: int) -> None:
    assert AgentTimings().restart_delay(steps) == 300.0


@pytest.mark.parametrize("attempts", [6, 1_000, 1_025, 10**6, 10**12])
def test_delete_retry_delay_stays_at_its_cap_after_any_number_of_attempts(attempts: int) -> None:
    assert AgentTimings().delete_retry_delay(attempts) == 30.0


@pytest.mark.parametrize(("attempt", "delay"), [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0)])
def test_delete_retry_delay_follows_the_restart_back_off_below_its_cap(attempt: int, delay: float) -> None:
    assert AgentTimings().delete_retry_delay(attempt) == delay


@pytest.mark.parametrize(
    ("timings", "step", "delay"),
    [
        (AgentTimings(restart_backoff_factor=1.0), 10**6, 1.0),
        (AgentTimings(restart_backoff_initial=0.0), 10**6, 0.0),
        (AgentTimings(restart_backoff_cap=0.0), 10**6, 0.0),
        (AgentTimings(restart_backoff_initial=500.0), 2, 300.0),
        (AgentTimings(restart_backoff_factor=1.5, restart_backoff_cap=1e300), 10**6, 1e300),
    ],
)
def test_back_off_edge_settings(timings: AgentTimings, step: int, delay: float) -> None:
    assert timings.restart_delay(step) == delay
