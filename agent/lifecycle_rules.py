"""What the lifecycle does differently per wire dialect, as data the loops read.

The scheduler, the workload table and the workload loops are shared by both
dialects; where the two reference agents behave differently in a way a server
or a workload can observe (how a failed create is retried and reported, what
happens to a workload of an unknown runtime, where a workload's folder lives),
the loops consult the rules of the session that is current *when they decide*,
never a copy taken when they started. A server swapped from one version to the
other while the agent runs therefore changes the rules for what happens next,
without restarting anything.

``RulesHolder`` is the one mutable cell: the session layer calls ``use`` when a
session of a dialect starts; everything else only reads ``current``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Dialect(enum.Enum):
    """The wire dialects the agent speaks (values: the reference versions)."""

    V0_3 = "0.3.1"
    V1 = "1.0.1"


@dataclass(frozen=True)
class LifecycleRules:
    """The per-dialect choices of the lifecycle layer."""

    dialect: Dialect
    retry_forever: bool
    """True: a failed create is retried without limit after a random, growing delay and
    reported as ``Retry <n>: <error>``; False: a fixed number of retries at a fixed
    interval, each failure reported as StartingFailed, then ``No more retries.``."""
    final_failure_alone: bool
    """True: a create that cannot succeed (bad config, unusable input) reports only its
    reason; False: the reason is followed by ``No more retries.``."""
    run_unknown_runtimes: bool
    """True: a workload of a runtime the agent lacks gets a loop that reports it as
    unsupported; False: it is not scheduled and nothing is reported."""
    workload_folder: bool
    """True: each instance owns ``<run>/<workload>.<id>/``: its files are written below
    ``files/`` and the folder goes with the instance."""
    reuse_succeeded: bool
    """True: a container that ended with success is started again (same container) when
    its restart policy or the reconciliation wants it back, where the runtime can."""
    start_without_control_interface: bool
    """True: a workload whose control interface cannot be made (its folder or FIFOs) is
    started without one (no mount) and a warning logged; False: the create fails with the
    reason (``Pending(StartingFailed)``)."""
    states_per_instance: bool
    """True: the state store keeps one state per instance (the old and the new instance of
    an updated dependency are both known); False: one per workload name."""


V0_3_RULES = LifecycleRules(
    dialect=Dialect.V0_3,
    retry_forever=False,
    final_failure_alone=False,
    run_unknown_runtimes=False,
    workload_folder=False,
    reuse_succeeded=False,
    start_without_control_interface=False,
    states_per_instance=False,
)
V1_RULES = LifecycleRules(
    dialect=Dialect.V1,
    retry_forever=True,
    final_failure_alone=True,
    run_unknown_runtimes=True,
    workload_folder=True,
    reuse_succeeded=True,
    start_without_control_interface=True,
    states_per_instance=True,
)


class RulesHolder:
    """The rules of the current session (v0.3.1's until a session says otherwise)."""

    def __init__(self, initial: LifecycleRules = V0_3_RULES) -> None:
        self._current = initial

    @property
    def current(self) -> LifecycleRules:
        return self._current

    def use(self, rules: LifecycleRules) -> None:
        self._current = rules
