"""Command-line settings of ``ank-agent``, parsed and validated once at startup (spec §2).

Differences from the v0.3.1 reference, on purpose:

* ``--name`` is validated: empty, or containing ``.``, ``@``, ``/`` or
  whitespace, is refused (exit 2). Such names break instance-name parsing
  (spec §1.6), response routing (§11.34) or the run-folder path.
* ``--server`` also accepts a bare ``host:port``. ``https://`` is refused with
  exit 2: a v0.3.1 server speaks plain HTTP/2 without TLS (spec §1.1), so a
  TLS client could never connect, and silently downgrading would mislead.
* ``<run-folder>/<name>_io`` is created with its parents for any run folder
  (the reference requires it to exist unless the run folder is the default),
  and with mode 0o750 instead of 0777: the agent (and the containers it
  starts as the same user, or as root) are the only writers, and a
  world-writable folder would let any local user plant FIFOs that workloads
  then trust. Existing directories are used as they are.
"""

from __future__ import annotations

import argparse
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from ankaios_agent.agent.errors import AgentError, UsageError

VERSION = "0.3.1"
DEFAULT_SERVER_URL = "http://127.0.0.1:25551"
DEFAULT_RUN_FOLDER = "/tmp/ankaios/"
LOG_LEVEL_ENV = "ANKAGENT_LOG_LEVEL"
LOG_LEVELS = ("debug", "info", "warning", "error")
IO_FOLDER_MODE = 0o750
_BAD_NAME = re.compile(r"[.@/\s]")


class RunFolderError(AgentError):
    """The run folder cannot be created or used (exit 1, like the reference)."""


@dataclass(frozen=True)
class AgentConfig:
    name: str
    server_url: str  # normalised, always http://host:port
    server_address: str  # the gRPC target, host:port
    run_folder: Path
    podman_socket: str | None = None
    log_level: str = "info"

    @property
    def io_folder(self) -> Path:
        """``<run-folder>/<name>_io``: parent of the per-workload FIFO folders (spec §8.1)."""
        return self.run_folder / f"{self.name}_io"


def validate_name(name: str) -> str:
    if not name:
        raise UsageError("--name must not be empty")
    if _BAD_NAME.search(name):
        raise UsageError(f"--name {name!r} must not contain '.', '@', '/' or whitespace")
    return name


def parse_server(text: str) -> tuple[str, str]:
    """``host:port`` or ``http://host:port`` -> (``http://host:port``, ``host:port``)."""
    value = text.strip()
    if "://" not in value:
        value = "http://" + value
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as err:
        raise UsageError(f"--server {text!r} is not a valid address: {err}") from None
    if parts.scheme == "https":
        raise UsageError(
            f"--server {text!r}: https is not supported; an Ankaios v0.3.1 server speaks plain HTTP/2 "
            "without TLS, use http://host:port"
        )
    if parts.scheme != "http":
        raise UsageError(f"--server {text!r}: only http://host:port or host:port are supported")
    if not parts.hostname or port is None:
        raise UsageError(f"--server {text!r} needs a host and a port, e.g. 127.0.0.1:25551")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(f"--server {text!r} must not have a path; use http://host:port")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"http://{host}:{port}", f"{host}:{port}"


def parse_log_level(text: str, source: str) -> str:
    level = text.strip().lower()
    if level not in LOG_LEVELS:
        raise UsageError(f"{source} {text!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, no usage dump (brief: user errors are one clear line).
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ank-agent",
        description="Eclipse Ankaios v0.3.1 node agent: runs the workloads the Ankaios server assigns "
        "to this node on Podman and reports their states.",
    )
    parser.add_argument("--name", "-n", required=True, help="agent name (no '.', '@', '/' or whitespace)")
    parser.add_argument(
        "--server",
        "--server-url",
        "-s",
        dest="server",
        default=DEFAULT_SERVER_URL,
        help=f"server address as host:port or http://host:port (default {DEFAULT_SERVER_URL}); "
        "https is refused: v0.3.1 has no TLS",
    )
    parser.add_argument(
        "--run-folder",
        "-r",
        default=DEFAULT_RUN_FOLDER,
        help=f"base folder for the control-interface FIFOs; <run-folder>/<name>_io is created "
        f"(mode 0750) if missing (default {DEFAULT_RUN_FOLDER})",
    )
    parser.add_argument(
        "--podman-socket",
        default=None,
        help="Podman API socket (path or unix:// URL); default: CONTAINER_HOST, then the usual "
        "rootful/rootless sockets, else a private podman service",
    )
    parser.add_argument(
        "--log-level",
        default=None,
        help=f"one of {', '.join(LOG_LEVELS)} (default: ${LOG_LEVEL_ENV}, else info)",
    )
    parser.add_argument("--version", "-V", action="version", version=f"ank-agent {VERSION}")
    return parser


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> AgentConfig:
    """Raise UsageError (one line) for anything wrong; --help/--version raise SystemExit(0)."""
    args = build_parser().parse_args(argv)
    server_url, server_address = parse_server(args.server)
    if args.log_level is not None:
        log_level = parse_log_level(args.log_level, "--log-level")
    elif environ.get(LOG_LEVEL_ENV):
        log_level = parse_log_level(environ[LOG_LEVEL_ENV], LOG_LEVEL_ENV)
    else:
        log_level = "info"
    if not args.run_folder:
        raise UsageError("--run-folder must not be empty")
    if args.podman_socket is not None and not args.podman_socket.strip():
        raise UsageError("--podman-socket must not be empty")
    return AgentConfig(
        name=validate_name(args.name),
        server_url=server_url,
        server_address=server_address,
        run_folder=Path(args.run_folder),
        podman_socket=args.podman_socket,
        log_level=log_level,
    )


def prepare_io_folder(config: AgentConfig) -> Path:
    """Create ``<run-folder>/<name>_io`` (and parents) with mode 0o750 if missing; return it."""
    folder = config.io_folder
    try:
        # makedirs applies the mode to every directory it creates (minus umask) and
        # leaves existing ones alone, so nothing we create is world-writable.
        os.makedirs(folder, mode=IO_FOLDER_MODE, exist_ok=True)
    except OSError as err:
        raise RunFolderError(f"cannot create the run folder {folder}: {err.strerror or err}") from None
    if not folder.is_dir():
        raise RunFolderError(f"the run folder {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RunFolderError(f"the run folder {folder} is not writable for this user")
    for checked in (config.run_folder, folder):
        _refuse_foreign_folder(checked)
    return folder


def _refuse_foreign_folder(folder: Path) -> None:
    """Refuse a folder another user owns or may write: whoever can write it can plant FIFOs
    or symlinks where the agent and its workloads expect their own."""
    info = folder.stat()
    if info.st_uid != os.geteuid():
        raise UsageError(
            f"the run folder {folder} belongs to uid {info.st_uid}, not to this agent's user "
            f"(uid {os.geteuid()}); chown it or choose another --run-folder"
        )
    if info.st_mode & 0o022:
        raise UsageError(
            f"the run folder {folder} is writable by group or others (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run chmod go-w {folder}"
        )
