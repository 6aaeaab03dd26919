"""The workload loop's phase table: every legal move by name, and every other move rejected."""

from __future__ import annotations

import itertools

import pytest

from ankaios_agent.agent.workload_phase import (
    TRANSITIONS,
    WAITING,
    Event,
    IllegalTransition,
    Phase,
    next_phase,
)

P, E = Phase, Event

LEGAL = [
    # a create from a loop without instance: it runs, waits for a retry, or gives up
    ("create succeeds", P.IDLE, E.CREATED, P.RUNNING),
    ("create fails, retry scheduled", P.IDLE, E.CREATE_FAILED, P.RETRY_WAIT),
    ("create fails for good", P.IDLE, E.CREATE_ABANDONED, P.GAVE_UP),
    ("retry succeeds", P.RETRY_WAIT, E.CREATED, P.RUNNING),
    ("retry fails, next retry scheduled", P.RETRY_WAIT, E.CREATE_FAILED, P.RETRY_WAIT),
    ("retries exhausted", P.RETRY_WAIT, E.CREATE_ABANDONED, P.GAVE_UP),
    # adopting an existing container (resume, or a leftover to remove)
    ("existing container adopted", P.IDLE, E.ADOPTED, P.RUNNING),
    # restart policy
    ("instance ended, restart scheduled", P.RUNNING, E.ENDED_FOR_RESTART, P.RESTART_WAIT),
    # an update or a restart begins: pending timers stop counting
    ("update of an idle loop", P.IDLE, E.REPLACING, P.IDLE),
    ("update cancels a pending retry", P.RETRY_WAIT, E.REPLACING, P.IDLE),
    ("update after giving up", P.GAVE_UP, E.REPLACING, P.IDLE),
    ("update of a running instance", P.RUNNING, E.REPLACING, P.RUNNING),
    ("update or restart cancels a pending restart", P.RESTART_WAIT, E.REPLACING, P.RUNNING),
    ("restart starts the ended container again", P.RESTART_WAIT, E.REUSING, P.IDLE),
    # the old instance of an update or restart
    ("old instance removed", P.RUNNING, E.REMOVED, P.IDLE),
    ("no old instance to remove", P.IDLE, E.REMOVED, P.IDLE),
    ("old instance could not be deleted, it stays", P.RUNNING, E.KEPT, P.RUNNING),
    # delete for good, from every phase before it
    ("delete of an idle loop", P.IDLE, E.DELETE_REQUESTED, P.DELETING),
    ("delete cancels a pending retry", P.RETRY_WAIT, E.DELETE_REQUESTED, P.DELETING),
    ("delete after giving up", P.GAVE_UP, E.DELETE_REQUESTED, P.DELETING),
    ("delete of a running instance", P.RUNNING, E.DELETE_REQUESTED, P.DELETING),
    ("delete cancels a pending restart", P.RESTART_WAIT, E.DELETE_REQUESTED, P.DELETING),
    ("final delete done", P.DELETING, E.DELETED, P.DONE),
]

LEGAL_MOVES = {(old, event): new for _, old, event, new in LEGAL}
ILLEGAL = [(old, event) for old, event in itertools.product(Phase, Event) if (old, event) not in LEGAL_MOVES]


@pytest.mark.parametrize(("old", "event", "new"), [row[1:] for row in LEGAL], ids=[row[0] for row in LEGAL])
def test_legal_move(old: Phase, event: Event, new: Phase) -> None:
    assert next_phase(old, event) is new


def test_the_table_holds_exactly_the_named_moves() -> None:
    table = {(old, event): new for old, moves in TRANSITIONS.items() for event, new in moves.items()}
    assert table == LEGAL_MOVES
    assert set(TRANSITIONS) == set(Phase)


@pytest.mark.parametrize(("old", "event"), ILLEGAL, ids=[f"{o.value}-{e.value}" for o, e in ILLEGAL])
def test_illegal_move_is_rejected(old: Phase, event: Event) -> None:
    with pytest.raises(IllegalTransition) as caught:
        next_phase(old, event)
    assert (caught.value.phase, caught.value.event) == (old, event)


@pytest.mark.parametrize(
    ("old", "event"),
    [
        (P.DONE, E.CREATED),  # a finished loop never runs anything again
        (P.DELETING, E.REPLACING),  # a delete is never overtaken by an update
        (P.RESTART_WAIT, E.ENDED_FOR_RESTART),  # one exit schedules one restart
        (P.GAVE_UP, E.CREATED),  # giving up is final until a new command
    ],
)
def test_moves_that_would_be_bugs_are_illegal(old: Phase, event: Event) -> None:
    with pytest.raises(IllegalTransition, match=f"from {old.value} on {event.value}"):
        next_phase(old, event)


def test_only_the_waiting_phases_hold_a_timer() -> None:
    assert frozenset({P.RETRY_WAIT, P.RESTART_WAIT}) == WAITING
