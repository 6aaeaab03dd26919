"""Pure state logic of the v1.0.1 server double: manifests, ids, validation, diffs, the delete graph.

No I/O and no asyncio, so ``server.py`` only moves messages. Rules the
v1.0.1 ank-server follows and that this module reproduces:

* a manifest has ``apiVersion: v1`` (``v0.1`` is still taken) and workloads
  with mandatory ``agent``, ``runtime`` and ``runtimeConfig``; tags are a
  mapping (the older list of ``{key, value}`` is read too);
* agents receive workloads rendered: ``{{alias}}`` / ``{{alias.key.0}}`` in
  ``agent``, ``runtimeConfig`` and file contents are replaced by the config
  items the workload's ``configs`` assign, and ``configs`` is sent empty (the
  double renders plain references only; block helpers are refused);
* the instance id is the SHA-256 of the rendered runtimeConfig;
* a changed workload, whatever changed, is deleted and added again;
* Y's later deletions carry ``{X: DEL_COND_NOT_PENDING_NOR_RUNNING}`` once X
  was added with ``Y: ADD_COND_RUNNING``; ``Removed`` for Y forgets that;
* the protocol version of a hello is semver with major 1.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from ankaios_agent.proto import ank_base_pb2 as base
from ankaios_agent.proto import grpc_api_pb2 as api
from tests.server_double_v1 import tree

API_VERSION = "v1"
ACCEPTED_API_VERSIONS = ("v1", "v0.1")
SUPPORTED_MAJOR = 1

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
_WORKLOAD_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
_AGENT_NAME = re.compile(r"^[a-zA-Z0-9_-]*$")
MAX_WORKLOAD_NAME = 63
_MANDATORY = ("agent", "runtime", "runtimeConfig")


class StateError(Exception):
    """A state the server refuses; the message goes into Response.error as it is."""


class Instance(NamedTuple):
    workload: str
    agent: str
    id: str

    @property
    def text(self) -> str:
        return f"{self.workload}.{self.id}.{self.agent}"


@dataclass(frozen=True)
class StateView:
    """An ExecutionState as ``ank`` shows it: ``display`` is ``Running(Ok)``, ``Removed`` ..."""

    state: str
    sub_state: str | None
    info: str

    @property
    def display(self) -> str:
        return self.state if self.sub_state is None else f"{self.state}({self.sub_state})"


def view(es: base.ExecutionState) -> StateView:
    node = tree.to_tree(es)
    return StateView(str(node.get("state", "")), node.get("subState"), str(node.get("additionalInfo", "")))


def protocol_version_supported(version: str, major: int = SUPPORTED_MAJOR) -> bool:
    match = _SEMVER.match(version)
    return match is not None and int(match.group(1)) == major


def unsupported_version_message(version: str, major: int = SUPPORTED_MAJOR) -> str:
    return f"Unsupported protocol version '{version}'. Currently supported '{major}'"


# --- ids and names -------------------------------------------------------------


def instance_id(runtime_config: str) -> str:
    return hashlib.sha256(runtime_config.encode("utf-8")).hexdigest()


def instance_of(name: str, workload: base.Workload) -> Instance:
    return Instance(name, workload.agent, instance_id(workload.runtimeConfig))


def instance_proto(inst: Instance) -> base.WorkloadInstanceName:
    return base.WorkloadInstanceName(workloadName=inst.workload, agentName=inst.agent, id=inst.id)


def instance_key(name: base.WorkloadInstanceName) -> Instance:
    return Instance(name.workloadName, name.agentName, name.id)


# --- manifests -----------------------------------------------------------------


def state_from_yaml(text: str) -> base.State:
    """Parse a manifest / startup config (``apiVersion: v1``, ``workloads``, ``configs``)."""
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise StateError("the state file must be a mapping")
    unknown = set(data) - {"apiVersion", "workloads", "configs"}
    if unknown:
        raise StateError(f"unknown top-level keys {sorted(unknown)}")
    node: dict[str, Any] = {"apiVersion": str(data.get("apiVersion", API_VERSION))}
    workloads = data.get("workloads") or {}
    if not isinstance(workloads, dict):
        raise StateError("'workloads' must be a mapping")
    node["workloads"] = {str(n): _manifest_workload(str(n), w or {}) for n, w in workloads.items()}
    node["configs"] = data.get("configs") or {}
    try:
        state = tree.from_tree(node, base.State)
    except tree.TreeError as err:
        raise StateError(str(err)) from None
    return validated(state)


def _manifest_workload(name: str, entry: Any) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise StateError(f"workload '{name}' must be a mapping")
    wl = dict(entry)
    tags = wl.get("tags")
    if isinstance(tags, list):  # the v0.1 list of {key, value}
        wl["tags"] = {str(t["key"]): str(t["value"]) for t in tags}
    access = wl.get("controlInterfaceAccess")
    if isinstance(access, dict):
        wl["controlInterfaceAccess"] = {
            kind: [_manifest_rule(name, r) for r in access.get(kind) or []]
            for kind in ("allowRules", "denyRules")
        }
    return wl


_OPERATIONS = {"Nothing": "RW_NOTHING", "Read": "RW_READ", "Write": "RW_WRITE", "ReadWrite": "RW_READ_WRITE"}


def _manifest_rule(name: str, rule: Any) -> dict[str, Any]:
    if not isinstance(rule, dict):
        raise StateError(f"workload '{name}': an access rule must be a mapping")
    kind = rule.get("type")
    if kind == "StateRule":
        operation = _OPERATIONS.get(str(rule.get("operation")))
        if operation is None:
            raise StateError(f"workload '{name}': unknown StateRule operation {rule.get('operation')!r}")
        return {"stateRule": {"operation": operation, "filterMasks": list(rule.get("filterMasks") or [])}}
    if kind == "LogRule":
        return {"logRule": {"workloadNames": list(rule.get("workloadNames") or [])}}
    raise StateError(f"workload '{name}': unknown access rule type {kind!r}")


def load_state(path: Path) -> base.State:
    return state_from_yaml(path.read_text(encoding="utf-8"))


# --- validation and normal form ------------------------------------------------


def validated(state: base.State) -> base.State:
    """A copy of ``state`` in the server's normal form, or StateError with the server's wording."""
    if state.apiVersion not in ACCEPTED_API_VERSIONS:
        raise StateError(f"Unsupported API version. Received '{state.apiVersion}', expected '{API_VERSION}'")
    result = base.State()
    result.CopyFrom(state)
    result.workloads.SetInParent()
    result.configs.SetInParent()
    for name, workload in result.workloads.workloads.items():
        _check_workload(name, workload)
        normalise(workload)
    cycle = find_cycle(result)
    if cycle:
        raise StateError(f"Update rejected: 'Workload dependency cycle detected: '{cycle}''")
    rendered_state(result)  # refuses what cannot be rendered
    return result


def _check_workload(name: str, workload: base.Workload) -> None:
    if not _WORKLOAD_NAME.match(name) or len(name) > MAX_WORKLOAD_NAME:
        raise StateError(
            f"Update rejected: 'Unsupported workload name '{name}'. Expected at most "
            f"{MAX_WORKLOAD_NAME} characters of [a-zA-Z0-9_-]'"
        )
    missing = [f for f in _MANDATORY if not workload.HasField(f)]
    if missing:
        raise StateError(f"Update rejected: 'Workload '{name}' is missing {', '.join(missing)}'")


def normalise(workload: base.Workload) -> None:
    """Give every optional part presence, as the server sends them (possibly empty)."""
    if not workload.HasField("restartPolicy"):
        workload.restartPolicy = base.NEVER
    for part in ("dependencies", "tags", "controlInterfaceAccess", "configs", "files"):
        getattr(workload, part).SetInParent()


_TEMPLATE = re.compile(r"\{\{\{?\s*(.*?)\s*\}?\}\}")
_BLOCK = re.compile(r"\{\{\{?\s*[#/^>!]|\{\{\s*else\b")


def render_text(text: str, context: dict[str, Any], where: str) -> str:
    """Replace each ``{{path}}`` by the string the dotted path names in ``context``."""
    if _BLOCK.search(text):
        raise StateError(f"Update rejected: '{where}: the server double renders plain references only'")

    def value(match: re.Match[str]) -> str:
        node: Any = context
        for part in match.group(1).replace(".[", ".").replace("[", ".").replace("]", "").split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise StateError(f"Update rejected: '{where}: cannot render '{match.group(0)}''")
        if not isinstance(node, str):
            raise StateError(f"Update rejected: '{where}: '{match.group(0)}' is not a string'")
        return node

    return _TEMPLATE.sub(value, text)


def rendered(workload: base.Workload, configs: dict[str, Any] | None = None, name: str = "") -> base.Workload:
    """The workload as agents receive it: config references resolved, ``configs`` empty.

    ``configs`` is the object form of the desired state's config items."""
    result = base.Workload()
    result.CopyFrom(workload)
    items = configs or {}
    context: dict[str, Any] = {}
    for alias, key in workload.configs.configs.items():
        if key not in items:
            raise StateError(f"Update rejected: 'Workload '{name}' references missing config '{key}''")
        context[alias] = items[key]
    if context or "{{" in workload.runtimeConfig + workload.agent:
        result.agent = render_text(workload.agent, context, f"workload '{name}' agent")
        result.runtimeConfig = render_text(
            workload.runtimeConfig, context, f"workload '{name}' runtimeConfig"
        )
        for file in result.files.files:
            member = file.WhichOneof("FileContent")
            if member is not None:
                text = getattr(file, member)
                setattr(file, member, render_text(text, context, f"workload '{name}' file {file.mountPoint}"))
    result.configs.Clear()
    result.configs.SetInParent()
    return result


