"""The phase of one workload loop as data: an enum, its events and the table of legal moves.

Pure logic: no I/O, no asyncio. The loop asks ``next_phase`` for every move and
keeps no other flag that says where it is; a move the table does not list is a
bug in the loop and raises ``IllegalTransition``.

* ``IDLE``: no instance of the workload exists (a new loop, or after the old
  instance was removed by an update or a restart, or a delete-only update).
* ``RETRY_WAIT``: the latest create failed; a retry is scheduled.
* ``GAVE_UP``: the create failed for good (retries exhausted, unusable config or
  control interface, or an internal error); only a new command moves it on.
* ``RUNNING``: a container exists and its states are watched.
* ``RESTART_WAIT``: the container ended and the restart policy wants it back;
  the restart is scheduled. It is done either as a replacement (``REPLACING``:
  the update sequence) or by starting the ended container again (``REUSING``:
  back to ``IDLE`` and a create of the same container).
* ``DELETING``: the loop removes its instance for good; a failed delete is
  retried here until it works.
* ``DONE``: the instance is gone and the loop has ended.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class Phase(enum.Enum):
    IDLE = "idle"
    RETRY_WAIT = "retry-wait"
    GAVE_UP = "gave-up"
    RUNNING = "running"
    RESTART_WAIT = "restart-wait"
    DELETING = "deleting"
    DONE = "done"


class Event(enum.Enum):
    CREATED = "created"  # the runtime created and started the instance
    CREATE_FAILED = "create-failed"  # a create failed and will be retried
    CREATE_ABANDONED = "create-abandoned"  # a create failed and will not be retried
    ADOPTED = "adopted"  # an existing container became this loop's instance
    ENDED_FOR_RESTART = "ended-for-restart"  # the instance ended and the restart policy wants it back
    REPLACING = "replacing"  # an update or restart starts: pending timers no longer count
    REUSING = "reusing"  # a restart starts the ended container again instead of replacing it
    KEPT = "kept"  # the old instance could not be deleted; it stays the current one
    REMOVED = "removed"  # the instance was deleted (or there was none)
    DELETE_REQUESTED = "delete-requested"  # the workload is to go for good
    DELETED = "deleted"  # the final delete succeeded


_CAN_CREATE = {Event.CREATED: Phase.RUNNING, Event.CREATE_FAILED: Phase.RETRY_WAIT}
_STOP = {Event.DELETE_REQUESTED: Phase.DELETING}

TRANSITIONS: Mapping[Phase, Mapping[Event, Phase]] = {
    Phase.IDLE: {
        **_CAN_CREATE,
        Event.CREATE_ABANDONED: Phase.GAVE_UP,
        Event.ADOPTED: Phase.RUNNING,
        Event.REPLACING: Phase.IDLE,
        Event.REMOVED: Phase.IDLE,
        **_STOP,
    },
    Phase.RETRY_WAIT: {
        **_CAN_CREATE,
        Event.CREATE_ABANDONED: Phase.GAVE_UP,
        Event.REPLACING: Phase.IDLE,
        **_STOP,
    },
    Phase.GAVE_UP: {Event.REPLACING: Phase.IDLE, **_STOP},
    Phase.RUNNING: {
        Event.ENDED_FOR_RESTART: Phase.RESTART_WAIT,
        Event.REPLACING: Phase.RUNNING,
        Event.KEPT: Phase.RUNNING,
        Event.REMOVED: Phase.IDLE,
        **_STOP,
    },
    Phase.RESTART_WAIT: {Event.REPLACING: Phase.RUNNING, Event.REUSING: Phase.IDLE, **_STOP},
    Phase.DELETING: {Event.DELETED: Phase.DONE},
    Phase.DONE: {},
}
"""phase -> event -> the phase after it. Every move not listed here is illegal."""

WAITING: frozenset[Phase] = frozenset({Phase.RETRY_WAIT, Phase.RESTART_WAIT})
"""Phases with a scheduled retry or restart: leaving one cancels its timer."""


class IllegalTransition(Exception):
    """The loop tried a move the table does not allow (a bug in the loop, never bad input)."""

    def __init__(self, phase: Phase, event: Event) -> None:
        super().__init__(f"no transition from {phase.value} on {event.value}")
        self.phase = phase
        self.event = event


def next_phase(old: Phase, event: Event) -> Phase:
    """The phase after ``event`` in phase ``old``; raises IllegalTransition for an unlisted move."""
    try:
        return TRANSITIONS[old][event]
    except KeyError:
        raise IllegalTransition(old, event) from None
