"""Pure state logic of the server double: desired state, state table, delete graph.

Mirrors what the v0.3.1 ank-server does (behaviour "Instance names", "Session", "Delete
conditions") with no I/O, so the gRPC part in ``server.py`` only moves messages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format

from ankaios_agent.proto import ankaios_pb2 as pb

API_VERSION = "v0.1"


class StateError(Exception):
    """An update the server refuses; the message goes into Response.error."""


def instance_id(runtime_config: str) -> str:
    return hashlib.sha256(runtime_config.encode("utf-8")).hexdigest()


def instance_name(name: str, workload: pb.Workload) -> pb.WorkloadInstanceName:
    return pb.WorkloadInstanceName(
        workloadName=name, agentName=workload.agent, id=instance_id(workload.runtimeConfig)
    )


def instance_text(inst: pb.WorkloadInstanceName) -> str:
    return f"{inst.workloadName}.{inst.id}.{inst.agentName}"


def key_of(inst: pb.WorkloadInstanceName) -> tuple[str, str, str]:
    return (inst.workloadName, inst.agentName, inst.id)


_RESTART = {"NEVER": pb.NEVER, "ON_FAILURE": pb.ON_FAILURE, "ALWAYS": pb.ALWAYS}
_ADD_COND = {
    "ADD_COND_RUNNING": pb.ADD_COND_RUNNING,
    "ADD_COND_SUCCEEDED": pb.ADD_COND_SUCCEEDED,
    "ADD_COND_FAILED": pb.ADD_COND_FAILED,
}


def state_from_yaml(text: str) -> pb.State:
    """Parse a startup config like ank-server's (``apiVersion: v0.1``, ``workloads: {...}``)."""
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise StateError("the state file must be a mapping")
    if data.get("apiVersion", API_VERSION) != API_VERSION:
        raise StateError(f"unsupported apiVersion {data.get('apiVersion')!r}, expected {API_VERSION}")
    state = pb.State(apiVersion=API_VERSION)
    for name, entry in (data.get("workloads") or {}).items():
        wl = entry or {}
        unknown = set(wl) - {"agent", "runtime", "restartPolicy", "dependencies", "tags", "runtimeConfig"}
        if unknown:
            raise StateError(f"workload {name!r}: unknown keys {sorted(unknown)}")
        try:
            deps = {dep: _ADD_COND[cond] for dep, cond in (wl.get("dependencies") or {}).items()}
            restart = _RESTART[wl.get("restartPolicy", "NEVER")]
        except KeyError as err:
            raise StateError(f"workload {name!r}: invalid value {err}") from None
        state.workloads[str(name)].CopyFrom(
            pb.Workload(
                agent=str(wl.get("agent", "")),
                runtime=str(wl.get("runtime", "")),
                runtimeConfig=str(wl.get("runtimeConfig", "")),
                restartPolicy=restart,
                dependencies=deps,
                tags=[pb.Tag(key=str(t["key"]), value=str(t["value"])) for t in wl.get("tags") or []],
            )
        )
    return state


def load_state(path: Path) -> pb.State:
    return state_from_yaml(path.read_text(encoding="utf-8"))


def apply_update(current: pb.State, new: pb.CompleteState, mask: Iterable[str]) -> pb.State:
    """The desired state after an UpdateStateRequest (behaviour "Requests and responses"). Raises
    StateError."""
    paths = list(mask)
    if not paths:
        result = pb.State()
        result.CopyFrom(new.desiredState)
    else:
        tree = {"desiredState": _to_dict(current)}
        new_tree = {"desiredState": _to_dict(new.desiredState)}
        for path in paths:
            parts = path.split(".")
            value = _get(new_tree, parts)
            if value is None:
                _remove(tree, parts)
            else:
                _set(tree, parts, value)
        result = json_format.ParseDict(tree["desiredState"], pb.State())
    if result.apiVersion != API_VERSION:
        raise StateError(f"Unsupported API version. Received '{result.apiVersion}', expected '{API_VERSION}'")
    cycle = find_cycle(result)
    if cycle:
        raise StateError(f"workload dependency cycle detected: '{cycle}'")
    return result


def _to_dict(state: pb.State) -> dict[str, Any]:
    return json_format.MessageToDict(state, preserving_proto_field_name=True)


def _get(tree: dict[str, Any], parts: list[str]) -> Any:
    node: Any = tree
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _set(tree: dict[str, Any], parts: list[str], value: Any) -> None:
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _remove(tree: dict[str, Any], parts: list[str]) -> None:
    parent = _get(tree, parts[:-1])
    if isinstance(parent, dict):
        parent.pop(parts[-1], None)


def find_cycle(state: pb.State) -> str | None:
    """Name of a workload on a dependency cycle, or None."""
    done: set[str] = set()

    def visit(name: str, path: set[str]) -> str | None:
        if name in path:
            return name
        if name in done or name not in state.workloads:
            return None
        path.add(name)
        for dep in state.workloads[name].dependencies:
            found = visit(dep, path)
            if found:
                return found
        path.discard(name)
        done.add(name)
        return None

    for name in sorted(state.workloads):
        found = visit(name, set())
        if found:
            return found
    return None


@dataclass
class Diff:
    """Effect of replacing the desired state, grouped per agent."""

    added: list[tuple[str, pb.Workload]] = field(default_factory=list)
    deleted: list[tuple[str, pb.Workload]] = field(default_factory=list)


def diff(old: pb.State, new: pb.State) -> Diff:
    """Changed workloads are delete(old) + add(new), whatever changed (behaviour "Instance names")."""
    result = Diff()
    for name in sorted(set(old.workloads) | set(new.workloads)):
        before = old.workloads.get(name)
        after = new.workloads.get(name)
        if before is not None and after is not None and before == after:
            continue
        if before is not None:
            result.deleted.append((name, before))
        if after is not None:
            result.added.append((name, after))
    return result


class DeleteGraph:
    """behaviour "Delete conditions": Y gets {X: DEL_COND_NOT_PENDING_NOR_RUNNING} when X is added with Y:
    ADD_COND_RUNNING."""

    def __init__(self) -> None:
        self._graph: dict[str, dict[str, int]] = {}

    def insert(self, added: Iterable[tuple[str, pb.Workload]]) -> None:
        for name, workload in added:
            for dep, cond in workload.dependencies.items():
                if cond == pb.ADD_COND_RUNNING:
                    self._graph.setdefault(dep, {})[name] = pb.DEL_COND_NOT_PENDING_NOR_RUNNING

    def conditions(self, name: str) -> dict[str, int]:
        return dict(self._graph.get(name, {}))

    def forget(self, name: str) -> None:
        self._graph.pop(name, None)

    def clear(self) -> None:
        self._graph.clear()
