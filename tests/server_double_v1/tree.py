"""The object tree of a v1.0.1 CompleteState and the dot-path masks that select or replace parts of it.

The v1.0.1 server applies field masks and update masks not to the protobuf
messages but to the plain object form that ``ank get state`` prints: the
wrapper messages that exist only to give a map or a list presence
(``WorkloadMap``, ``Tags``, ``WorkloadStatesMap`` ...) vanish, so
``desiredState.workloads.nginx`` and ``workloadStates.agent_A.nginx.<id>`` are
paths; an ExecutionState becomes ``{state, subState, additionalInfo}``; a
ConfigItem becomes a string, a list or a mapping; enums are written by name.
``to_tree`` and ``from_tree`` convert between the two forms, ``select`` filters
a tree by field masks, ``replace`` applies one update mask.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

Tree = dict[str, Any]
M = TypeVar("M", bound=Message)

# Message type -> its only field, for the types that are transparent in the object form.
WRAPPERS = {
    "ank_base.WorkloadMap": "workloads",
    "ank_base.ConfigMap": "configs",
    "ank_base.WorkloadStatesMap": "agentStateMap",
    "ank_base.ExecutionsStatesOfWorkload": "wlNameStateMap",
    "ank_base.ExecutionsStatesForId": "idStateMap",
    "ank_base.AgentMap": "agents",
    "ank_base.Tags": "tags",
    "ank_base.Dependencies": "dependencies",
    "ank_base.ConfigMappings": "configs",
    "ank_base.Files": "files",
}
_EXECUTION_STATE = "ank_base.ExecutionState"
_CONFIG_ITEM = "ank_base.ConfigItem"

# ExecutionState oneof member -> the state's name as `ank` writes it.
STATE_NAMES = {
    "agentDisconnected": "AgentDisconnected",
    "pending": "Pending",
    "running": "Running",
    "stopping": "Stopping",
    "succeeded": "Succeeded",
    "failed": "Failed",
    "notScheduled": "NotScheduled",
    "removed": "Removed",
}
# Enum value name -> sub-state as `ank` writes it; states missing here have no sub-state.
SUB_STATE_NAMES = {
    "PENDING_INITIAL": "Initial",
    "PENDING_WAITING_TO_START": "WaitingToStart",
    "PENDING_STARTING": "Starting",
    "PENDING_STARTING_FAILED": "StartingFailed",
    "RUNNING_OK": "Ok",
    "STOPPING": "Stopping",
    "STOPPING_WAITING_TO_STOP": "WaitingToStop",
    "STOPPING_REQUESTED_AT_RUNTIME": "RequestedAtRuntime",
    "STOPPING_DELETE_FAILED": "DeleteFailed",
    "SUCCEEDED_OK": "Ok",
    "FAILED_EXEC_FAILED": "ExecFailed",
    "FAILED_UNKNOWN": "Unknown",
    "FAILED_LOST": "Lost",
}
_NO_SUB_STATE = {"agentDisconnected", "notScheduled", "removed"}


class TreeError(ValueError):
    """A tree that does not fit the message it should become."""


# --- protobuf -> tree ----------------------------------------------------------


def to_tree(msg: Message) -> Any:
    """The object form of ``msg`` (a dict for most messages; see the module docstring)."""
    full = msg.DESCRIPTOR.full_name
    if full in WRAPPERS:
        field: Any = msg.DESCRIPTOR.fields_by_name[WRAPPERS[full]]
        return _field_to_tree(field, getattr(msg, field.name))
    if full == _EXECUTION_STATE:
        return _execution_state_to_tree(msg)
    if full == _CONFIG_ITEM:
        return _config_item_to_tree(msg)
    return {field.name: _field_to_tree(field, value) for field, value in msg.ListFields()}


def _field_to_tree(field: Any, value: Any) -> Any:
    if _is_map(field):
        value_field: Any = field.message_type.fields_by_name["value"]
        return {key: _single_to_tree(value_field, item) for key, item in value.items()}
    if field.is_repeated:
        return [_single_to_tree(field, item) for item in value]
    return _single_to_tree(field, value)


def _single_to_tree(field: Any, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return to_tree(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        known = field.enum_type.values_by_number.get(value)
        return known.name if known is not None else value
    return value


def _execution_state_to_tree(msg: Message) -> Tree:
    tree: Tree = {}
    member = msg.WhichOneof("ExecutionStateEnum")
    if member is not None:
        tree["state"] = STATE_NAMES[member]
        if member not in _NO_SUB_STATE:
            field: Any = msg.DESCRIPTOR.fields_by_name[member]
            number = getattr(msg, member)
            known = field.enum_type.values_by_number.get(number)
            tree["subState"] = SUB_STATE_NAMES.get(known.name, known.name) if known else number
    if msg.HasField("additionalInfo"):
        tree["additionalInfo"] = getattr(msg, "additionalInfo")  # noqa: B009 (field name is not an attribute mypy knows)
    return tree


def _config_item_to_tree(msg: Message) -> Any:
    member = msg.WhichOneof("ConfigItemEnum")
    if member == "String":
        return getattr(msg, "String")  # noqa: B009
    if member == "array":
        return [to_tree(v) for v in getattr(msg, "array").values]  # noqa: B009
    if member == "object":
        return {k: to_tree(v) for k, v in getattr(msg, "object").fields.items()}  # noqa: B009
    return None


def _is_map(field: Any) -> bool:
    return bool(
        field.type == FieldDescriptor.TYPE_MESSAGE
        and field.is_repeated
        and field.message_type.GetOptions().map_entry
    )


# --- tree -> protobuf ----------------------------------------------------------


def from_tree(tree: Any, cls: type[M]) -> M:
    """Build a ``cls`` message from its object form; TreeError names what does not fit."""
    msg = cls()
    fill(msg, tree)
    return msg


def fill(msg: Message, node: Any) -> None:
    full = msg.DESCRIPTOR.full_name
    if full in WRAPPERS:
        wrapped: Any = msg.DESCRIPTOR.fields_by_name[WRAPPERS[full]]
        _fill_field(msg, wrapped, node)
        return
    if full == _EXECUTION_STATE:
        _fill_execution_state(msg, node)
        return
    if full == _CONFIG_ITEM:
        _fill_config_item(msg, node)
        return
    if not isinstance(node, dict):
        raise TreeError(f"{full}: expected a mapping, got {node!r}")
    for key, value in node.items():
        field: Any = msg.DESCRIPTOR.fields_by_name.get(key)
        if field is None:
            raise TreeError(f"{full}: unknown field {key!r}")
        _fill_field(msg, field, value)


def _fill_field(msg: Message, field: Any, value: Any) -> None:
    target = getattr(msg, field.name)
    if _is_map(field):
        if not isinstance(value, dict):
            raise TreeError(f"{field.full_name}: expected a mapping, got {value!r}")
        value_field: Any = field.message_type.fields_by_name["value"]
        for key, item in value.items():
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                fill(target[str(key)], item)
            else:
                target[str(key)] = _scalar(value_field, item)
    elif field.is_repeated:
        if not isinstance(value, list):
            raise TreeError(f"{field.full_name}: expected a list, got {value!r}")
        for item in value:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                fill(target.add(), item)
            else:
                target.append(_scalar(field, item))
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        target.SetInParent()
        fill(target, value)
    else:
        setattr(msg, field.name, _scalar(field, value))


def _scalar(field: Any, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_ENUM:
        if isinstance(value, str):
            known = field.enum_type.values_by_name.get(value)
            if known is None:
                raise TreeError(f"{field.full_name}: unknown value {value!r}")
            return known.number
        return int(value)
    if field.type == FieldDescriptor.TYPE_STRING:
        if not isinstance(value, str):
            raise TreeError(f"{field.full_name}: expected a string, got {value!r}")
        return value
    if field.type == FieldDescriptor.TYPE_BOOL:
        return bool(value)
    return int(value)


def _fill_execution_state(msg: Message, node: Any) -> None:
    if not isinstance(node, dict):
        raise TreeError(f"ExecutionState: expected a mapping, got {node!r}")
    if "additionalInfo" in node:
        msg.additionalInfo = str(node["additionalInfo"])  # type: ignore[attr-defined]
    if "state" not in node:
        return
    members = {v: k for k, v in STATE_NAMES.items()}
    member = members.get(node["state"])
    if member is None:
        raise TreeError(f"ExecutionState: unknown state {node['state']!r}")
    field: Any = msg.DESCRIPTOR.fields_by_name[member]
    if member in _NO_SUB_STATE or "subState" not in node:
        setattr(msg, member, 0)
        return
    for value in field.enum_type.values:
        if SUB_STATE_NAMES.get(value.name) == node["subState"]:
            setattr(msg, member, value.number)
            return
    raise TreeError(f"ExecutionState: unknown sub-state {node['subState']!r} of {node['state']!r}")


def _fill_config_item(msg: Message, node: Any) -> None:
    if isinstance(node, str):
        msg.String = node  # type: ignore[attr-defined]
    elif isinstance(node, list):
        array = msg.array  # type: ignore[attr-defined]
        array.SetInParent()
        for item in node:
            fill(array.values.add(), item)
    elif isinstance(node, dict):
        obj = msg.object  # type: ignore[attr-defined]
        obj.SetInParent()
        for key, item in node.items():
            fill(obj.fields[str(key)], item)
    else:
        raise TreeError(f"ConfigItem: expected a string, a list or a mapping, got {node!r}")


# --- masks ---------------------------------------------------------------------


def expand_field_masks(masks: Iterable[str]) -> list[str]:
    """The masks the server really applies: apiVersion with any desiredState mask, state with subState."""
    result: list[str] = []

    def add(mask: str) -> None:
        if mask not in result:
            result.append(mask)

    for mask in masks:
        add(mask)
        parts = mask.split(".")
        if parts[0] == "desiredState":
            add("desiredState.apiVersion")
        if len(parts) == 5 and parts[0] == "workloadStates" and parts[4] in ("state", "subState"):
            add(".".join([*parts[:4], "subState" if parts[4] == "state" else "state"]))
    return result


def matching_paths(tree: Tree, mask: str) -> Iterator[list[str]]:
    """Concrete paths of existing nodes that ``mask`` names (``*`` stands for any one key)."""

    def walk(node: Any, parts: list[str], done: list[str]) -> Iterator[list[str]]:
        if not parts:
            yield done
            return
        if not isinstance(node, dict):
            return
        head, rest = parts[0], parts[1:]
        keys = sorted(node) if head == "*" else [head] if head in node else []
        for key in keys:
            yield from walk(node[key], rest, [*done, key])

    yield from walk(tree, mask.split("."), [])


def select(tree: Tree, masks: Iterable[str], *, expand: bool = True) -> Tree:
    """The parts of ``tree`` that the field masks name; unknown paths add nothing.

    ``expand=False`` takes the masks literally (for events, which name exactly what changed)."""
    result: Tree = {}
    for mask in expand_field_masks(masks) if expand else masks:
        for path in matching_paths(tree, mask):
            if path:
                set_path(result, path, copy.deepcopy(get_path(tree, path)))
    return result


def get_path(tree: Tree, path: list[str]) -> Any:
    node: Any = tree
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def set_path(tree: Tree, path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def remove_path(tree: Tree, path: list[str]) -> None:
    parent = get_path(tree, path[:-1])
    if isinstance(parent, dict):
        parent.pop(path[-1], None)


def replace(current: Tree, new: Tree, mask: str) -> None:
    """One update mask: copy the subtree from ``new`` into ``current``, or remove it if ``new`` lacks it."""
    path = mask.split(".")
    value = get_path(new, path)
    if value is None:
        remove_path(current, path)
    else:
        set_path(current, path, copy.deepcopy(value))
