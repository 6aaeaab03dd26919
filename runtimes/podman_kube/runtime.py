"""The ``podman-kube`` runtime: Kubernetes Pod manifests played on Podman.

Create, over REST instead of the CLI:

1. ``<inst>.config`` volume, label data = b64(runtimeConfig) (errors logged);
2. ``POST /libpod/play/kube`` with the manifest and the translated playOptions;
3. ``<inst>.pods`` volume, label data = b64(JSON pod ids) (errors logged);
4. the monitor watches the pods; the runtime id is the comma-joined pod ids.

Unlike the reference, a failed play leaves nothing behind: pods it created are
torn down and the config volume is removed, so a retry can play again and an
agent restart does not adopt a workload that never ran. A play refused because
a pod of that name already exists tears nothing down: that pod is not ours.

Delete: kube down with the stored manifest (generalOptions are not used), then
remove the ``.pods`` and ``.config`` volumes. Already gone is success; when only
some pods are gone, the remaining recorded pods are removed by id, and pods kube
down leaves behind (paused ones) are removed by id with force. Kube workloads
get no control-interface mount.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from ankaios_agent.agent.blocking import run_blocking
from ankaios_agent.agent.errors import (
    RuntimeCreateFailed,
    RuntimeDeleteFailed,
    RuntimeUnavailable,
    WorkloadConfigError,
)
from ankaios_agent.agent.model import InstanceName, WorkloadSpec
from ankaios_agent.agent.ports import OwnedWorkload, StateChange
from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman.monitor import MonitorTimings
from ankaios_agent.runtimes.podman_kube import bookkeeping
from ankaios_agent.runtimes.podman_kube.bookkeeping import BookkeepingError
from ankaios_agent.runtimes.podman_kube.config import RUNTIME_NAME, check_workload_name, parse_kube_config
from ankaios_agent.runtimes.podman_kube.kube_api import (
    KubeApi,
    KubeApiError,
    KubeDownIncomplete,
    KubePlayFailed,
)
from ankaios_agent.runtimes.podman_kube.monitor import KubeMonitor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Played:
    """What delete needs to know about an instance."""

    manifest: str
    pod_ids: tuple[str, ...] | None


def runtime_id_of(pod_ids: Sequence[str] | None) -> str:
    """The runtime id the lifecycle sees: the pod ids, comma-joined ("" if unknown)."""
    return ",".join(pod_ids or ())


class PodmanKubeRuntime:
    """Runtime ``podman-kube`` of one agent (implements runtimes.protocol.Runtime)."""

    name = RUNTIME_NAME

    def __init__(
        self,
        connection: PodmanConnection,
        agent_name: str,
        timings: MonitorTimings | None = None,
    ) -> None:
        """``connection`` and ``timings`` are shared with the podman runtime (PodmanTimings.monitor)."""
        self._agent = agent_name
        self._api = KubeApi(connection)
        self._monitor = KubeMonitor(self._api, connection, timings)
        self._played: dict[InstanceName, _Played] = {}

    async def create(self, spec: WorkloadSpec, control_dir: Path | None) -> str:
        instance = spec.instance
        if spec.runtime != RUNTIME_NAME:
            raise WorkloadConfigError(
                instance, f"runtime {spec.runtime!r} given to the {RUNTIME_NAME} runtime"
            )
        check_workload_name(instance)
        config = parse_kube_config(spec.runtime_config, instance)
        if control_dir is not None:
            logger.debug("workload %s: kube workloads get no control-interface mount", instance)

        await self._write_volume(
            instance, bookkeeping.config_volume(instance), bookkeeping.encode(spec.runtime_config)
        )
        if config.play.replace:
            await self._tear_down(instance, config.manifest, None, quiet=True)
        try:
            pod_ids = await run_blocking(self._api.play, config.manifest, config.play.query)
        except KubeApiError as err:
            await self._clean_up_failed_play(instance, config.manifest, err)
            raise RuntimeCreateFailed(instance, err.reason) from err

        await self._write_volume(
            instance, bookkeeping.pods_volume(instance), bookkeeping.encode_pods(pod_ids)
        )
        self._played[instance] = _Played(config.manifest, tuple(pod_ids))
        runtime_id = runtime_id_of(pod_ids)
        self._monitor.watch(instance, pod_ids, runtime_id)
        logger.info("workload %s: played pods %s", instance, runtime_id or "(none)")
        return runtime_id

    async def delete(self, instance: InstanceName) -> None:
        try:
            played = self._played.get(instance) or await self._read_played(instance)
            if played is None:
                logger.info("workload %s: no kube bookkeeping found, already gone", instance)
            else:
                await self._tear_down(instance, played.manifest, played.pod_ids, quiet=False)
        except KubeApiError as err:
            raise RuntimeDeleteFailed(instance, err.reason) from err
        self._monitor.unwatch(instance)
        self._played.pop(instance, None)
        for volume in (bookkeeping.pods_volume(instance), bookkeeping.config_volume(instance)):
            try:
                await run_blocking(self._api.remove_volume, volume)
            except KubeApiError as err:
                logger.warning("workload %s: cannot remove volume %s: %s", instance, volume, err.reason)

    async def list_owned(self) -> list[OwnedWorkload]:
        """Instances with a ``.config`` volume of this agent, each watched from now on."""
        try:
            volumes = await run_blocking(self._api.config_volumes, self._agent)
        except KubeApiError as err:
            raise RuntimeUnavailable(
                RUNTIME_NAME, f"cannot list kube bookkeeping volumes: {err.reason}"
            ) from err
        owned: list[OwnedWorkload] = []
        for volume in volumes:
            instance = bookkeeping.instance_of_config_volume(volume, self._agent)
            if instance is None:
                logger.warning("skipping kube volume %s: not a <workload>.<id>.<agent>.config name", volume)
                continue
            try:
                played = await self._read_played(instance)
            except KubeApiError as err:
                reason = f"cannot read bookkeeping of {instance}: {err.reason}"
                raise RuntimeUnavailable(RUNTIME_NAME, reason) from err
            if played is None:
                logger.warning("skipping kube workload %s: its config volume cannot be read", instance)
                continue
            self._played[instance] = played
            state = await self._monitor.current_state(instance, played.pod_ids)
            runtime_id = runtime_id_of(played.pod_ids)
            self._monitor.watch(instance, played.pod_ids, runtime_id)
            owned.append(OwnedWorkload(instance=instance, runtime_id=runtime_id, state=state))
        return owned

    def events(self) -> AsyncIterator[StateChange]:
        return self._monitor.events()

    # --- helpers ------------------------------------------------------------------------

    async def _tear_down(
        self, instance: InstanceName, manifest: str, pod_ids: Sequence[str] | None, *, quiet: bool
    ) -> None:
        """kube down; pods already gone are success, leftovers are removed by id.

        Pods kube down could not remove (a paused pod) are removed by id with force, so a
        delete completes whenever Podman is reachable.
        """
        try:
            await run_blocking(self._api.down, manifest)
            return
        except KubeDownIncomplete as err:
            if quiet:
                logger.debug("workload %s: kube down before play: %s", instance, err.reason)
                return
            logger.warning("workload %s: %s; removing them with force", instance, err.reason)
            pod_ids = err.pod_ids
        except KubeApiError as err:
            if quiet:
                logger.debug("workload %s: kube down before play: %s", instance, err.reason)
                return
            if not err.gone:
                raise
            logger.info("workload %s: kube down found pods already gone (%s)", instance, err.reason)
        for pod in pod_ids or ():
            await run_blocking(self._api.remove_pod, pod)

    async def _clean_up_failed_play(self, instance: InstanceName, manifest: str, err: KubeApiError) -> None:
        """Leave nothing half-made behind a failed play (never touch a clashing pod)."""
        if not err.exists:
            pods = err.pod_ids if isinstance(err, KubePlayFailed) else None
            try:
                await self._tear_down(instance, manifest, pods, quiet=False)
            except KubeApiError as down_err:
                logger.debug("workload %s: nothing to tear down after failed play: %s", instance, down_err)
        try:
            await run_blocking(self._api.remove_volume, bookkeeping.config_volume(instance))
        except KubeApiError as vol_err:
            logger.warning("workload %s: cannot remove config volume: %s", instance, vol_err.reason)

    async def _write_volume(self, instance: InstanceName, volume: str, data: str) -> None:
        """Bookkeeping failures are logged and creation goes on, as in the reference."""
        try:
            await run_blocking(self._api.replace_volume, volume, data)
        except KubeApiError as err:
            logger.warning(
                "workload %s: cannot write bookkeeping volume %s (an agent restart will not find it): %s",
                instance,
                volume,
                err.reason,
            )

    async def _read_played(self, instance: InstanceName) -> _Played | None:
        """Manifest and pod ids from the bookkeeping volumes.

        None when the config volume is missing or holds no usable runtimeConfig;
        KubeApiError when Podman cannot be asked (never mistaken for "gone").
        An unreadable ``.pods`` volume is not an error: the pod list is then unknown.
        """
        config_volume = await run_blocking(self._api.read_volume, bookkeeping.config_volume(instance))
        if config_volume is None:
            return None
        try:
            manifest = stored_manifest(bookkeeping.decode(config_volume.data or ""))
        except (BookkeepingError, ValueError) as err:
            logger.warning("workload %s: config volume holds no usable runtimeConfig: %s", instance, err)
            return None
        pod_ids: tuple[str, ...] | None = None
        try:
            pods_volume = await run_blocking(self._api.read_volume, bookkeeping.pods_volume(instance))
            if pods_volume is not None and pods_volume.data is not None:
                pod_ids = tuple(bookkeeping.decode_pods(pods_volume.data))
        except (KubeApiError, BookkeepingError) as err:
            logger.warning("workload %s: pod list unreadable, treating it as unknown: %s", instance, err)
        if pod_ids is None:
            logger.warning("workload %s: no pod list recorded; its state is reported as Succeeded", instance)
        return _Played(manifest, pod_ids)


def stored_manifest(runtime_config: str) -> str:
    """The manifest of a stored runtimeConfig; lenient, so any stored workload can be deleted.

    Options are not re-validated here: the workload already runs, and delete
    only needs the manifest (kube down takes no options in Podman 4.3).
    """
    try:
        data = yaml.safe_load(runtime_config)
    except yaml.YAMLError as err:
        raise ValueError(f"stored runtimeConfig is not YAML: {err}") from err
    manifest = data.get("manifest") if isinstance(data, dict) else None
    if not isinstance(manifest, str) or not manifest.strip():
        raise ValueError("stored runtimeConfig has no manifest")
    return manifest
