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


# --- create retries without limit: full jitter below a doubling, capped maximum ------------------

CREATE_BACKOFF_MAXIMA = [
    (0, 0),
    (1, 500),
    (2, 1_000),
    (3, 2_000),
    (9, 128_000),
    (10, 256_000),
    (11, 300_000),
    (56, 300_000),
    (57, 300_000),  # where a 64-bit product would overflow
    (63, 300_000),
    (64, 300_000),
    (10**6, 300_000),
    (10**12, 300_000),
]


@pytest.mark.parametrize(("retry", "maximum"), CREATE_BACKOFF_MAXIMA)
def test_create_backoff_maximum_doubles_from_500_ms_up_to_300_s(retry: int, maximum: int) -> None:
    assert AgentTimings().create_backoff_max_ms(retry) == maximum


@pytest.mark.parametrize("retry", [1, 2, 5, 11, 70])
def test_create_retry_delay_is_the_drawn_whole_number_of_milliseconds(retry: int) -> None:
    asked: list[int] = []

    def draw(upper: int) -> int:
        asked.append(upper)
        return upper // 3

    timings = AgentTimings(jitter_ms=draw)
    assert timings.create_retry_delay(retry) == (timings.create_backoff_max_ms(retry) // 3) / 1000
    assert asked == [timings.create_backoff_max_ms(retry)]


@pytest.mark.parametrize(("drawn", "delay"), [(-5, 0.0), (10**9, 0.5)])
def test_create_retry_delay_stays_within_its_bounds_whatever_the_draw(drawn: int, delay: float) -> None:
    assert AgentTimings(jitter_ms=lambda upper: drawn).create_retry_delay(1) == delay


def test_the_default_draw_covers_both_ends_and_nothing_outside() -> None:
    seen = {AgentTimings().jitter_ms(2) for _ in range(500)}
    assert seen == {0, 1, 2}


@pytest.mark.parametrize("kwargs", [{"create_backoff_initial_ms": -1}, {"create_backoff_cap_ms": -1}])
def test_negative_create_backoff_is_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="create back-off"):
        AgentTimings(**kwargs)  # type: ignore[arg-type]