def rendered_state(state: base.State) -> base.State:
    """``state`` with every workload rendered (StateError for what cannot be rendered)."""
    result = base.State()
    result.CopyFrom(state)
    configs = tree.to_tree(state.configs) if state.HasField("configs") else {}
    for name, workload in state.workloads.workloads.items():
        done = rendered(workload, configs, name)
        if not _AGENT_NAME.match(done.agent):
            raise StateError(
                f"Update rejected: 'Unsupported agent name '{done.agent}' in workload '{name}'. "
                "Expected characters of [a-zA-Z0-9_-]'"
            )
        result.workloads.workloads[name].CopyFrom(done)
    return result


def find_cycle(state: base.State) -> str | None:
    """Name of a workload on a dependency cycle, or None."""
    workloads = state.workloads.workloads
    done: set[str] = set()

    def visit(name: str, path: set[str]) -> str | None:
        if name in path:
            return name
        if name in done or name not in workloads:
            return None
        path.add(name)
        for dep in workloads[name].dependencies.dependencies:
            found = visit(dep, path)
            if found:
                return found
        path.discard(name)
        done.add(name)
        return None

    for name in sorted(workloads):
        found = visit(name, set())
        if found:
            return found
    return None


# --- updates -------------------------------------------------------------------


@dataclass
class Update:
    """The result of an UpdateStateRequest before it is applied."""

    desired: base.State
    agent_tags: dict[str, dict[str, str]] = field(default_factory=dict)


