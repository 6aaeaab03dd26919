"""Reconciliation planning: what to do with a snapshot of what the server wants.

Pure logic: given what the server wants, what the agent manages, what waits in
the scheduler queue and which containers of this agent exist on the runtimes
without a control loop ("leftovers"), decide what to do. The manager carries
the plan out.

* An added workload that the agent already manages with the identical spec is
  kept untouched (after a reconnect the server lists every workload again; the
  reference agent restarts them all).
* A different spec for a managed workload becomes an update.
* A leftover container with the same instance name that is ``Running(Ok)`` is
  adopted: same container, no create, no Pending state. One that ended with
  success (``Succeeded(Ok)``) on a runtime that can start it again (only when
  the caller names such runtimes) is kept for reuse: the workload's Create
  starts that very container again instead of creating a new one. Any other leftover of
  that workload name is removed *before* the new one is created, so the two
  never run at once: silently when it has the same instance name (the server
  has one row for both), with the normal delete states when it has another id.
* Only a complete snapshot of this agent's workloads (``DesiredSnapshot``)
  says what is *not* wanted: then managed or queued workloads that are no longer
  desired are deleted, leftovers of undesired workloads are removed with
  states, and instances the server still lists for this agent but the agent no
  longer holds get their ``Removed`` again (it was lost with a broken stream).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ankaios_agent.agent.model import DeleteRequest, InstanceName, State, WorkloadSpec
from ankaios_agent.agent.ports import OwnedWorkload
from ankaios_agent.agent.scheduler import (
    Create,
    Delete,
    Operation,
    QueuedCreate,
    QueuedDelete,
    QueueEntry,
    Update,
    UpdateCreate,
    UpdateDelete,
)


@dataclass(frozen=True)
class DesiredSnapshot:
    """The complete list of this agent's desired workloads, however a session obtained it.

    ``known_instances`` are the instances of this agent the server still has a
    state for; empty when the session does not say.
    """

    workloads: tuple[WorkloadSpec, ...]
    known_instances: frozenset[InstanceName] = frozenset()


@dataclass(frozen=True)
class Leftover:
    """A container (or pod) of this agent that no control loop owns."""

    runtime: str
    owned: OwnedWorkload

    @property
    def name(self) -> str:
        return self.owned.instance.workload


@dataclass(frozen=True)
class Removal:
    leftover: Leftover
    report_states: bool


@dataclass
class Plan:
    operations: list[Operation] = field(default_factory=list)
    adopt: list[tuple[WorkloadSpec, Leftover]] = field(default_factory=list)
    remove: list[Removal] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    reuse: list[tuple[WorkloadSpec, Leftover]] = field(default_factory=list)
    """Ended containers the Create of that spec starts again."""
    leftovers: dict[str, list[Leftover]] = field(default_factory=dict)
    """Leftovers not dealt with yet (only ``plan_added``: the list may be incomplete)."""


QueueLookup = Callable[[str], QueueEntry | None]


def _queued_spec(entry: QueueEntry | None) -> WorkloadSpec | None:
    if isinstance(entry, QueuedCreate | UpdateCreate | UpdateDelete):
        return entry.spec
    return None


def plan_added(
    added: Iterable[WorkloadSpec],
    managed: Mapping[str, WorkloadSpec],
    queued: QueueLookup,
    leftovers: Mapping[str, Sequence[Leftover]],
    reusable: Collection[str] = (),
) -> Plan:
    """Workloads the server lists as added without a matching delete of the same name.

    ``reusable``: the runtimes whose ended containers may be started again.
    """
    plan = Plan(leftovers={name: list(items) for name, items in leftovers.items()})
    for spec in added:
        name = spec.name
        if _queued_spec(queued(name)) == spec:
            plan.kept.append(name)
            continue
        current = managed.get(name)
        if current is not None:
            entry = queued(name)
            if current == spec and entry is None:
                plan.kept.append(name)
            else:
                # A queued delete or a queued other spec would run later against what the server
                # now wants: an update replaces it. Its old instance is the queued spec's when
                # there is one, so that row is reported Removed too.
                pending = _queued_spec(entry)
                old = current.instance if pending is None else pending.instance
                plan.operations.append(Update(spec, DeleteRequest(old)))
            continue
        if not _plan_leftovers(spec, plan.leftovers.pop(name, []), plan, reusable):
            plan.operations.append(Create(spec))
    return plan


def _plan_leftovers(spec: WorkloadSpec, found: list[Leftover], plan: Plan, reusable: Collection[str]) -> bool:
    """Adopt the matching running leftover (or keep an ended one for reuse), remove the others.

    True when adopted: then no Create follows.
    """
    adopted = False
    claimed = False
    for leftover in found:
        owned = leftover.owned
        matches = not claimed and owned.instance == spec.instance and leftover.runtime == spec.runtime
        if matches and owned.state.state is State.RUNNING_OK:
            plan.adopt.append((spec, leftover))
            adopted = claimed = True
        elif matches and owned.state.state is State.SUCCEEDED_OK and leftover.runtime in reusable:
            plan.reuse.append((spec, leftover))
            claimed = True
        else:
            same_instance = owned.instance == spec.instance
            plan.remove.append(Removal(leftover, report_states=not same_instance))
    return adopted


def plan_desired(
    desired: Iterable[WorkloadSpec],
    managed: Mapping[str, WorkloadSpec],
    queue: Mapping[str, QueueEntry],
    leftovers: Mapping[str, Sequence[Leftover]],
    reusable: Collection[str] = (),
) -> Plan:
    """Reconcile against the complete list of this agent's workloads."""
    wanted = {spec.name: spec for spec in desired}
    plan = plan_added(wanted.values(), managed, queue.get, leftovers, reusable)
    for name, current in managed.items():
        if name in wanted:
            continue
        entry = queue.get(name)
        if isinstance(entry, QueuedDelete):
            continue  # already on its way out, with its delete conditions
        if isinstance(entry, UpdateDelete):
            plan.operations.append(Delete(entry.delete))
        elif isinstance(entry, UpdateCreate):
            # The loop still runs the old spec; the server knows the queued instance.
            plan.operations.append(Delete(DeleteRequest(entry.spec.instance)))
        else:
            plan.operations.append(Delete(DeleteRequest(current.instance)))
    for name, entry in queue.items():
        if name in wanted or name in managed:
            continue
        if isinstance(entry, QueuedCreate):
            plan.operations.append(Delete(DeleteRequest(entry.spec.instance)))
    for found in plan.leftovers.values():
        plan.remove.extend(Removal(leftover, report_states=True) for leftover in found)
    plan.leftovers = {}
    return plan


def queued_instances(queue: Mapping[str, QueueEntry]) -> set[InstanceName]:
    """Every instance a queue entry will create, replace or delete."""
    held: set[InstanceName] = set()
    for entry in queue.values():
        match entry:
            case QueuedCreate(spec):
                held.add(spec.instance)
            case QueuedDelete(request):
                held.add(request.instance)
            case UpdateCreate(spec, request) | UpdateDelete(spec, request):
                held.update((spec.instance, request.instance))
    return held


def forgotten_instances(
    known: Collection[InstanceName], agent: str, held: Collection[InstanceName]
) -> list[InstanceName]:
    """Instances of ``agent`` the server still lists but the agent holds nothing for, sorted.

    The agent already removed them (or never had them after a restart): their
    ``Removed`` went into a stream that broke, so the server's rows stay unless
    it is sent again.
    """
    return sorted(
        (i for i in known if i.agent == agent and i not in held),
        key=lambda i: (i.workload, i.id),
    )
