"""The ``podman-kube`` runtime: Kubernetes Pod manifests played on Podman.

Create, over REST instead of the CLI:

1. ``<inst>.config`` volume, label data = b64(runtimeConfig) (errors logged);
2. ``POST /libpod/play/kube`` with the manifest and the translated playOptions;
3. ``<inst>.pods`` volume, label data = b64(JSON pod ids) (errors logged);
4. the monitor watches the pods; the runtime id is the comma-joined pod ids.

Unlike the reference, a failed play leaves nothing behind: the pods it created
(those that did not exist before the play) are removed and the config volume
is removed, so a retry can play again and an agent restart does not adopt a
workload that never ran. A play refused because a pod of that name already
exists removes nothing: that pod existed before, so it is not ours.

Delete: kube down with the stored manifest (generalOptions are not used), then
remove the ``.pods`` and ``.config`` volumes. Already gone is success: when
kube down fails and one of the recorded pods no longer exists, the remaining
ones are removed by id; pods kube down reports it could not remove (paused
ones) are removed by id with force. A workload with files is refused for good
(ConfigMaps are the kube way). A workload with access rules (v1.0.1) gets its
control interface in the one container its ``controlInterfaceTarget`` names
(``control_mount``); other kube workloads get no control-interface mount.

Podman 4.3 answers a failed play or down with 500 whatever the cause, so what
happened is found out by looking at the pods, not by reading Podman's text.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass

import yaml

from ankaios_agent.agent.blocking import run_blocking
from ankaios_agent.agent.errors import (
    EngineCallFailed,
    EngineUnreachable,
    RuntimeCreateFailed,
    RuntimeDeleteFailed,
    RuntimeLogsFailed,
    RuntimeUnavailable,
    WorkloadConfigError,
)
from ankaios_agent.agent.model import InstanceName
from ankaios_agent.agent.ports import CreateRequest, LogBatch, LogOptions, OwnedWorkload, StateChange
from ankaios_agent.runtimes.podman.client import PodmanConnection
from ankaios_agent.runtimes.podman.monitor_core import MonitorTimings
from ankaios_agent.runtimes.podman_kube import bookkeeping
from ankaios_agent.runtimes.podman_kube.bookkeeping import BookkeepingError
from ankaios_agent.runtimes.podman_kube.config import RUNTIME_NAME, check_workload_name, parse_kube_config
from ankaios_agent.runtimes.podman_kube.control_mount import ControlMountError, inject_control_interface
from ankaios_agent.runtimes.podman_kube.kube_api import KubeApi, KubeDownIncomplete, KubePlayFailed, Pod
from ankaios_agent.runtimes.podman_kube.logs import workload_containers
from ankaios_agent.runtimes.podman_kube.monitor import KubeMonitor

logger = logging.getLogger(__name__)

FILES_NOT_SUPPORTED = "Workload files are not supported for podman-kube runtime. Use ConfigMaps instead."


@dataclass(frozen=True)
class _Played:
    """What delete needs to know about an instance."""

    manifest: str
    pod_ids: tuple[str, ...] | None


def runtime_id_of(pod_ids: Sequence[str] | None) -> str:
    """The runtime id the lifecycle sees: the pod ids, comma-joined ("" if unknown)."""
    return ",".join(pod_ids or ())


class PodmanKubeRuntime:
    """Runtime ``podman-kube`` of one agent (implements agent.ports.Runtime)."""

    name = RUNTIME_NAME
    reuses_containers = False  # a restart plays the manifest again

    def __init__(
        self,
        connection: PodmanConnection,
        agent_name: str,
        timings: MonitorTimings | None = None,
    ) -> None:
        """``connection`` and ``timings`` are shared with the podman runtime (PodmanTimings.monitor)."""
        self._agent = agent_name
        self._connection = connection
        self._api = KubeApi(connection)
        self._monitor = KubeMonitor(self._api, connection, timings)
        self._played: dict[InstanceName, _Played] = {}
        self._deleting: set[InstanceName] = set()

    async def create(self, request: CreateRequest) -> str:
        spec, control_dir = request.spec, request.control_dir
        instance = spec.instance
        if spec.runtime != RUNTIME_NAME:
            raise WorkloadConfigError(
                instance, f"runtime {spec.runtime!r} given to the {RUNTIME_NAME} runtime"
            )
        check_workload_name(instance)
        if spec.files:
            raise WorkloadConfigError(instance, FILES_NOT_SUPPORTED)
        config = parse_kube_config(instance, spec.runtime_config)
        manifest = config.manifest
        # Only a workload with access rules (v1.0.1) gets the FIFOs into a kube container; the
        # v0.3.1 dialect gives kube workloads no control-interface mount.
        if control_dir is not None and spec.control_interface_access.needs_control_interface:
            try:
                manifest = inject_control_interface(manifest, config.control_interface_target, control_dir)
            except ControlMountError as err:
                raise WorkloadConfigError(instance, str(err)) from err

        await self._write_volume(
            instance, bookkeeping.config_volume(instance), bookkeeping.encode(spec.runtime_config)
        )
        if config.play.replace:
            await self._tear_down(instance, config.manifest, None, quiet=True)
        try:
            before: set[str] | None = {pod.id for pod in await run_blocking(self._api.pods)}
        except EngineCallFailed:
            before = None  # the play will tell what is wrong
        try:
            pod_ids = await run_blocking(self._api.play, manifest, config.play.query)
        except EngineCallFailed as err:
            await self._clean_up_failed_play(instance, config.manifest, err, before)
            raise RuntimeCreateFailed(instance, err.reason, err) from err

        await self._write_volume(
            instance, bookkeeping.pods_volume(instance), bookkeeping.encode_pods(pod_ids)
        )
        self._played[instance] = _Played(config.manifest, tuple(pod_ids))
        runtime_id = runtime_id_of(pod_ids)
        self._monitor.watch(instance, pod_ids, runtime_id)
        logger.info("workload %s: played pods %s", instance, runtime_id or "(none)")
        return runtime_id

    async def delete(self, instance: InstanceName) -> None:
        # While deleting, a concurrent list_owned must not watch the instance again.
        self._deleting.add(instance)
        try:
            await self._delete(instance)
        finally:
            self._deleting.discard(instance)

    async def _delete(self, instance: InstanceName) -> None:
        try:
            played = self._played.get(instance) or await self._read_played(instance)
            if played is None:
                logger.info("workload %s: no kube bookkeeping found, already gone", instance)
            else:
                await self._tear_down(instance, played.manifest, played.pod_ids, quiet=False)
        except EngineCallFailed as err:
            raise RuntimeDeleteFailed(instance, err.reason, err) from err
        self._monitor.unwatch(instance)
        self._played.pop(instance, None)
        for volume in (bookkeeping.pods_volume(instance), bookkeeping.config_volume(instance)):
            try:
                await run_blocking(self._api.remove_volume, volume)
            except EngineCallFailed as err:
                logger.warning("workload %s: cannot remove volume %s: %s", instance, volume, err.reason)

    async def list_owned(self) -> list[OwnedWorkload]:
        """Instances with a ``.config`` volume of this agent, each watched from now on.

        An instance this runtime already watches keeps its watch (a re-read
        bookkeeping volume never replaces what create learnt), and one being
        deleted is left out. The states come from one fresh relist of the
        monitor, so they are never older than a change it already reported.
        """
        try:
            volumes = await run_blocking(self._api.config_volumes, self._agent)
        except EngineCallFailed as err:
            raise RuntimeUnavailable(
                RUNTIME_NAME, f"cannot list kube bookkeeping volumes: {err.reason}", err
            ) from err
        found: list[tuple[InstanceName, _Played]] = []
        for volume in volumes:
            instance = bookkeeping.instance_of_config_volume(volume, self._agent)
            if instance is None:
                logger.warning("skipping kube volume %s: not a <workload>.<id>.<agent>.config name", volume)
                continue
            if instance in self._deleting:
                continue
            played = self._played.get(instance)
            if played is None:
                try:
                    played = await self._read_played(instance)
                except EngineCallFailed as err:
                    reason = f"cannot read bookkeeping of {instance}: {err.reason}"
                    raise RuntimeUnavailable(RUNTIME_NAME, reason, err) from err
                if played is None:
                    logger.warning("skipping kube workload %s: its config volume cannot be read", instance)
                    continue
                if instance in self._deleting or instance in self._played:
                    continue  # a delete or create started while the volume was read
                self._played[instance] = played
                self._monitor.watch(instance, played.pod_ids, runtime_id_of(played.pod_ids))
            found.append((instance, played))
        if not await self._monitor.relist():
            logger.warning("cannot list the kube workloads' containers; their states are unknown for now")
        return [
            OwnedWorkload(
                instance=instance,
                runtime_id=runtime_id_of(played.pod_ids),
                state=self._monitor.latest_state(instance),
            )
            for instance, played in found
            if instance in self._played
        ]

    def events(self) -> AsyncIterator[StateChange]:
        return self._monitor.events()

    async def logs(self, instance: InstanceName, options: LogOptions) -> AsyncGenerator[LogBatch, None]:
        """The merged log of the workload containers of the instance's pods (``agent.ports.LogSource``)."""
        try:
            played = self._played.get(instance) or await self._read_played(instance)
            pod_ids = played.pod_ids if played is not None else None
            containers = await run_blocking(workload_containers, self._connection, pod_ids or ())
        except (EngineCallFailed, BookkeepingError, ValueError) as err:
            raise RuntimeLogsFailed(instance, f"cannot find the pods' containers: {err}") from err
        if not containers:
            raise RuntimeLogsFailed(instance, "the workload's pods have no containers")
        from ankaios_agent.runtimes.podman.logs import read_logs  # noqa: PLC0415 (see podman's logs())

        async with contextlib.aclosing(read_logs(self._connection, instance, containers, options)) as batches:
            async for batch in batches:
                yield batch

    # --- helpers ------------------------------------------------------------------------

    async def _tear_down(
        self, instance: InstanceName, manifest: str, pod_ids: Sequence[str] | None, *, quiet: bool
    ) -> None:
        """kube down; pods already gone are success, leftovers are removed by id.

        Pods kube down could not remove (a paused pod) are removed by id with force, so a
        delete completes whenever Podman is reachable.
        """
        leftovers: list[str] | None
        try:
            await run_blocking(self._api.down, manifest)
            return
        except KubeDownIncomplete as err:
            if quiet:
                logger.debug("workload %s: kube down before play: %s", instance, err.reason)
                return
            logger.warning("workload %s: %s; removing them with force", instance, err.reason)
            leftovers = err.pod_ids
        except EngineCallFailed as err:
            if quiet:
                logger.debug("workload %s: kube down before play: %s", instance, err.reason)
                return
            if isinstance(err, EngineUnreachable):
                raise
            leftovers = await self._pods_left(manifest, pod_ids)
            if leftovers is None:
                raise
            logger.info("workload %s: kube down found pods already gone (%s)", instance, err.reason)
        for pod in leftovers:
            await run_blocking(self._api.remove_pod, pod)

    async def _pods_left(self, manifest: str, pod_ids: Sequence[str] | None) -> list[str] | None:
        """After a failed kube down: the pods still to remove if some are gone, None if all are there.

        kube down stops at the first pod it cannot find, so a missing pod is
        what makes it fail while the others may still exist.
        """
        if pod_ids is not None:
            exists = {pod: await run_blocking(self._api.pod_exists, pod) for pod in pod_ids}
            if all(exists.values()) and pod_ids:
                return None
            return [pod for pod, there in exists.items() if there]
        names = manifest_pod_names(manifest)
        present = [pod for pod in await run_blocking(self._api.pods) if _made_from(pod, names)]
        if len(present) >= len(names):
            return None
        return [pod.id for pod in present]

    async def _clean_up_failed_play(
        self, instance: InstanceName, manifest: str, err: EngineCallFailed, before: set[str] | None
    ) -> None:
        """Leave nothing half-made behind a failed play; pods that existed before are not ours."""
        made = set(err.pod_ids) if isinstance(err, KubePlayFailed) else set()
        if before is not None:
            try:
                names = manifest_pod_names(manifest)
                made |= {
                    pod.id
                    for pod in await run_blocking(self._api.pods)
                    if pod.id not in before and _made_from(pod, names)
                }
            except EngineCallFailed as list_err:
                logger.debug("workload %s: cannot list pods after failed play: %s", instance, list_err)
        for pod_id in sorted(made - (before or set())):
            try:
                await run_blocking(self._api.remove_pod, pod_id)
            except EngineCallFailed as rm_err:
                logger.warning(
                    "workload %s: cannot remove pod %s of a failed play: %s", instance, pod_id, rm_err
                )
        try:
            await run_blocking(self._api.remove_volume, bookkeeping.config_volume(instance))
        except EngineCallFailed as vol_err:
            logger.warning("workload %s: cannot remove config volume: %s", instance, vol_err.reason)

    async def _write_volume(self, instance: InstanceName, volume: str, data: str) -> None:
        """Bookkeeping failures are logged and creation goes on, as the reference does."""
        try:
            await run_blocking(self._api.replace_volume, volume, data)
        except EngineCallFailed as err:
            logger.warning(
                "workload %s: cannot write bookkeeping volume %s (an agent restart will not find it): %s",
                instance,
                volume,
                err.reason,
            )

    async def _read_played(self, instance: InstanceName) -> _Played | None:
        """Manifest and pod ids from the bookkeeping volumes.

        None when the config volume is missing or holds no usable runtimeConfig;
        EngineCallFailed when Podman cannot be asked (never mistaken for "gone").
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
        except (EngineCallFailed, BookkeepingError) as err:
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


def manifest_pod_names(manifest: str) -> list[str]:
    """The names of the objects in ``manifest`` that kube play turns into pods."""
    try:
        documents = list(yaml.safe_load_all(manifest))
    except yaml.YAMLError:
        return []
    names = []
    for doc in documents:
        metadata = doc.get("metadata") if isinstance(doc, dict) else None
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if isinstance(name, str) and doc.get("kind") in ("Pod", "Deployment"):
            names.append(name)
    return names


def _made_from(pod: Pod, names: Sequence[str]) -> bool:
    """A Pod keeps its name; a Deployment's pods are named ``<name>-pod...``."""
    return any(pod.name == name or pod.name.startswith(f"{name}-pod") for name in names)
