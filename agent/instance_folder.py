"""The folder ``<run>/<workload>.<id>`` of one instance and the files written into it.

Only dialects whose rules say so have such a folder. The files are written afresh
before every create attempt and removed again when the attempt fails; ``files/`` goes
once the old container of an update is gone, the whole folder on delete or when the
instance id changes.
"""

from __future__ import annotations

import enum
import logging
from pathlib import Path

from ankaios_agent.agent.blocking import run_blocking
from ankaios_agent.agent.lifecycle_rules import LifecycleRules, RulesHolder
from ankaios_agent.agent.model import InstanceName, WorkloadSpec
from ankaios_agent.agent.ports import Runtime
from ankaios_agent.agent.unsupported_runtime import UnsupportedRuntime
from ankaios_agent.agent.workload_file_writer import FileMount, remove_files, write_files
from ankaios_agent.agent.workload_files import FILES_FOLDER, WorkloadFileError, plan_files

log = logging.getLogger(__name__)


def folder_name_is_safe(name: str) -> bool:
    """Whether ``name`` is one plain entry of the run folder (no separator, no ``..``, no NUL)."""
    return name not in ("", ".", "..") and "/" not in name and "\0" not in name


class Clean(enum.Enum):
    """What of an instance's folder goes once its container is gone."""

    NOTHING = enum.auto()
    FILES = enum.auto()
    FOLDER = enum.auto()


class InstanceFolders:
    """Writes and removes the instance folders of one workload name."""

    def __init__(self, name: str, run_folder: Path | None, rules: RulesHolder) -> None:
        self._name = name
        # Where each instance's folder lives; None: nowhere to write files.
        self._run_folder = run_folder
        self._rules = rules

    def writes_files(self, rules: LifecycleRules, runtime: Runtime) -> bool:
        # A workload nobody can run gets nothing written for it.
        return rules.workload_folder and not isinstance(runtime, UnsupportedRuntime)

    def folder_of(self, instance: InstanceName) -> Path | None:
        """``<run>/<workload>.<id>``; None without a run folder or for a name that would leave it."""
        name = instance.folder_name
        if self._run_folder is None or not folder_name_is_safe(name):
            return None
        return self._run_folder / name

    async def write_files(self, spec: WorkloadSpec) -> tuple[FileMount, ...]:
        """(Re)write every file of ``spec``, each time from nothing; raises WorkloadFileError."""
        folder = self.folder_of(spec.instance)
        if folder is None:
            if not spec.files:
                return ()
            where = (
                "the agent has no run folder to write it to"
                if self._run_folder is None
                else f"the workload name {spec.name!r} cannot be a folder name"
            )
            raise WorkloadFileError(spec.files[0].mount_point, where)
        return await run_blocking(write_files, folder / FILES_FOLDER, plan_files(spec.files))

    async def forget_files(self, instance: InstanceName, wrote: bool) -> None:
        """After a failed create: no file of it stays behind (the next attempt writes them anew)."""
        if wrote:
            await self.clean(instance, Clean.FILES)

    async def clean(self, instance: InstanceName, what: Clean) -> None:
        folder = self.folder_of(instance)
        if what is Clean.NOTHING or folder is None or not self._rules.current.workload_folder:
            return
        target = folder / FILES_FOLDER if what is Clean.FILES else folder
        try:
            await run_blocking(remove_files, target)
        except OSError as err:
            log.warning("workload %s: could not remove %s: %s", self._name, target, err)
