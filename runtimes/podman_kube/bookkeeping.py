"""The two bookkeeping volumes of a kube workload.

Kube pods' containers carry no agent label, so the reference remembers what
it played in two empty Podman volumes per instance, and finds them again after
an agent restart::

    <workload>.<id>.<agent>.config   label data = b64(runtimeConfig)
    <workload>.<id>.<agent>.pods     label data = b64(JSON list of pod ids)

``b64`` is the standard alphabet **without padding**. We write and read
exactly this layout, so a Rust agent's workloads are adopted by ours and the
other way round. This module is pure: names and encodings only.
"""

from __future__ import annotations

import base64
import binascii
import json

from ankaios_agent.agent.model import InstanceName

CONFIG_SUFFIX = ".config"
PODS_SUFFIX = ".pods"
DATA_LABEL = "data"


class BookkeepingError(ValueError):
    """A bookkeeping label that cannot be decoded."""


def config_volume(instance: InstanceName) -> str:
    return f"{instance}{CONFIG_SUFFIX}"


def pods_volume(instance: InstanceName) -> str:
    return f"{instance}{PODS_SUFFIX}"


def instance_of_config_volume(volume: str, agent: str) -> InstanceName | None:
    """The instance a ``<inst>.config`` volume of ``agent`` belongs to, else None.

    Names with a ``.`` inside the workload or agent name do not parse, as in
    the reference.
    """
    if not volume.endswith(CONFIG_SUFFIX):
        return None
    instance = InstanceName.parse(volume[: -len(CONFIG_SUFFIX)])
    if instance is None or instance.agent != agent:
        return None
    return instance


def encode(text: str) -> str:
    """Base64, standard alphabet, UTF-8, padding stripped (Rust's STANDARD_NO_PAD)."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def decode(data: str) -> str:
    """Inverse of ``encode``; also accepts padded input. Raises BookkeepingError."""
    stripped = data.strip().rstrip("=")
    if len(stripped) % 4 == 1:
        raise BookkeepingError("truncated base64 data")
    try:
        raw = base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as err:
        raise BookkeepingError(f"not base64 of UTF-8 text: {err}") from err


def encode_pods(pod_ids: list[str]) -> str:
    """The pods label: b64 of the compact JSON array, as serde_json writes it."""
    return encode(json.dumps(pod_ids, separators=(",", ":")))


def decode_pods(data: str) -> list[str]:
    """Inverse of ``encode_pods``. Raises BookkeepingError."""
    try:
        value = json.loads(decode(data))
    except json.JSONDecodeError as err:
        raise BookkeepingError(f"pod list is not JSON: {err}") from err
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BookkeepingError(f"pod list is not a JSON list of strings: {value!r}")
    return value
