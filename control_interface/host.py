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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from ankaios_agent.agent.blocking import run_blocking
from ankaios_agent.agent.errors import ControlInterfaceError
from ankaios_agent.agent.model import REQUEST_ID_SEPARATOR, InstanceName, Request, Response
from ankaios_agent.control_interface import fifo
from ankaios_agent.control_interface.codec import Codec
from ankaios_agent.control_interface.codec_v0_3_1 import CodecV0_3_1
from ankaios_agent.control_interface.relay import Relay, RelayCounters, RelaySettings

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
    ) -> None:
        """``backlog(workload)``: how many of its requests still wait to be written to the server
        (``Outbox.queued_requests``); without it a request counts as written once forwarded."""
        self.io_folder = io_folder
        self._forward = forward
        self._settings = settings or RelaySettings()
        self._codec: Codec = codec or CodecV0_3_1()
        self._backlog = backlog
        self._relays: dict[str, Relay] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.unroutable_responses = 0
        """Responses whose prefix names no workload with a control interface."""

    def _lock(self, workload: str) -> asyncio.Lock:
        return self._locks.setdefault(workload, asyncio.Lock())

    async def ensure(self, instance: InstanceName) -> Path:
        """Create (or reuse) the FIFOs of ``instance``, start its relay, return the folder to mount.

        Idempotent for the same instance. For a new id of a known workload the
        old folder is removed first (an update to a new id moves the FIFOs).
        Raises ControlInterfaceError for a name that would leave the io folder
        (before any file system access) or when the files cannot be made.
        """
        folder = fifo.folder_for(self.io_folder, instance)
        workload = instance.workload
        async with self._lock(workload):
            current = self._relays.get(workload)
            if current is not None and current.folder == folder:
                return folder
            if current is not None:
                log.info("workload %s: moving control interface to %s", workload, folder)
                await self._stop_and_remove(current)
            prepared = await run_blocking(fifo.prepare, self.io_folder, instance)
            if REQUEST_ID_SEPARATOR in workload:
                # Allowed (the reference allows it too), but routing splits at the first "@".
                log.warning(
                    "workload %s: its name contains %r, so responses to its requests cannot be "
                    "routed back to it",
                    workload,
                    REQUEST_ID_SEPARATOR,
                )
            relay = Relay(
                workload, prepared, self._forward, self._settings, codec=self._codec, backlog=self._backlog
            )
            relay.start()
            self._relays[workload] = relay
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
                await run_blocking(fifo.remove, workload, folder)
        # The lock stays: a caller may already be waiting on it, and dropping it would let
        # a third caller run concurrently with that one. One small lock per name is fine.

    async def _stop_and_remove(self, relay: Relay) -> None:
        relay.stop()
        del self._relays[relay.workload]
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
