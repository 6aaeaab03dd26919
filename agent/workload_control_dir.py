"""The control-interface folder of one workload's current instance.

The folder is made (or found again) before the instance's container is created and
kept as long as the instance and its access rules stay the same; a new instance id or
other rules need a folder of their own.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ankaios_agent.agent.errors import ControlInterfaceError
from ankaios_agent.agent.model import AccessRules, WorkloadSpec
from ankaios_agent.agent.ports import ControlInterfaceHost

log = logging.getLogger(__name__)


class ControlDir:
    """Prepares and releases the FIFO folder of one workload name."""

    def __init__(self, name: str, host: ControlInterfaceHost) -> None:
        self._name = name
        self._host = host
        self._path: Path | None = None
        self._folder: str | None = None
        self._rules: AccessRules | None = None

    @property
    def path(self) -> Path | None:
        """The folder to mount into the container; None while there is none."""
        return self._path

    def is_replaced_by(self, new: WorkloadSpec | None) -> bool:
        """Whether the folder in use must go before ``new`` (none, or another id or access rules)."""
        return new is None or (
            self._folder is not None
            and (self._folder, self._rules) != (new.instance.folder_name, new.control_interface_access)
        )

    async def prepare(self, spec: WorkloadSpec) -> str | None:
        """Make sure the FIFO folder of ``spec`` exists; returns an error text or None."""
        folder = spec.instance.folder_name
        rules = spec.control_interface_access
        if self._path is not None and (self._folder, self._rules) == (folder, rules):
            return None
        try:
            self._path = await self._host.ensure_for(spec)
        except ControlInterfaceError as err:
            # Nothing of a folder that could not be made is mounted; the next attempt tries again.
            self._path = self._folder = self._rules = None
            return err.reason
        self._folder = folder
        self._rules = rules
        return None

    async def release(self) -> None:
        self._path = None
        self._folder = None
        self._rules = None
        try:
            await self._host.remove(self._name)
        except ControlInterfaceError as err:
            log.warning("workload %s: could not remove its control interface: %s", self._name, err.reason)
        except Exception:
            log.exception(
                "workload %s: internal error of the agent removing its control interface", self._name
            )
