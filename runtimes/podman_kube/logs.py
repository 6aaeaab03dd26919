"""Which containers make up a kube workload's log: every container of its pods but the infra ones.

A pod's infra container only holds the namespaces and writes nothing a user
wants to read; the workload's own containers are read together, their lines
merged in the order they arrive.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman.engine_errors import check, podman_call


def workload_containers(connection: PodmanConnection, pod_ids: Sequence[str]) -> list[str]:
    """Ids of the non-infra containers of ``pod_ids``, oldest first (blocking; raises EngineCallFailed)."""
    if not pod_ids:
        return []
    params = {"all": "true", "filters": json.dumps({"pod": list(pod_ids)})}
    with podman_call("list the pods' containers"):
        response = check(
            "list the pods' containers", connection.call_client().api.get("/containers/json", params=params)
        )
        body = response.json() or []
    entries = [entry for entry in body if isinstance(entry, dict)]
    entries = [entry for entry in entries if not entry.get("IsInfra")]
    entries.sort(key=lambda entry: str(entry.get("Created") or ""))
    return [str(entry["Id"]) for entry in entries if entry.get("Id")]


__all__ = ["workload_containers"]
