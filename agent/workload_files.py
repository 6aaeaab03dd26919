"""Workload files of the v1.0.1 dialect: check mount points and decode contents, before anything is written.

Pure logic. Each file of a workload is written below the instance's ``files``
folder at the path of its mount point (``/etc/app.conf`` becomes
``files/etc/app.conf``) and bind-mounted read-only at the mount point. A mount
point must be an absolute path to a file made of plain names: ``.`` and
repeated ``/`` are normalised away, ``..`` (or a NUL byte, or a name the file
system cannot hold) is refused, so no host path can leave the ``files`` folder.
Text contents are written as UTF-8; binary contents are base64 whose lines are
stripped and joined, then decoded strictly (standard alphabet, canonical padding).

Files are handled in list order and the first bad one decides the error, in
the same words as the reference agent; the workload then fails to start with
:attr:`WorkloadFileError.state_info` and is not retried (the input will not
change by itself). The writer (``workload_file_writer``) does the I/O.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ankaios_agent.agent.errors import AgentError
from ankaios_agent.agent.model import Base64Content, FileContent, TextContent, WorkloadFile

FILES_FOLDER = "files"
"""Name of the folder below ``<run>/<workload>.<id>/`` that holds the workload's files."""

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4095


class WorkloadFileError(AgentError):
    """A workload file that cannot be provided; ``reason`` names the file by its mount point."""

    def __init__(self, mount_point: str, reason: str) -> None:
        super().__init__(reason)
        self.mount_point = mount_point
        self.reason = reason

    @property
    def state_info(self) -> str:
        """The additional info of the workload's ``Pending(StartingFailed)`` state."""
        return f"Failed to create workload file: '{self.reason}'"


@dataclass(frozen=True)
class PlannedFile:
    mount_point: str
    """As given; error texts name the file by it."""
    parts: tuple[str, ...]
    """The normalised path below the ``files`` folder, one plain name per element."""
    data: bytes

    @property
    def destination(self) -> str:
        """The normalised mount point inside the container."""
        return "/" + "/".join(self.parts)

    def host_path(self, files_dir: Path) -> Path:
        return files_dir.joinpath(*self.parts)


@dataclass(frozen=True)
class FilesPlan:
    """The files up to the first bad one, and what is wrong with that one (``None``: all are good)."""

    files: tuple[PlannedFile, ...]
    error: WorkloadFileError | None = None


def plan_files(files: Sequence[WorkloadFile]) -> FilesPlan:
    planned: list[PlannedFile] = []
    used: set[tuple[str, ...]] = set()
    for file in files:
        try:
            one = plan_file(file)
            if one.parts in used:
                raise _invalid(file.mount_point, f"path '{file.mount_point}' is used by an earlier file too")
        except WorkloadFileError as error:
            return FilesPlan(tuple(planned), error)
        used.add(one.parts)
        planned.append(one)
    return FilesPlan(tuple(planned))


def plan_file(file: WorkloadFile) -> PlannedFile:
    """Check one file on its own; raise :class:`WorkloadFileError` with the reason the reference gives."""
    parts = mount_point_parts(file.mount_point)
    return PlannedFile(file.mount_point, parts, _content_bytes(file))


def mount_point_parts(mount_point: str) -> tuple[str, ...]:
    """The plain names of a file's mount point, or :class:`WorkloadFileError`."""
    if mount_point.endswith("/"):
        raise _invalid(mount_point, f"'{mount_point}' is a directory, expected a file")
    if not mount_point.startswith("/"):
        raise _invalid(mount_point, f"path '{mount_point}' is relative, expected absolute path")
    parts = tuple(p for p in mount_point.split("/") if p not in ("", "."))
    if any(p == ".." or "\0" in p for p in parts):
        raise _invalid(mount_point, f"path '{mount_point}' contains invalid path components")
    if not parts:
        raise _invalid(mount_point, f"'{mount_point}' is a directory, expected a file")
    if any(len(p.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES for p in parts):
        raise _invalid(mount_point, f"path '{mount_point}' has a name longer than {MAX_NAME_BYTES} bytes")
    if len(mount_point.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise _invalid(mount_point, f"path '{mount_point}' is longer than {MAX_PATH_BYTES} bytes")
    return parts


def _invalid(mount_point: str, reason: str) -> WorkloadFileError:
    return WorkloadFileError(mount_point, f"invalid mount point '{mount_point}': '{reason}'")


def _content_bytes(file: WorkloadFile) -> bytes:
    match file.content:
        case TextContent(text=text):
            try:
                return text.encode("utf-8")
            except UnicodeEncodeError as error:
                raise WorkloadFileError(
                    file.mount_point, f"invalid text data in '{file.mount_point}': '{error}'"
                ) from error
        case Base64Content(encoded=encoded):
            try:
                return decode_base64(encoded)
            except ValueError as error:
                raise WorkloadFileError(
                    file.mount_point, f"invalid base64 data in '{file.mount_point}': '{error}'"
                ) from error


def decode_base64(encoded: str) -> bytes:
    """Strictly decode base64 that may be wrapped over lines; :class:`ValueError` names the flaw."""
    joined = "".join(line.strip() for line in encoded.split("\n"))
    if not joined.isascii():
        raise ValueError("only ASCII characters of the standard base64 alphabet are allowed")
    try:
        data = base64.b64decode(joined, validate=True)
    except binascii.Error as error:
        raise ValueError(str(error)) from error
    # The decoder ignores set bits after the last full byte; canonical input has none.
    if base64.b64encode(data).decode("ascii") != joined:
        raise ValueError(
            "the last symbol has bits set that are not part of the data (non-canonical encoding)"
        )
    return data


__all__ = [
    "FILES_FOLDER",
    "Base64Content",
    "FileContent",
    "FilesPlan",
    "PlannedFile",
    "TextContent",
    "WorkloadFile",
    "WorkloadFileError",
    "decode_base64",
    "mount_point_parts",
    "plan_file",
    "plan_files",
]
