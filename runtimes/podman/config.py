"""The runtimeConfig of the ``podman`` runtime, parsed and validated once.

The text is YAML holding a mapping with ``image`` (required string) and the
optional string lists ``commandOptions``, ``commandArgs`` and
``generalOptions``. Unknown keys are ignored, as in the reference. Every
problem raises ``WorkloadConfigError`` whose message names it; the lifecycle
layer shows that text as ``Pending(StartingFailed)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from ankaios_agent.agent.errors import WorkloadConfigError
from ankaios_agent.agent.model import InstanceName

_LIST_KEYS = ("commandOptions", "commandArgs", "generalOptions")


@dataclass(frozen=True)
class PodmanConfig:
    image: str
    command_options: tuple[str, ...] = ()
    command_args: tuple[str, ...] = ()
    general_options: tuple[str, ...] = ()


def parse_runtime_config(instance: InstanceName, text: str) -> PodmanConfig:
    """Parse the runtimeConfig string of ``instance``; raise WorkloadConfigError naming the problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WorkloadConfigError(instance, f"runtimeConfig is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise WorkloadConfigError(instance, f"runtimeConfig must be a YAML mapping, got {kind}")
    image = data.get("image")
    if image is None:
        raise WorkloadConfigError(instance, "runtimeConfig is missing the required key 'image'")
    if not isinstance(image, str) or not image.strip():
        raise WorkloadConfigError(
            instance, f"runtimeConfig 'image' must be a non-empty string, got {image!r}"
        )
    lists = {key: _string_list(instance, data, key) for key in _LIST_KEYS}
    return PodmanConfig(
        image=image.strip(),
        command_options=lists["commandOptions"],
        command_args=lists["commandArgs"],
        general_options=lists["generalOptions"],
    )


def _string_list(instance: InstanceName, data: dict[object, object], key: str) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise WorkloadConfigError(
            instance, f"runtimeConfig '{key}' must be a list of strings, got {type(value).__name__}"
        )
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise WorkloadConfigError(
                instance, f"runtimeConfig '{key}' item {index} must be a string, got {item!r}"
            )
    return tuple(value)
