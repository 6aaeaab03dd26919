"""The per-workload control-interface folder and its two FIFOs.

Layout: ``<io_folder>/<workload>.<id>/{input,output}`` (v0.3.1), or
``<io_folder>/<workload>.<id>/control_interface/{input,output}`` (v1.0.1, where
the instance folder also holds the workload's files); the folder holding the
FIFOs is bind-mounted at ``/run/ankaios/control_interface`` in the container. Names are
from the workload's point of view: it writes ``output`` and reads ``input``.

Permissions. Nothing here is world-writable: the folder is 0700 and the FIFOs
are 0600, owned by the agent's user. That is enough for a workload running as
root in its container to open both ends through the bind mount:

* rootful Podman: uid 0 in the container *is* uid 0 on the host, the owner of
  the files, so owner permissions apply (no capability needed);
* rootless Podman: the agent runs as host user U and uid 0 in the container is
  mapped to U, again the owner.

A workload running as another, non-root user in its container (``--user``) is
not the owner and cannot open the FIFOs; the reference agent (mode 0700) has
the same limit, and loosening it would let every local user talk to the
server in the workload's name.

Workload names come from the server, which does not validate them. A name
that would leave the io folder (``/`` or NUL inside, ``.``, ``..``, empty) is
refused before any file system call.

A workload that is root in its container can replace the FIFOs in its folder
(the folder is bind-mounted read-write), for example by symlinks to another
workload's FIFOs or to host files, which the agent would then open on the host.
So :func:`prepare` records the device and inode of each FIFO it made, and the
relay opens them only with ``O_NOFOLLOW`` and only accepts the very same inode.

All functions here are blocking (but short: mkdir/mkfifo/unlink); callers on
the event loop run them through ``agent.blocking.run_blocking``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ankaios_agent.agent.errors import ControlInterfaceError
from ankaios_agent.agent.model import InstanceName

log = logging.getLogger(__name__)

INPUT_FIFO = "input"
"""Agent → workload: length-delimited FromServer frames."""
OUTPUT_FIFO = "output"
"""Workload → agent: length-delimited ToServer frames."""

FOLDER_MODE = 0o700
FIFO_MODE = 0o600

V1_SUBFOLDER = "control_interface"
"""Below the instance folder in the v1.0.1 layout."""


def check_name_component(workload: str, value: str, what: str) -> None:
    """Refuse a value that cannot be used as one path component below the io folder."""
    if value in ("", ".", ".."):
        raise ControlInterfaceError(workload, f"{what} {value!r} cannot be used as a folder name")
    for bad in ("/", "\0"):
        if bad in value:
            raise ControlInterfaceError(workload, f"{what} contains {bad!r}, which would leave the io folder")


def folder_for(io_folder: Path, instance: InstanceName, subfolder: str | None = None) -> Path:
    """The FIFO folder of ``instance``, after checking that it stays inside ``io_folder``.

    ``subfolder``: the FIFOs live one level below the instance folder.
    Raises ControlInterfaceError without touching the file system.
    """
    check_name_component(instance.workload, instance.workload, "workload name")
    check_name_component(instance.workload, instance.id, "workload id")
    folder = io_folder / instance.folder_name
    return folder / subfolder if subfolder else folder


FileId = tuple[int, int]
"""``(st_dev, st_ino)``: which file a path named when the agent made it."""


@dataclass(frozen=True)
class ControlFolder:
    """A prepared folder and the identity of the two FIFOs the agent made in it."""

    path: Path
    input_id: FileId
    output_id: FileId
    reused: bool = False
    """Both FIFOs were there already (left by an earlier agent), so a workload may still hold them."""


def prepare(io_folder: Path, instance: InstanceName, subfolder: str | None = None) -> ControlFolder:
    """Create (or reuse) the folder and both FIFOs of ``instance``.

    Existing FIFOs are reused, so a restarted agent and a still-running
    container keep talking through the same inodes, unless they do not look
    like ours (another owner, more than one link): those are made afresh.
    Raises ControlInterfaceError when something in the way is not a folder /
    FIFO or on any OS error.
    """
    folder = folder_for(io_folder, instance, subfolder)
    workload = instance.workload
    try:
        io_folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        if subfolder:
            _ensure_parent(workload, folder.parent)
        _ensure_folder(workload, folder)
        input_id, input_reused = _ensure_fifo(workload, folder / INPUT_FIFO)
        output_id, output_reused = _ensure_fifo(workload, folder / OUTPUT_FIFO)
    except OSError as err:
        raise ControlInterfaceError(workload, f"cannot prepare {folder}: {err.strerror or err}") from err
    return ControlFolder(
        folder, input_id=input_id, output_id=output_id, reused=input_reused and output_reused
    )


def _ensure_parent(workload: str, folder: Path) -> None:
    """The instance folder: made if missing, never re-moded (the workload's files live there too)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, FOLDER_MODE)
    if not stat.S_ISDIR(os.lstat(folder).st_mode):
        raise ControlInterfaceError(workload, f"{folder} exists and is not a folder")


def _ensure_folder(workload: str, folder: Path) -> None:
    try:
        os.mkdir(folder, FOLDER_MODE)
        created = True
    except FileExistsError:
        created = False
    info = os.lstat(folder)
    # lstat: a symlink planted in place of the folder must not redirect the FIFOs.
    if not stat.S_ISDIR(info.st_mode):
        raise ControlInterfaceError(workload, f"{folder} exists and is not a folder")
    if created or stat.S_IMODE(info.st_mode) != FOLDER_MODE:
        # mkdir applies the umask; an older agent may have left a looser mode.
        os.chmod(folder, FOLDER_MODE)
    if not created:
        log.info("workload %s: reusing control interface folder %s", workload, folder)


def _ensure_fifo(workload: str, path: Path) -> tuple[FileId, bool]:
    reused = False
    try:
        os.mkfifo(path, FIFO_MODE)
    except FileExistsError:
        reused = True
        info = os.lstat(path)
        if not stat.S_ISFIFO(info.st_mode):
            raise ControlInterfaceError(workload, f"{path} exists and is not a FIFO") from None
        if info.st_nlink != 1 or info.st_uid != os.geteuid():
            # A hard link to some other FIFO, or one made by someone else: not ours to trust.
            log.warning("workload %s: %s was not made by this agent; making a new one", workload, path)
            os.unlink(path)
            os.mkfifo(path, FIFO_MODE)
            reused = False
    info = os.lstat(path)
    if not stat.S_ISFIFO(info.st_mode):
        raise ControlInterfaceError(workload, f"{path} was replaced while it was being made")
    if stat.S_IMODE(info.st_mode) != FIFO_MODE:
        # mkfifo applies the umask; an older agent may have left a looser mode.
        os.chmod(path, FIFO_MODE)
    return (info.st_dev, info.st_ino), reused


def remove(workload: str, folder: Path) -> None:
    """Unlink ``input``, then ``output``, then rmdir the folder.

    Missing pieces are fine. Anything else (a regular file in place of a FIFO,
    other files) is left in place with a warning: never delete what might not
    be ours.
    """
    for name in (INPUT_FIFO, OUTPUT_FIFO):
        path = folder / name
        try:
            mode = os.lstat(path).st_mode
            # A symlink a workload put in place of its FIFO goes too (unlink never touches the target).
            if stat.S_ISFIFO(mode) or stat.S_ISLNK(mode):
                os.unlink(path)
            else:
                log.warning("workload %s: %s is not a FIFO, left in place", workload, path)
        except FileNotFoundError:
            pass
        except OSError as err:
            log.warning("workload %s: cannot remove %s: %s", workload, path, err.strerror or err)
    try:
        os.rmdir(folder)
    except FileNotFoundError:
        pass
    except OSError as err:
        if err.errno == errno.ENOTEMPTY:
            log.warning(
                "workload %s: control interface folder %s is not empty, left in place", workload, folder
            )
        else:
            log.warning("workload %s: cannot remove %s: %s", workload, folder, err.strerror or err)


def leftover_folders(io_folder: Path, workload: str) -> list[Path]:
    """Folders ``<workload>.<id>`` of any id (e.g. from before an agent restart).

    The id is a sha256 hex string without dots, so ``a.<id>`` never matches
    the folders of a workload named ``a.b``.
    """
    check_name_component(workload, workload, "workload name")
    prefix = workload + "."
    try:
        entries = list(os.scandir(io_folder))
    except FileNotFoundError:
        return []
    except OSError as err:
        log.warning("workload %s: cannot look for old control interface folders: %s", workload, err)
        return []
    return [
        Path(entry.path)
        for entry in entries
        if entry.name.startswith(prefix)
        and "." not in entry.name[len(prefix) :]
        and entry.is_dir(follow_symlinks=False)
    ]