def apply_update(current: base.CompleteState, new: base.CompleteState, masks: Iterable[str]) -> Update:
    """Desired state and agent tags after an UpdateStateRequest; StateError for what is refused."""
    paths = list(masks)
    if not paths:
        desired = new.desiredState
        agents: dict[str, Any] = tree.to_tree(new.agents) if new.HasField("agents") else {}
    else:
        now = {"desiredState": tree.to_tree(current.desiredState), "agents": tree.to_tree(current.agents)}
        wanted = {"desiredState": tree.to_tree(new.desiredState), "agents": tree.to_tree(new.agents)}
        for mask in paths:
            head = mask.split(".")[0]
            if head not in ("desiredState", "agents") or "*" in mask.split("."):
                raise StateError(f"Update rejected: 'Unsupported update mask '{mask}''")
            tree.replace(now, wanted, mask)
        try:
            desired = tree.from_tree(now.get("desiredState") or {}, base.State)
        except tree.TreeError as err:
            raise StateError(f"Update rejected: '{err}'") from None
        agents = now.get("agents") or {}
    tags = {
        str(name): {str(k): str(v) for k, v in (attrs.get("tags") or {}).items()}
        for name, attrs in agents.items()
        if isinstance(attrs, dict)
    }
    return Update(validated(desired), tags)


@dataclass
class Diff:
    """Workloads to delete and to add, in name order; a changed workload appears in both."""

    added: list[tuple[str, base.Workload]] = field(default_factory=list)
    deleted: list[tuple[str, base.Workload]] = field(default_factory=list)


def diff(old: base.State, new: base.State) -> Diff:
    """Compare two rendered states."""
    result = Diff()
    before_all, after_all = old.workloads.workloads, new.workloads.workloads
    for name in sorted(set(before_all) | set(after_all)):
        before = before_all.get(name)
        after = after_all.get(name)
        if before is not None and after is not None and before == after:
            continue
        if before is not None:
            result.deleted.append((name, before))
        if after is not None:
            result.added.append((name, after))
    return result


class DeleteGraph:
    """Which workloads must be gone (not pending nor running) before a dependency may be deleted."""

    def __init__(self) -> None:
        self._graph: dict[str, dict[str, int]] = {}

    def insert(self, added: Iterable[tuple[str, base.Workload]]) -> None:
        for name, workload in added:
            for dep, cond in workload.dependencies.dependencies.items():
                if cond == base.ADD_COND_RUNNING:
                    self._graph.setdefault(dep, {})[name] = api.DEL_COND_NOT_PENDING_NOR_RUNNING

    def conditions(self, name: str) -> dict[str, int]:
        return dict(self._graph.get(name, {}))

    def forget(self, name: str) -> None:
        self._graph.pop(name, None)

    def clear(self) -> None:
        self._graph.clear()


# --- what the agent sends ------------------------------------------------------


def valid_workload_state(state: base.WorkloadState) -> bool:
    """True if the server's strict conversion takes ``state`` (the rest is skipped one by one)."""
    if not state.HasField("instanceName") or not state.HasField("executionState"):
        return False
    es = state.executionState
    member = es.WhichOneof("ExecutionStateEnum")
    if member is None or not es.HasField("additionalInfo"):
        return False
    enum: Any = es.DESCRIPTOR.fields_by_name[member].enum_type
    return getattr(es, member) in enum.values_by_number
