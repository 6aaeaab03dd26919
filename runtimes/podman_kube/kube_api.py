"""Blocking calls to the Podman REST API that the kube runtime needs.

Everything here runs in a worker thread (through ``agent.blocking.run_blocking``)
and talks to Podman with podman-py's APIClient, taken from the shared
``PodmanConnection`` (one client per thread: requests sessions are not shared
across threads). Transport and HTTP failures are typed by the shared
``engine_errors`` translation (``EngineNotFound``, ``EngineConflict``, ...);
the runtime turns them into RuntimeCreateFailed / RuntimeDeleteFailed /
RuntimeUnavailable.

``kube play`` and ``kube down`` of Podman 4.3 answer 500 both for "a pod of
that name exists already" and for "no such pod", so the runtime never asks
what such a failure meant: it looks at the pods before and after acting
(``pods``, ``pod_exists``).

Names and ids are data: each goes into a path as one quoted segment
(``names.segment``) and into queries only through ``params``, so a name holding
``?``, ``/`` or ``#`` addresses nothing but the object of exactly that name.
The name filter of the volume listing is a regular expression, so the agent
name in it is escaped.

Endpoints (libpod API of Podman 4.3)::

    POST   /libpod/play/kube            body = manifest; query = translated playOptions
    DELETE /libpod/play/kube            body = manifest
    DELETE /libpod/pods/{id}?force=true
    POST   /libpod/volumes/create       {"Name", "Labels": {"data": ...}}
    GET    /libpod/volumes/{name}/json
    DELETE /libpod/volumes/{name}
    GET    /libpod/volumes/json?filters={"name": [...]}
    GET    /libpod/containers/json?all=true&filters={"pod": [...]}
    GET    /libpod/pods/json
    GET    /libpod/pods/{id}/exists
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podman.api.client import APIResponse

from ankaios_agent.agent.errors import EngineCallFailed, EngineNotFound
from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman.engine_errors import check, podman_call
from ankaios_agent.runtimes.podman.names import segment
from ankaios_agent.runtimes.podman_kube.bookkeeping import CONFIG_SUFFIX, DATA_LABEL
from ankaios_agent.runtimes.podman_kube.states import ListedContainer

logger = logging.getLogger(__name__)


class KubePlayFailed(EngineCallFailed):
    """Play created pods but some containers did not start; ``pod_ids`` are those pods."""

    def __init__(self, reason: str, pod_ids: list[str]) -> None:
        super().__init__("play kube", reason)
        self.pod_ids = pod_ids


class KubeDownIncomplete(EngineCallFailed):
    """Kube down answered success but could not stop or remove some pods (e.g. paused ones)."""

    def __init__(self, reason: str, pod_ids: list[str]) -> None:
        super().__init__("kube down", reason)
        self.pod_ids = pod_ids


@dataclass(frozen=True)
class Pod:
    id: str
    name: str


@dataclass(frozen=True)
class Volume:
    name: str
    data: str | None  # the ``data`` label, None when absent


class KubeApi:
    """The REST calls of the kube runtime, over the agent's Podman connection."""

    def __init__(self, connection: PodmanConnection) -> None:
        self._connection = connection

    # --- kube play / down ---------------------------------------------------------

    def play(self, manifest: str, query: Mapping[str, str | list[str]]) -> list[str]:
        """Play ``manifest``; return the pod ids in the order Podman reports them."""
        body = self._json(self._call("post", "/play/kube", params=dict(query), data=manifest.encode()))
        pods = body.get("Pods") if isinstance(body, dict) else None
        if not isinstance(pods, list):
            pods = []
        pod_ids = [str(pod["ID"]) for pod in pods if isinstance(pod, dict) and pod.get("ID")]
        errors = [
            str(err) for pod in pods if isinstance(pod, dict) for err in (pod.get("ContainerErrors") or [])
        ]
        if errors:
            # The CLI (what the reference runs) fails in this case too.
            raise KubePlayFailed(f"failed to start {len(errors)} containers: " + "; ".join(errors), pod_ids)
        return pod_ids

    def down(self, manifest: str) -> None:
        """Tear down what ``manifest`` describes (fails if one of its pods is missing).

        Podman answers 200 even when it could not stop or remove a pod, with the errors in
        the per-pod reports; those raise KubeDownIncomplete naming the pods left behind.
        """
        body = self._json(self._call("delete", "/play/kube", data=manifest.encode()))
        failed: dict[str, list[str]] = {}
        if isinstance(body, dict):
            for report in body.get("StopReport") or []:
                if isinstance(report, dict) and report.get("Errs"):
                    failed.setdefault(str(report.get("Id")), []).extend(map(str, report["Errs"]))
            for report in body.get("RmReport") or []:
                if isinstance(report, dict) and report.get("Err"):
                    failed.setdefault(str(report.get("Id")), []).append(str(report["Err"]))
        if failed:
            texts = "; ".join(" ".join(" ".join(errs).split()) for errs in failed.values())
            raise KubeDownIncomplete(f"kube down left {len(failed)} pods behind: {texts}", list(failed))

    def remove_pod(self, pod_id: str) -> None:
        """Stop and remove a pod by id; already gone is success."""
        with contextlib.suppress(EngineNotFound):
            self._call("delete", f"/pods/{segment(pod_id)}", params={"force": "true"})

    def pods(self) -> list[Pod]:
        """Every pod Podman has (id and name)."""
        body = self._json(self._call("get", "/pods/json"))
        if not isinstance(body, list):
            return []
        return [Pod(str(p.get("Id") or ""), str(p.get("Name") or "")) for p in body if isinstance(p, dict)]

    def pod_exists(self, pod_id: str) -> bool:
        try:
            self._call("get", f"/pods/{segment(pod_id)}/exists")
        except EngineNotFound:
            return False
        return True

    # --- bookkeeping volumes ------------------------------------------------------

    def replace_volume(self, name: str, data: str) -> None:
        """Remove volume ``name`` if present, then create it with label data=``data``."""
        self.remove_volume(name)
        self._call("post", "/volumes/create", data=json.dumps({"Name": name, "Labels": {DATA_LABEL: data}}))

    def remove_volume(self, name: str) -> None:
        """Already gone is success."""
        with contextlib.suppress(EngineNotFound):
            self._call("delete", f"/volumes/{segment(name)}")

    def read_volume(self, name: str) -> Volume | None:
        """The volume's data label; None when there is no such volume."""
        try:
            body = self._json(self._call("get", f"/volumes/{segment(name)}/json"))
        except EngineNotFound:
            return None
        labels = body.get("Labels") if isinstance(body, dict) else None
        data = labels.get(DATA_LABEL) if isinstance(labels, dict) else None
        return Volume(name=name, data=data if isinstance(data, str) else None)

    def config_volumes(self, agent: str) -> list[str]:
        """Names of volumes ending in ``.<agent>.config`` (the reference's listing filter)."""
        pattern = re.escape(f".{agent}{CONFIG_SUFFIX}") + "$"
        body = self._json(
            self._call("get", "/volumes/json", params={"filters": json.dumps({"name": [pattern]})})
        )
        names = [str(v.get("Name")) for v in body if isinstance(v, dict)] if isinstance(body, list) else []
        # The server filter is a regular expression; check the suffix literally as well.
        return sorted(name for name in names if name.endswith(f".{agent}{CONFIG_SUFFIX}"))

    # --- containers -----------------------------------------------------------------

    def containers_of_pods(self, pod_ids: Sequence[str]) -> list[ListedContainer]:
        """Every container (any state, infra included) of the given pods."""
        if not pod_ids:
            return []
        params = {"all": "true", "filters": json.dumps({"pod": list(pod_ids)})}
        body = self._json(self._call("get", "/containers/json", params=params))
        if not isinstance(body, list):
            raise EngineCallFailed(
                "list containers", f"unexpected container listing from Podman: {str(body)[:200]}"
            )
        return [listed_container(entry) for entry in body if isinstance(entry, dict)]

    # --- plumbing -------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> APIResponse:
        operation = f"{method.upper()} {path.split('?', maxsplit=1)[0]}"
        with podman_call(operation):
            response: APIResponse = getattr(self._connection.call_client().api, method)(path, **kwargs)
        result: APIResponse = check(operation, response)
        return result

    @staticmethod
    def _json(response: APIResponse) -> Any:
        try:
            return response.json()
        except ValueError as err:
            raise EngineCallFailed(
                "read answer", f"Podman answered with invalid JSON: {response.text[:200]!r}"
            ) from err


def listed_container(entry: Mapping[str, Any]) -> ListedContainer:
    """The fields of one ``/containers/json`` entry that the state combination reads."""
    pod = entry.get("Pod")
    exit_code = entry.get("ExitCode")
    return ListedContainer(
        pod=str(pod) if pod else None,
        state=str(entry.get("State") or ""),
        exit_code=exit_code if isinstance(exit_code, int) else 0,
        id=str(entry.get("Id") or ""),
    )
