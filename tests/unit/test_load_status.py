"""Node load figures from recorded /proc text: CPU share between two samples and free memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from ankaios_agent.agent import load_status as load_status_module
from ankaios_agent.agent.load_status import (
    CpuTimes,
    LoadStatus,
    ProcFormatError,
    cpu_usage_percent,
    load_status,
    parse_cpu_times,
    parse_free_memory,
    read_cpu_times,
    read_meminfo,
)

# Recorded two seconds apart on a 2-CPU build machine (the ``intr`` line shortened).
STAT_EARLIER = """\
cpu  28064 0 12657 114090 1068 0 455 23 0 0
cpu0 11570 0 5702 60565 212 0 85 7 0 0
cpu1 16494 0 6955 53524 855 0 369 16 0 0
intr 1855917 0 0 0 0 0 0 0 0 0
ctxt 4120035
btime 1764618512
processes 31022
procs_running 2
procs_blocked 0
softirq 1183504 0 229110 12 262866 11 0 8453 439094 0 243958
"""
STAT_LATER = """\
cpu  28095 0 12671 114440 1069 0 455 23 0 0
cpu0 11587 0 5709 60738 212 0 85 7 0 0
cpu1 16508 0 6961 53701 856 0 369 16 0 0
intr 1859395 0 0 0 0 0 0 0 0 0
ctxt 4129110
btime 1764618512
processes 31030
procs_running 1
procs_blocked 0
softirq 1185512 0 229510 12 263055 11 0 8463 439908 0 244553
"""

MEMINFO = """\
MemTotal:       24684084 kB
MemFree:        23379596 kB
MemAvailable:   24056208 kB
Buffers:           36272 kB
Cached:           784968 kB
SwapCached:            0 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
"""


def test_recorded_samples_give_the_share_of_busy_ticks() -> None:
    # busy: user +31, system +14 = 45 ticks; whole: 45 + idle 350 + iowait 1 = 396 ticks -> 11.36 %
    assert cpu_usage_percent(parse_cpu_times(STAT_EARLIER), parse_cpu_times(STAT_LATER)) == 11


def test_aggregate_line_is_parsed_not_a_per_cpu_line() -> None:
    assert parse_cpu_times(STAT_EARLIER) == CpuTimes(28064, 0, 12657, 114090, 1068, 0, 455, 23, 0, 0)


def test_recorded_meminfo_gives_memfree_in_bytes_not_memavailable() -> None:
    assert parse_free_memory(MEMINFO) == 23379596 * 1024


def test_load_status_combines_both_figures() -> None:
    earlier, later = parse_cpu_times(STAT_EARLIER), parse_cpu_times(STAT_LATER)
    assert load_status(earlier, later, MEMINFO) == LoadStatus(cpu_usage=11, free_memory=23379596 * 1024)


def times(**fields: int) -> CpuTimes:
    return CpuTimes(**fields)


@pytest.mark.parametrize(
    ("earlier", "later", "percent"),
    [
        pytest.param(times(), times(user=50, idle=50), 50, id="user_against_idle"),
        pytest.param(
            times(), times(nice=1, system=1, irq=1, softirq=1, idle=4), 50, id="every_busy_column_counts"
        ),
        pytest.param(times(), times(user=25, iowait=75), 25, id="iowait_is_not_busy"),
        pytest.param(times(), times(user=25, steal=75), 25, id="steal_is_in_the_whole_not_busy"),
        pytest.param(times(), times(user=100, guest=100), 0, id="guest_is_taken_out_of_user"),
        pytest.param(times(), times(user=150, guest=50), 67, id="own_user_time_beside_guest_time"),
        pytest.param(
            times(), times(nice=40, guest_nice=40, idle=60), 0, id="guest_nice_is_taken_out_of_nice"
        ),
        pytest.param(times(), times(user=1, idle=7), 13, id="half_a_percent_rounds_up"),
        pytest.param(times(), times(user=1, idle=199), 1, id="half_a_percent_exactly_rounds_up"),
        pytest.param(times(), times(user=1, idle=201), 0, id="less_than_half_rounds_down"),
        pytest.param(times(user=5, idle=5), times(user=5, idle=5), 0, id="no_ticks_between_samples"),
        pytest.param(times(user=9, idle=1), times(user=5, idle=9), 0, id="busy_counter_went_back"),
        pytest.param(times(user=5, idle=9), times(user=9, idle=1), 100, id="whole_went_back_is_capped"),
        pytest.param(times(), times(user=100), 100, id="all_busy"),
    ],
)
def test_cpu_share_is_counted_like_the_reference(earlier: CpuTimes, later: CpuTimes, percent: int) -> None:
    assert cpu_usage_percent(earlier, later) == percent


def test_older_kernel_with_fewer_columns_counts_them_as_zero() -> None:
    assert parse_cpu_times("cpu  1 2 3 4 5 6 7\n") == CpuTimes(1, 2, 3, 4, 5, 6, 7, 0, 0, 0)


def test_columns_a_later_kernel_adds_are_ignored() -> None:
    assert parse_cpu_times("cpu 1 2 3 4 5 6 7 8 9 10 11 12\n") == CpuTimes(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("cpu0 1 2 3 4\n", "no aggregate 'cpu' line", id="only_per_cpu_lines"),
        pytest.param("", "no aggregate 'cpu' line", id="empty"),
        pytest.param("cpu 1 x 3\n", "not a number", id="garbage_value"),
        pytest.param("cpu 1 -2 3\n", "negative value", id="negative_value"),
    ],
)
def test_unusable_proc_stat_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ProcFormatError, match=message):
        parse_cpu_times(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("MemTotal: 1 kB\nMemAvailable: 1 kB\n", "no MemFree line", id="missing"),
        pytest.param("MemFree: lots kB\n", "not a number", id="garbage_value"),
        pytest.param("MemFree:\n", "not a number", id="empty_value"),
        pytest.param("MemFree: 12 MB\n", "unit 'MB'", id="unexpected_unit"),
    ],
)
def test_unusable_meminfo_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ProcFormatError, match=message):
        parse_free_memory(text)


def test_readers_read_the_files_of_the_given_proc_folder(tmp_path: Path) -> None:
    (tmp_path / "stat").write_text(STAT_LATER)
    (tmp_path / "meminfo").write_text(MEMINFO)
    assert read_cpu_times(tmp_path) == parse_cpu_times(STAT_LATER)
    assert parse_free_memory(read_meminfo(tmp_path)) == 23379596 * 1024


def test_readers_work_on_this_machine() -> None:
    sample = read_cpu_times()
    assert sample.total > 0
    assert 0 <= cpu_usage_percent(sample, read_cpu_times()) <= 100
    assert parse_free_memory(read_meminfo()) > 0


def test_public_names_are_pinned() -> None:
    assert load_status_module.__all__ == [
        "REPORT_PERIOD_SECONDS",
        "CpuTimes",
        "LoadStatus",
        "ProcFormatError",
        "cpu_usage_percent",
        "load_status",
        "parse_cpu_times",
        "parse_free_memory",
        "read_cpu_times",
        "read_meminfo",
    ]
