"""The ``podman`` runtime: create, delete, list and watch this agent's containers.

Seen from outside, a workload looks exactly as the reference agent makes it:
container name ``<workload>.<id>.<agent>`` (a user ``--name`` wins), labels
``name=<workload>.<id>.<agent>`` and ``agent=<agent>``, the control-interface
folder bind-mounted at ``/run/ankaios/control_interface``, each workload file
bind-mounted read-only at its mount point, started detached. A create that
names an ended container of the same instance starts that very container again
(same container id); if that fails, the container is removed so that the retry
creates a new one. Every call to Podman runs through ``run_blocking`` on a
per-thread podman-py client; state changes come from the monitor. Podman's
failures are typed once by ``engine_errors`` and leave this module only as
RuntimeCreateFailed, RuntimeDeleteFailed or RuntimeUnavailable; a bug (say a
KeyError) is not dressed up as one of them.

The container name must follow Podman's object-name rule (``names``); a
workload whose container name does not is refused before any call. A delete
that Podman answers with a refusal to stop (a paused container) removes the
container with force, so a delete completes whenever Podman is reachable.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from podman import PodmanClient

from ankaios_agent.agent.blocking import run_blocking
from ankaios_agent.agent.errors import (
    EngineCallFailed,
    EngineNotFound,
    EngineUnreachable,
    RuntimeCreateFailed,
    RuntimeDeleteFailed,
    RuntimeLogsFailed,
    RuntimeUnavailable,
)
from ankaios_agent.agent.model import InstanceName
from ankaios_agent.agent.ports import CreateRequest, LogBatch, LogOptions, OwnedWorkload, StateChange
from ankaios_agent.runtimes.podman.client import (
    RUNTIME_NAME,
    PodmanConnection,
    list_containers,
)
from ankaios_agent.runtimes.podman.config import parse_runtime_config
from ankaios_agent.runtimes.podman.engine_errors import check, podman_call
from ankaios_agent.runtimes.podman.monitor import Monitor, MonitorTimings
from ankaios_agent.runtimes.podman.names import check_object_name, segment
from ankaios_agent.runtimes.podman.options import read_env_files, translate, translate_general
from ankaios_agent.runtimes.podman.states import AGENT_LABEL, NAME_LABEL

logger = logging.getLogger(__name__)

CONTROL_INTERFACE_TARGET = "/run/ankaios/control_interface"


@dataclass(frozen=True)
class PodmanTimings:
    pull_timeout_s: float = 300.0
    monitor: MonitorTimings = field(default_factory=MonitorTimings)


class PodmanRuntime:
    """Implements ``agent.ports.Runtime`` for plain Podman containers."""

    name = RUNTIME_NAME
    reuses_containers = True

    def __init__(
        self, connection: PodmanConnection, agent_name: str, timings: PodmanTimings | None = None
    ) -> None:
        self._connection = connection
        self._agent = agent_name
        self._timings = timings or PodmanTimings()
        self.monitor = Monitor(connection, agent_name, self._timings.monitor)

    @classmethod
    async def open(
        cls,
        agent_name: str,
        run_folder: Path,
        podman_socket: str | None = None,
        timings: PodmanTimings | None = None,
    ) -> PodmanRuntime:
        """Find Podman (or start a private service in ``run_folder``); raises RuntimeUnavailable."""
        connection = await run_blocking(PodmanConnection.discover, podman_socket, run_folder)
        return cls(connection, agent_name, timings)

    async def close(self) -> None:
        """Release clients and stop the private Podman service if ``open`` started one."""
        await run_blocking(self._connection.close)

    # ------------------------------------------------------------ create

    async def create(self, request: CreateRequest) -> str:
        spec, control_dir = request.spec, request.control_dir
        instance = spec.instance
        config = parse_runtime_config(instance, spec.runtime_config)
        options = translate(instance, config.command_options)
        translate_general(instance, config.general_options, options)
        if options.env_files:
            file_env = await run_blocking(read_env_files, instance, options.env_files)
            options.env = {**file_env, **options.env}
        container_name = options.name or str(instance)
        check_object_name(
            instance, container_name, "container", "rename the workload or give --name in commandOptions"
        )
        if control_dir is not None:
            options.mounts.append(
                {
                    "type": "bind",
                    "source": str(control_dir),
                    "destination": CONTROL_INTERFACE_TARGET,
                    "options": ["rbind"],
                }
            )
        for mount in request.file_mounts:
            options.mounts.append(
                {
                    "type": "bind",
                    "source": str(mount.source),
                    "destination": mount.destination,
                    "options": ["rbind", "ro"],
                }
            )
        if request.reuse_id is not None:
            container_id = await run_blocking(self._start_again, instance, request.reuse_id)
            self.monitor.started(container_id, instance)
            logger.info("workload %s: started container %s again", instance.workload, container_id[:12])
            return container_id
        labels = {NAME_LABEL: str(instance), AGENT_LABEL: self._agent}
        try:
            payload = options.to_spec(config.image, config.command_args, str(instance), labels)
        except ValueError as exc:
            raise RuntimeCreateFailed(instance, str(exc)) from None
        container_id = await run_blocking(self._create, instance, config.image, options.pull, payload)
        self.monitor.started(container_id, instance)
        logger.info("workload %s: created container %s", instance.workload, container_id[:12])
        return container_id

    def _create(self, instance: InstanceName, image: str, pull: str, payload: dict[str, object]) -> str:
        client = self._connection.call_client()
        try:
            with podman_call("create container"):
                self._ensure_image(client, image, pull)
                response = client.api.post(
                    "/containers/create",
                    data=json.dumps(payload),
                    headers={"content-type": "application/json"},
                )
                check("create container", response)
            container_id = str(response.json()["Id"])
        except _PullFailed as exc:
            raise RuntimeCreateFailed(instance, str(exc)) from exc
        except EngineCallFailed as exc:
            # An unreachable Podman is a create failure like any other: the lifecycle retries it.
            raise RuntimeCreateFailed(instance, exc.reason, exc) from exc
        try:
            with podman_call("start container"):
                check("start container", client.api.post(f"/containers/{segment(container_id)}/start"))
        except EngineCallFailed as exc:
            self._remove_quietly(client, instance, container_id)
            raise RuntimeCreateFailed(instance, exc.reason, exc) from exc
        return container_id

    def _start_again(self, instance: InstanceName, container_id: str) -> str:
        """Start the ended container ``container_id`` of ``instance``; remove it when that fails."""
        client = self._connection.call_client()
        try:
            with podman_call("start container"):
                container = client.containers.get(container_id)
                container.start()
                return str(container.id)
        except EngineCallFailed as exc:
            try:
                with podman_call("list containers"):
                    ids = self._ids_of(instance)
            except EngineCallFailed:
                ids = [container_id]
            for stale in ids:
                self._remove_quietly(client, instance, stale)
            raise RuntimeCreateFailed(instance, exc.reason, exc) from exc

    def _ensure_image(self, client: PodmanClient, image: str, pull: str) -> None:
        if pull in ("missing", "never"):
            exists = client.api.get(f"/images/{segment(image)}/exists")
            if exists.status_code == 204:
                return
            if pull == "never":
                raise _PullFailed(f"image {image} is not available locally and the pull policy is 'never'")
        response = client.api.post(
            "/images/pull",
            params={"reference": image, "policy": pull, "quiet": "true"},
            timeout=self._timings.pull_timeout_s,
        )
        check("pull image", response)
        for line in response.text.splitlines():
            item = json.loads(line) if line.strip() else {}
            if isinstance(item, dict) and item.get("error"):
                raise _PullFailed(
                    f"image {image} is not available locally and pulling it failed: {item['error']}"
                )

    def _remove_quietly(self, client: PodmanClient, instance: InstanceName, container_id: str) -> None:
        """Leave nothing half-made behind; only log if even that fails."""
        try:
            with podman_call("remove container"):
                check(
                    "remove container",
                    client.api.delete(
                        f"/containers/{segment(container_id)}", params={"force": "true", "timeout": 0}
                    ),
                )
        except EngineNotFound:
            pass
        except EngineCallFailed as exc:
            logger.warning(
                "workload %s: cannot remove container %s after a failed start: %s",
                instance.workload,
                container_id[:12],
                exc.reason,
            )

    # ------------------------------------------------------------ delete

    async def delete(self, instance: InstanceName) -> None:
        try:
            ids = await run_blocking(self._ids_of, instance)
        except EngineCallFailed as exc:
            raise RuntimeDeleteFailed(instance, exc.reason, exc) from exc
        for container_id in ids:
            self.monitor.forget(container_id)
            try:
                await run_blocking(self._stop_and_remove, container_id)
            except EngineCallFailed as exc:
                self.monitor.remember(container_id)
                raise RuntimeDeleteFailed(instance, exc.reason, exc) from exc
            except BaseException:
                self.monitor.remember(container_id)
                raise
            logger.info("workload %s: removed container %s", instance.workload, container_id[:12])

    def _ids_of(self, instance: InstanceName) -> list[str]:
        with podman_call("list containers"):
            entries = list_containers(self._connection, self._agent, f"{NAME_LABEL}={instance}")
        return [str(entry["Id"]) for entry in entries]

    def _stop_and_remove(self, container_id: str) -> None:
        """Stop with the container's own stop timeout, then remove; gone counts as success.

        When Podman answers the stop with a refusal (a paused container, a state it cannot stop
        from), the container is removed with force and no grace period, so a delete always
        completes while Podman is reachable.
        """
        client = self._connection.call_client()
        path = f"/containers/{segment(container_id)}"
        grace: dict[str, str | int] = {}
        try:
            with podman_call("stop container"):
                stop = client.api.post(f"{path}/stop")
                if stop.status_code != 304:  # 304: already stopped
                    check("stop container", stop)
        except EngineNotFound:
            return
        except EngineUnreachable:
            raise
        except EngineCallFailed as exc:
            logger.warning(
                "container %s: Podman refused to stop it (%s); removing it with force",
                container_id[:12],
                exc.reason,
            )
            grace = {"timeout": 0}
        try:
            with podman_call("remove container"):
                check("remove container", client.api.delete(path, params={"force": "true", **grace}))
        except EngineNotFound:
            return

    # ------------------------------------------------------------ list / events

    async def list_owned(self) -> list[OwnedWorkload]:
        """Listed through the monitor, so the states returned are its latest observation."""
        try:
            records = await self.monitor.list_owned()
        except EngineCallFailed as exc:
            raise RuntimeUnavailable(RUNTIME_NAME, f"cannot list containers: {exc.reason}", exc) from exc
        return [OwnedWorkload(record.instance, record.id, record.state) for record in records]

    def events(self) -> AsyncIterator[StateChange]:
        return self.monitor.changes()

    # ------------------------------------------------------------ logs

    async def logs(self, instance: InstanceName, options: LogOptions) -> AsyncGenerator[LogBatch, None]:
        """The log of the instance's container (implements ``agent.ports.LogSource``)."""
        try:
            entries = await run_blocking(self._containers_of, instance)
        except EngineCallFailed as exc:
            raise RuntimeLogsFailed(instance, f"cannot list containers: {exc.reason}") from exc
        if not entries:
            raise RuntimeLogsFailed(instance, "no container of this workload exists")
        newest = max(entries, key=lambda entry: str(entry.get("Created") or ""))
        # Imported by the first log read: an agent never asked for a log never loads the reader.
        from ankaios_agent.runtimes.podman.logs import read_logs  # noqa: PLC0415

        reading = read_logs(self._connection, instance, [str(newest["Id"])], options)
        async with contextlib.aclosing(reading) as batches:
            async for batch in batches:
                yield batch

    def _containers_of(self, instance: InstanceName) -> list[dict[str, object]]:
        with podman_call("list containers"):
            return list_containers(self._connection, self._agent, f"{NAME_LABEL}={instance}")


class _PullFailed(Exception):
    """The image is missing and cannot be pulled; the message is shown as StartingFailed text."""
