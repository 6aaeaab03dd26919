"""Opening the agent's own control-interface FIFOs, and only those.

A workload that is root in its container can replace the FIFOs in its folder, for
example by a symbolic link to another workload's FIFO or to a host file. Every open
here is non-blocking, never follows a symbolic link, and accepts only the very inode
``fifo.prepare`` made.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ankaios_agent.control_interface.fifo import FileId


class FifoReplaced(Exception):
    """The path no longer names the FIFO the agent made (symlink, other file, new inode)."""


def open_fifo(path: Path, mode: int, expected: FileId) -> int:
    """Open ``path`` non-blocking, never through a symlink, and only if it is the agent's FIFO.

    Raises FifoReplaced when something else sits there, OSError otherwise.
    """
    try:
        fd = os.open(path, mode | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise FifoReplaced(f"{path} is a symbolic link now") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISFIFO(info.st_mode) or (info.st_dev, info.st_ino) != expected:
        os.close(fd)
        raise FifoReplaced(f"{path} is not the FIFO the agent made any more")
    return fd
