"""The workload table: what the agent holds per workload name.

One entry per workload name, with

* the *managed* loop, the one the server's operations address, and the spec it
  was last told to run;
* the *retiring* loops: loops deleting an instance for good (after a delete
  operation, or the removal of a leftover container no loop owned). They are
  no longer addressable and leave the table when they end.

A new managed loop starts only after every retiring loop of its name has
ended, so one workload never has two containers at once. The table answers
start / delete / route / is-busy; it does not decide *what* to do (the manager
does) and holds nothing for a name once all its loops are gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field

from ankaios_agent.agent.model import DeleteRequest, InstanceName, WorkloadSpec
from ankaios_agent.agent.ports import OwnedWorkload, StateChange
from ankaios_agent.agent.workload_loop import WorkloadLoop

log = logging.getLogger(__name__)

LoopFactory = Callable[[str, Collection[asyncio.Task[None]]], WorkloadLoop]
"""Builds a (not yet started) loop for a name that first waits for the given tasks."""


@dataclass(frozen=True, eq=False)
class _Retiring:
    loop: WorkloadLoop
    instances: frozenset[InstanceName]  # what it deletes; each gets its Removed from the loop


@dataclass
class _Entry:
    loop: WorkloadLoop | None = None
    spec: WorkloadSpec | None = None
    retiring: list[_Retiring] = field(default_factory=list)

    def empty(self) -> bool:
        return self.loop is None and not self.retiring


class WorkloadTable:
    """Loops and specs by workload name (the RuntimeManager's workload map in Ankaios)."""

    def __init__(self, new_loop: LoopFactory) -> None:
        self._new_loop = new_loop
        self._entries: dict[str, _Entry] = {}

    # --- questions ------------------------------------------------------------------

    def loop(self, name: str) -> WorkloadLoop | None:
        """The managed loop of ``name``, the one operations address."""
        entry = self._entries.get(name)
        return None if entry is None else entry.loop

    def specs(self) -> Mapping[str, WorkloadSpec]:
        """The spec every managed loop was last told to run, by workload name."""
        return {
            name: entry.spec
            for name, entry in self._entries.items()
            if entry.loop is not None and entry.spec is not None
        }

    def is_busy(self, name: str) -> bool:
        """True while any loop of ``name`` exists: then no container of that name is a leftover."""
        return name in self._entries

    def held_instances(self) -> set[InstanceName]:
        """Every instance a loop of this table runs, is told to run, or is deleting."""
        held: set[InstanceName] = set()
        for entry in self._entries.values():
            if entry.loop is not None and entry.spec is not None:
                held.add(entry.spec.instance)
            for retiring in entry.retiring:
                held.update(retiring.instances)
        return held

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    # --- operations ------------------------------------------------------------------

    def start(self, spec: WorkloadSpec) -> WorkloadLoop:
        """A new managed loop for ``spec``; it waits for the retiring loops of its name."""
        entry = self._entries.setdefault(spec.name, _Entry())
        if entry.loop is not None:
            raise ValueError(f"workload {spec.name} already has a managed loop")
        loop = self._launch(spec.name, entry)
        entry.loop = loop
        entry.spec = spec
        return loop

    def set_spec(self, spec: WorkloadSpec) -> None:
        """The managed loop of ``spec.name`` was told to run ``spec``."""
        entry = self._entries.get(spec.name)
        if entry is None or entry.loop is None:
            raise KeyError(f"workload {spec.name} has no managed loop")
        entry.spec = spec

    def delete(self, request: DeleteRequest) -> bool:
        """Retire the managed loop of the request's name and tell it to delete; False if there is none."""
        entry = self._entries.get(request.name)
        if entry is None or entry.loop is None:
            return False
        loop, spec = entry.loop, entry.spec
        entry.loop = None
        entry.spec = None
        instances = {request.instance} if spec is None else {request.instance, spec.instance}
        self._retire(request.name, entry, _Retiring(loop, frozenset(instances)))
        loop.commands.delete(request.instance)
        return True

    def remove_leftover(self, runtime: str, owned: OwnedWorkload, *, report_states: bool) -> None:
        """Delete a container no loop owns, through a retiring loop of its name."""
        name = owned.instance.workload
        entry = self._entries.setdefault(name, _Entry())
        loop = self._launch(name, entry)
        self._retire(name, entry, _Retiring(loop, frozenset({owned.instance})))
        loop.commands.remove_leftover(runtime, owned, report_states=report_states)

    def route(self, change: StateChange) -> bool:
        """Hand a runtime state change to the managed loop of its workload; False if there is none."""
        loop = self.loop(change.instance.workload)
        if loop is None:
            return False
        loop.commands.state_changed(change)
        return True

    async def stop(self) -> int:
        """Stop every loop without touching containers (agent shutdown); returns how many."""
        loops = list(self._loops())
        await asyncio.gather(*(loop.stop() for loop in loops), return_exceptions=True)
        return len(loops)

    # --- bookkeeping ---------------------------------------------------------------------

    def _launch(self, name: str, entry: _Entry) -> WorkloadLoop:
        tasks = (retiring.loop.task for retiring in entry.retiring)
        before = [task for task in tasks if task is not None and not task.done()]
        loop = self._new_loop(name, before)
        loop.start()
        return loop

    def _retire(self, name: str, entry: _Entry, retiring: _Retiring) -> None:
        entry.retiring.append(retiring)
        if retiring.loop.task is not None:
            retiring.loop.task.add_done_callback(lambda _task: self._forget(name, retiring))

    def _forget(self, name: str, retiring: _Retiring) -> None:
        """A retiring loop ended: without this, ever new workload names would pile up."""
        entry = self._entries.get(name)
        if entry is None:
            return
        if retiring in entry.retiring:
            entry.retiring.remove(retiring)
        if entry.empty():
            del self._entries[name]

    def _loops(self) -> Iterator[WorkloadLoop]:
        for entry in self._entries.values():
            if entry.loop is not None:
                yield entry.loop
            yield from (retiring.loop for retiring in entry.retiring)
