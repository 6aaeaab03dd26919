"""Writing a workload's planned files below its ``files`` folder (blocking: run it off the loop).

The folder is rebuilt from nothing on every create attempt, so a file dropped
from the spec never stays mounted and nothing left behind by someone else is
reused. Every directory below it is created by the agent and entered with
``O_NOFOLLOW`` relative to its parent's descriptor, and every file is written
to a fresh temporary name and renamed into place: a symbolic link placed in the
tree (the run folder may be writable by others) can make a write fail, never
land outside the folder. Directories are ``0755`` and files ``0644`` whatever
the umask, so a container running as any user can read its files.

On any failure the whole folder is removed again and :class:`WorkloadFileError`
says which file failed, in the reference's words.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from ankaios_agent.agent.workload_files import FilesPlan, PlannedFile, WorkloadFileError

log = logging.getLogger(__name__)

DIRECTORY_MODE = 0o755
FILE_MODE = 0o644

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class FileMount:
    """A read-only bind mount of one written file."""

    source: Path
    destination: str


def write_files(files_dir: Path, plan: FilesPlan) -> tuple[FileMount, ...]:
    """Replace ``files_dir`` by the planned files; raise :class:`WorkloadFileError` after cleaning up.

    The files before a bad one are written first, so that the error reported is
    the first one in list order, as in the reference. A plan without files
    leaves no folder behind.
    """
    try:
        _clear(files_dir, plan)
        if not plan.files:
            if plan.error is not None:
                raise plan.error
            return ()
        root = _open_root(files_dir, plan)
        try:
            mounts = tuple(_write(root, files_dir, planned) for planned in plan.files)
        finally:
            os.close(root)
        if plan.error is not None:
            raise plan.error
    except WorkloadFileError:
        _remove_after_failure(files_dir)
        raise
    return mounts


def remove_files(files_dir: Path) -> None:
    """Remove the folder and everything in it without following symbolic links; missing is fine."""
    try:
        mode = os.lstat(files_dir).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        # On Linux rmtree works on descriptors and never follows a link inside the tree.
        shutil.rmtree(files_dir)
    else:
        os.unlink(files_dir)


def _clear(files_dir: Path, plan: FilesPlan) -> None:
    try:
        remove_files(files_dir)
    except OSError as error:
        raise _structure_error(_first_mount_point(plan), error) from error


def _open_root(files_dir: Path, plan: FilesPlan) -> int:
    try:
        files_dir.parent.mkdir(parents=True, exist_ok=True)
        parent = os.open(files_dir.parent, _DIR_FLAGS)
        try:
            return _enter(parent, files_dir.name)
        finally:
            os.close(parent)
    except OSError as error:
        raise _structure_error(_first_mount_point(plan), error) from error


def _first_mount_point(plan: FilesPlan) -> str:
    if plan.files:
        return plan.files[0].mount_point
    return plan.error.mount_point if plan.error is not None else ""


def _structure_error(mount_point: str, error: OSError) -> WorkloadFileError:
    reason = f"failed to create workload file directory structure for '{mount_point}': '{_os_text(error)}'"
    return WorkloadFileError(mount_point, reason)


def _enter(parent: int, name: str) -> int:
    """Open (creating it if needed) the directory ``name`` below ``parent``; never through a link."""
    try:
        os.mkdir(name, DIRECTORY_MODE, dir_fd=parent)
        created = True
    except FileExistsError:
        created = False
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    if created:
        os.fchmod(fd, DIRECTORY_MODE)
    return fd


def _write(root: int, files_dir: Path, planned: PlannedFile) -> FileMount:
    mount_point = planned.mount_point
    fds: list[int] = []
    try:
        parent = root
        try:
            for name in planned.parts[:-1]:
                parent = _enter(parent, name)
                fds.append(parent)
        except OSError as error:
            raise _structure_error(mount_point, error) from error
        try:
            _replace(parent, planned.parts[-1], planned.data)
        except OSError as error:
            raise WorkloadFileError(
                mount_point, f"write failed for '{mount_point}': '{_os_text(error)}'"
            ) from error
    finally:
        for fd in fds:
            os.close(fd)
    return FileMount(planned.host_path(files_dir), planned.destination)


def _replace(parent: int, name: str, data: bytes) -> None:
    temporary = f".ank-agent-{os.urandom(8).hex()}.tmp"
    fd = os.open(temporary, _NEW_FILE_FLAGS, FILE_MODE, dir_fd=parent)
    try:
        try:
            os.fchmod(fd, FILE_MODE)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        # rename replaces a link at ``name`` itself, it never writes through it.
        os.replace(temporary, name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=parent)
        raise


def _os_text(error: OSError) -> str:
    # Worded like the reference's I/O errors: "<description> (os error <n>)".
    if error.errno is not None and error.strerror:
        return f"{error.strerror} (os error {error.errno})"
    return str(error)


def _remove_after_failure(files_dir: Path) -> None:
    try:
        remove_files(files_dir)
    except OSError as error:
        log.warning("Could not remove the workload files folder '%s' after a failure: %s", files_dir, error)


__all__ = ["DIRECTORY_MODE", "FILE_MODE", "FileMount", "remove_files", "write_files"]
