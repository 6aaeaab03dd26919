"""The control-interface host: one relay per workload, responses routed by name.

The lifecycle layer calls ``ensure`` before it creates a container (and for
resumed ones), mounts the returned folder, calls ``remove`` as soon as a delete
is issued (so a dying workload cannot send more requests), hands every
``Response`` from the server to ``route``, and calls ``close`` at shutdown
(relays stop, files stay so the still-running containers find them at the
next agent start).

Keys are workload names, as in the reference: a response to a request from an
old instance goes to the current one. The message codec is injected, so the
same host and relays serve any dialect.

Per dialect (switched by :meth:`ControlInterfaceHost.use_dialect` when a
session starts; it applies to control interfaces made from then on):

* v0.3.1: every workload gets one, in ``<io>/<wl>.<id>/``, no handshake, no rules;
* v1.0.1: only a workload with at least one allow rule gets one, in
  ``<io>/<wl>.<id>/control_interface/``, with the handshake and its rules; a
  workload without allow rules gets no folder at all (a client then finds no
  FIFOs instead of hanging). Changed rules replace the control interface: the
  old one goes first, then the new one is made with fresh FIFOs.

Authorization decides as the reference agent does, quirks included, because
what a workload can observe must not change with the agent it runs under
(behaviour "v1.0.1: authorization"). One of those quirks is a hole: a ``*`` in
a request slips past a deny rule that names what it would expand to. The
opt-in strict mode (``--strict-authorization``) closes it: a request ``*``
meets every deny segment, an allow pattern reaches up to the parents of its
subtree only when it is ``*`` itself, and a log rule is searched to its end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from ankaios_agent.agent.blocking import run_blocking
from ankaios_agent.agent.errors import ControlInterfaceError
from ankaios_agent.agent.lifecycle_rules import Dialect
from ankaios_agent.agent.model import (
    REQUEST_ID_SEPARATOR,
    AccessRules,
    InstanceName,
    Request,
    Response,
    WorkloadSpec,
)
from ankaios_agent.control_interface import fifo
from ankaios_agent.control_interface.codec import Codec
from ankaios_agent.control_interface.relay import Relay
from ankaios_agent.control_interface.relay_settings import RelayCounters, RelaySettings

log = logging.getLogger(__name__)


class ControlInterfaceHost:
    """Owns the relays of every workload; runs on the agent's event loop."""

    def __init__(
        self,
        io_folder: Path,
        forward: Callable[[Request], None],
        settings: RelaySettings | None = None,
        codec: Codec | None = None,
        backlog: Callable[[str], int] | None = None,
        *,
        dialect: Dialect = Dialect.V0_3,
        strict_authorization: bool = False,
    ) -> None:
        """``backlog(workload)``: how many of its requests still wait to be written to the server
        (``Outbox.queued_requests``); without it a request counts as written once forwarded.
        ``codec``: the v0.3.1 codec to use (v1.0.1 sessions get one codec per workload)."""
        self.io_folder = io_folder
        self._forward = forward
        self._settings = settings or RelaySettings()
        self._codec = codec
        self._backlog = backlog
        self._dialect = dialect
        self._strict = strict_authorization
        self._relays: dict[str, Relay] = {}
        self._access: dict[str, AccessRules] = {}
        """The rules each v1.0.1 relay was made with."""
        self._locks: dict[str, asyncio.Lock] = {}
        self.unroutable_responses = 0
        """Responses whose prefix names no workload with a control interface."""

    def _lock(self, workload: str) -> asyncio.Lock:
        return self._locks.setdefault(workload, asyncio.Lock())

    @property
    def dialect(self) -> Dialect:
        return self._dialect

    def use_dialect(self, dialect: Dialect) -> None:
        """The session layer's hook: control interfaces made from now on follow ``dialect``."""
        if dialect is not self._dialect:
            log.info("control interfaces follow the v%s rules from now on", dialect.value)
        self._dialect = dialect

    async def ensure_for(self, spec: WorkloadSpec) -> Path | None:
        """Make sure ``spec`` has the control interface its dialect and rules call for.

        Returns the folder to mount, or None when the workload gets none (v1.0.1
        without allow rules; an existing one is removed then). Idempotent for
        the same instance and rules. Raises ControlInterfaceError as ``ensure``.
        """
        if self._dialect is Dialect.V0_3:
            return await self.ensure(spec.instance)
        instance = spec.instance
        workload = instance.workload
        access = spec.control_interface_access
        if not access.needs_control_interface:
            async with self._lock(workload):
                current = self._relays.get(workload)
                if current is not None:
                    log.info("workload %s: no allow rules any more; removing its control interface", workload)
                    await self._stop_and_remove(current)
            log.debug("workload %s: no control interface access specified, so it gets none", workload)
            return None
        folder = fifo.folder_for(self.io_folder, instance, fifo.V1_SUBFOLDER)
        strict = self._strict
        # Each dialect's codec (and the generated modules behind it) is imported when a
        # control interface first needs it: an agent in one dialect never loads the other's.
        from ankaios_agent.control_interface.authorizer import Authorizer  # noqa: PLC0415
        from ankaios_agent.control_interface.codec_v1 import CodecV1  # noqa: PLC0415

        def codec_for(prepared: fifo.ControlFolder) -> Codec:
            return CodecV1(workload, Authorizer.from_rules(access, strict=strict), resumed=prepared.reused)

        return await self._ensure(instance, folder, fifo.V1_SUBFOLDER, codec_for, access)

    async def ensure(self, instance: InstanceName) -> Path:
        """Create (or reuse) the v0.3.1 FIFOs of ``instance``, start its relay, return the folder.

        Idempotent for the same instance. For a new id of a known workload the
        old folder is removed first (an update to a new id moves the FIFOs).
        Raises ControlInterfaceError for a name that would leave the io folder
        (before any file system access) or when the files cannot be made.
        """
        folder = fifo.folder_for(self.io_folder, instance)
        if self._codec is None:
            from ankaios_agent.control_interface.codec_v0_3_1 import CodecV0_3_1  # noqa: PLC0415

            self._codec = CodecV0_3_1()  # stateless: one for every v0.3.1 control interface
        codec = self._codec
        return await self._ensure(instance, folder, None, lambda _prepared: codec, None)

    async def _ensure(
        self,
        instance: InstanceName,
        folder: Path,
        subfolder: str | None,
        codec_for: Callable[[fifo.ControlFolder], Codec],
        access: AccessRules | None,
    ) -> Path:
        workload = instance.workload
        async with self._lock(workload):
            current = self._relays.get(workload)
            if current is not None and current.folder == folder and self._access.get(workload) == access:
                return folder
            if current is not None:
                if current.folder == folder:
                    log.info("workload %s: access rules changed; replacing its control interface", workload)
                else:
                    log.info("workload %s: moving control interface to %s", workload, folder)
                await self._stop_and_remove(current)
            prepared = await run_blocking(fifo.prepare, self.io_folder, instance, subfolder)
            if REQUEST_ID_SEPARATOR in workload:
                # Allowed (the reference allows it too), but routing splits at the first "@".
                log.warning(
                    "workload %s: its name contains %r, so responses to its requests cannot be "
                    "routed back to it",
                    workload,
                    REQUEST_ID_SEPARATOR,
                )
            relay = Relay(
                workload,
                prepared,
                self._forward,
                self._settings,
                codec=codec_for(prepared),
                backlog=self._backlog,
            )
            relay.start()
            self._relays[workload] = relay
            if access is not None:
                self._access[workload] = access
            log.info("workload %s: control interface ready in %s", workload, folder)
            return folder

    async def remove(self, workload: str) -> None:
        """Stop the relay of ``workload`` and delete its FIFOs and folder (also leftovers of other ids)."""
        try:
            fifo.check_name_component(workload, workload, "workload name")
        except ControlInterfaceError:
            log.debug("workload %r: no control interface can exist for this name", workload)
            return
        async with self._lock(workload):
            relay = self._relays.get(workload)
            if relay is not None:
                await self._stop_and_remove(relay)
            for folder in await run_blocking(fifo.leftover_folders, self.io_folder, workload):
                # The v1.0.1 instance folder also holds the workload's files: only its FIFO
                # folder is ours to remove (the lifecycle removes the instance folder).
                ci_folder = folder / fifo.V1_SUBFOLDER
                if await run_blocking(ci_folder.is_dir):
                    await run_blocking(fifo.remove, workload, ci_folder)
                if self._dialect is Dialect.V0_3:
                    await run_blocking(fifo.remove, workload, folder)
        # The lock stays: a caller may already be waiting on it, and dropping it would let
        # a third caller run concurrently with that one. One small lock per name is fine.

    async def _stop_and_remove(self, relay: Relay) -> None:
        relay.stop()
        del self._relays[relay.workload]
        self._access.pop(relay.workload, None)
        await run_blocking(fifo.remove, relay.workload, relay.folder)

    def route(self, response: Response) -> None:
        """Hand a server response to the workload named before the first ``@``; never blocks.

        The prefix is stripped, further ``@`` stay part of the workload's id.
        """
        workload, _, rest = response.request_id.partition(REQUEST_ID_SEPARATOR)
        relay = self._relays.get(workload)
        if relay is None:
            self.unroutable_responses += 1
            log.warning(
                "response %r dropped: no workload %r with a control interface (%d unroutable so far)",
                response.request_id,
                workload,
                self.unroutable_responses,
            )
            return
        relay.send(Response(request_id=rest, body=response.body))

    async def close(self) -> None:
        """Stop every relay and keep the files (running containers keep their mounts)."""
        relays = list(self._relays.values())
        self._relays.clear()
        self._access.clear()
        for relay in relays:
            relay.stop()
        if relays:
            log.info("stopped %d control interface relay(s)", len(relays))

    def counters(self, workload: str) -> RelayCounters | None:
        """The counters of the relay of ``workload`` (None without a control interface)."""
        relay = self._relays.get(workload)
        return relay.counters if relay is not None else None

    @property
    def workloads(self) -> frozenset[str]:
        return frozenset(self._relays)
