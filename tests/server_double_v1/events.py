"""Events of subscriptions: which parts of the state changed, as a subscriber with masks sees them.

Pure: ``events_since`` compares two object trees (see ``tree``) and yields, per
subscription, the changed parts within its masks and the AlteredFields that
name them: the topmost node that appeared or vanished, and every changed leaf.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from ankaios_agent.proto import ank_base_pb2 as base
from tests.server_double_v1.tree import Tree, from_tree, matching_paths, select


def altered_paths(old: Tree, new: Tree) -> tuple[list[str], list[str], list[str]]:
    """(added, updated, removed) paths from ``old`` to ``new``: the topmost new or vanished node,
    and every changed leaf (lists count as leaves)."""
    added: list[str] = []
    updated: list[str] = []
    removed: list[str] = []

    def walk(before: Tree, after: Tree, prefix: list[str]) -> None:
        for key in sorted(set(before) | set(after)):
            path = [*prefix, key]
            if key not in before:
                added.append(".".join(path))
            elif key not in after:
                removed.append(".".join(path))
            elif isinstance(before[key], dict) and isinstance(after[key], dict):
                walk(before[key], after[key], path)
            elif before[key] != after[key]:
                updated.append(".".join(path))

    walk(old, new, [])
    return added, updated, removed


def _inside(path: list[str], mask: list[str]) -> bool:
    """``path`` lies at or below what ``mask`` names."""
    return len(mask) <= len(path) and all(m in ("*", p) for m, p in zip(mask, path, strict=False))


def _above(path: list[str], mask: list[str]) -> bool:
    """``path`` is an ancestor of what ``mask`` names."""
    return len(path) < len(mask) and all(m in ("*", p) for p, m in zip(path, mask, strict=False))


def paths_within(paths: Iterable[str], masks: Iterable[str], context: Tree) -> list[str]:
    """The parts of ``paths`` a subscription with ``masks`` sees (no masks: all of them).

    A path inside a mask is kept; a path above a mask (say a new agent under a mask that
    names one of its workloads) is narrowed to the mask's existing paths in ``context``."""
    mask_list = [m.split(".") for m in masks]
    result: list[str] = []
    for text in paths:
        path = text.split(".")
        if not mask_list or any(_inside(path, m) for m in mask_list):
            result.append(text)
            continue
        for mask in mask_list:
            if _above(path, mask):
                for found in matching_paths(context, ".".join(mask)):
                    joined = ".".join(found)
                    if joined not in result:
                        result.append(joined)
    return result


def events_since(
    before: Tree, now: Tree, subscriptions: Mapping[str, Iterable[str]]
) -> Iterator[tuple[str, base.CompleteStateResponse]]:
    """(request id, event) for every subscription that sees a change from ``before`` to ``now``."""
    added, updated, removed = altered_paths(before, now)
    for request_id, masks in subscriptions.items():
        mask_list = list(masks)
        fields = base.AlteredFields(
            addedFields=paths_within(added, mask_list, now),
            updatedFields=paths_within(updated, mask_list, now),
            removedFields=paths_within(removed, mask_list, before),
        )
        if not (fields.addedFields or fields.updatedFields or fields.removedFields):
            continue
        changed = select(now, [*fields.addedFields, *fields.updatedFields], expand=False)
        yield (
            request_id,
            base.CompleteStateResponse(
                completeState=from_tree(changed, base.CompleteState), alteredFields=fields
            ),
        )
