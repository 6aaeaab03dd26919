"""Putting a workload's control interface into one container of its kube manifest.

A podman-kube workload names the container that gets the FIFOs with
``controlInterfaceTarget: <podName>/<containerName>`` in its runtimeConfig.
The manifest's documents are searched in order for a ``Pod`` named
``podName`` or a ``Deployment`` whose name plus ``-pod`` is ``podName`` (the
name Podman gives its pod); in that pod the container called
``containerName`` gets a volume mount at ``/run/ankaios/control_interface``,
and the pod a ``hostPath`` volume of type ``Directory`` for the host folder.
No other container sees the folder. The edited manifest is written out again
document by document (comments and formatting are not kept).

Pure: no I/O. Every refusal is a :class:`ControlMountError` whose text is
what the user sees; it cannot succeed on a retry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MOUNT_POINT = "/run/ankaios/control_interface"
VOLUME_NAME = "control-interface-volume"


class ControlMountError(Exception):
    """The manifest cannot take the control interface as asked."""


def inject_control_interface(manifest: str, target: str | None, host_folder: Path) -> str:
    """The manifest with the control interface mounted into the target container only."""
    if target is None:
        raise ControlMountError("Control interface target not specified in runtime config.")
    parts = target.split("/")
    if len(parts) != 2:
        raise ControlMountError(
            f"Invalid control interface target format: '{target}'. "
            "Expected format: '<pod_name>/<container_name>'"
        )
    pod_name, container_name = parts
    try:
        documents = list(yaml.safe_load_all(manifest))
    except yaml.YAMLError as err:
        raise ControlMountError(
            f"Cannot add Control Interface. The manifest is not valid YAML: {err}"
        ) from err
    pod_spec = _find_pod_spec(documents, pod_name)
    containers = pod_spec.get("containers")
    container = next(
        (c for c in containers or [] if isinstance(c, dict) and c.get("name") == container_name),
        None,
    )
    if container is None:
        raise ControlMountError(
            f"Cannot add Control Interface. Target container '{container_name}' not found."
        )
    _append(container, "volumeMounts", {"name": VOLUME_NAME, "mountPath": MOUNT_POINT})
    _append(
        pod_spec,
        "volumes",
        {"name": VOLUME_NAME, "hostPath": {"path": str(host_folder), "type": "Directory"}},
    )
    return "---\n".join(yaml.safe_dump(document, sort_keys=False) for document in documents)


def _find_pod_spec(documents: list[Any], pod_name: str) -> dict[str, Any]:
    for document in documents:
        if document is None:
            continue
        if not isinstance(document, dict) or "kind" not in document:
            raise ControlMountError("Manifest missing 'kind' field")
        metadata = document.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if name is None:
            raise ControlMountError("Manifest missing metadata.name")
        kind = document["kind"]
        if kind == "Pod" and name == pod_name:
            return _mapping(document, "spec")
        if kind == "Deployment" and f"{name}-pod" == pod_name:
            return _mapping(_mapping(_mapping(document, "spec"), "template"), "spec")
    raise ControlMountError(f"Cannot add Control Interface. Target pod not found '{pod_name}'")


def _mapping(node: dict[str, Any], key: str) -> dict[str, Any]:
    value = node.get(key)
    if value is None:
        value = node[key] = {}
    if not isinstance(value, dict):
        raise ControlMountError(f"Cannot add Control Interface. '{key}' of the target is not a mapping")
    return value


def _append(node: dict[str, Any], key: str, item: dict[str, Any]) -> None:
    items = node.get(key)
    if items is None:
        items = node[key] = []
    if not isinstance(items, list):
        raise ControlMountError(f"Cannot add Control Interface. '{key}' of the target is not a list")
    items.append(item)
