"""Settings of ``ank-agent``: command line, environment, config file; validated once at startup.

Sources, later wins: built-in defaults, the TOML config file (``-x``, else
``/etc/ankaios/ank-agent.conf`` if it exists), environment variables, flags.
``--tag`` on the command line replaces the file's whole ``tags`` table; a PEM
path from a flag or variable replaces the file's path or content for that item.

``--protocol`` picks the server dialect: ``v0.3`` (Ankaios v0.3.1), ``v1``
(Ankaios v1.0.1) or ``auto`` (default: decided per connection). The rules that
differ between the two dialects but must be applied before the first
connection follow the dialect when it is fixed, and today's v0.3.1 rules with
``auto``:

* agent name: always non-empty and free of ``.``, ``@``, ``/`` and whitespace,
  because such names break instance names (``<workload>.<id>.<agent>``),
  response routing (``<workload>@<id>``) or the run-folder path. ``v1``
  additionally allows only letters, digits, ``-`` and ``_`` (what a v1.0.1
  server expects); with ``auto`` a name outside that set is a warning;
* default run folder: ``/tmp/ankaios/`` (``v0.3``, ``auto``) or
  ``$TMPDIR/ankaios`` (``v1``, ``/tmp/ankaios`` without ``TMPDIR``);
* transport: a v0.3.1 server speaks plain HTTP/2 only; v1.0.1 wants mutual TLS
  unless ``--insecure`` says otherwise. TLS is used exactly when CA,
  certificate and key are all given, and then the URL must be ``https://``
  (its default). Without them, ``https://`` is refused unless ``--insecure``
  turns it into ``http://``. ``v1`` refuses to start with neither
  certificates nor ``--insecure``.

Every user error is a :class:`~agent.errors.UsageError`: one line, exit 2.

Differences from the v0.3.1 reference, on purpose: ``--server`` also accepts a
bare ``host:port``; ``<run-folder>/<name>_io`` is created with its parents for
any run folder (the reference requires it to exist unless the run folder is
the default), and with mode 0o750 instead of 0777: the agent (and the
containers it starts as the same user, or as root) are the only writers, and a
world-writable folder would let any local user plant FIFOs that workloads then
trust. Existing directories are used as they are.
"""

from __future__ import annotations

import argparse
import enum
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from ankaios_agent.agent import config_file
from ankaios_agent.agent.config_file import DEFAULT_CONFIG_PATH, FileSettings
from ankaios_agent.agent.errors import AgentError, UsageError
from ankaios_agent.agent.tls import PemSource, TlsMaterial, load_material

VERSION = "0.3.1"
DEFAULT_ADDRESS = "127.0.0.1:25551"
DEFAULT_SERVER_URL = f"http://{DEFAULT_ADDRESS}"
DEFAULT_TLS_SERVER_URL = f"https://{DEFAULT_ADDRESS}"
DEFAULT_RUN_FOLDER = "/tmp/ankaios/"
LOG_LEVEL_ENV = "ANKAGENT_LOG_LEVEL"
PROTOCOL_ENV = "ANKAGENT_PROTOCOL"
INSECURE_ENV = "ANKAGENT_INSECURE"
STRICT_AUTHORIZATION_ENV = "ANKAGENT_STRICT_AUTHORIZATION"
PEM_ENV = {"ca_pem": "ANKAGENT_CA_PEM", "crt_pem": "ANKAGENT_CRT_PEM", "key_pem": "ANKAGENT_KEY_PEM"}
RUST_LOG_ENV = "RUST_LOG"
LOG_LEVELS = ("debug", "info", "warning", "error")
# RUST_LOG is the reference's log filter; scripts written for it set it. Its plain levels map
# onto ours, anything fancier (per-module filters) is left to ANKAGENT_LOG_LEVEL / --log-level.
_RUST_LEVELS = {"trace": "debug", "debug": "debug", "info": "info", "warn": "warning", "error": "error"}
IO_FOLDER_MODE = 0o750
# The runtimes this agent has, in the order the v1.0.1 agent lists its own; the v1.0.1
# agent also knows containerd, which a config file written for it may name.
SUPPORTED_RUNTIMES = ("podman", "podman-kube")
REFERENCE_ONLY_RUNTIMES = ("containerd",)
_BAD_NAME = re.compile(r"[.@/\s]")
_V1_NAME = re.compile(r"[a-zA-Z0-9_-]+")


class RunFolderError(AgentError):
    """The run folder cannot be created or used (exit 1, like the reference)."""


class ProtocolChoice(enum.Enum):
    """``--protocol``: the server dialect, or AUTO to find it out per connection."""

    AUTO = "auto"
    V0_3 = "v0.3"
    V1 = "v1"


@dataclass(frozen=True)
class AgentConfig:
    name: str
    server_url: str  # normalised: http://host:port, or https://host:port exactly when tls is set
    server_address: str  # the gRPC target, host:port
    run_folder: Path
    podman_socket: str | None = None
    log_level: str = "info"
    protocol: ProtocolChoice = ProtocolChoice.AUTO
    tls: TlsMaterial | None = None  # None: plain HTTP/2
    insecure: bool = False  # plain HTTP/2 was asked for explicitly (--insecure / ANKAGENT_INSECURE)
    # v1.0.1 control interface: close the reference's deny-rule hole (off: decide as the reference).
    strict_authorization: bool = False
    tags: tuple[tuple[str, str], ...] = ()  # sent in a v1.0.1 AgentHello; v0.3.1 has no tags
    runtimes: tuple[str, ...] = SUPPORTED_RUNTIMES
    config_file: Path | None = None
    # Warnings found while parsing, logged once logging is set up (not part of the settings).
    notices: tuple[str, ...] = field(default=(), compare=False)

    @property
    def io_folder(self) -> Path:
        """``<run-folder>/<name>_io``: parent of the per-workload folders."""
        return self.run_folder / f"{self.name}_io"

    @property
    def dialects(self) -> tuple[ProtocolChoice, ...]:
        """The dialects a connection may speak: v0.3.1 never runs over TLS."""
        if self.protocol is not ProtocolChoice.AUTO:
            return (self.protocol,)
        if self.tls is not None:
            return (ProtocolChoice.V1,)
        return (ProtocolChoice.V1, ProtocolChoice.V0_3)


def validate_name(name: str) -> str:
    if not name:
        raise UsageError("--name must not be empty")
    if _BAD_NAME.search(name):
        raise UsageError(f"--name {name!r} must not contain '.', '@', '/' or whitespace")
    return name


def is_v1_name(name: str) -> bool:
    return _V1_NAME.fullmatch(name) is not None


def validate_v1_name(name: str) -> str:
    validate_name(name)
    if not is_v1_name(name):
        raise UsageError(
            f"--name {name!r} is not a valid Ankaios v1 agent name: use only letters, digits, '-' and '_'"
        )
    return name


def parse_server(text: str, *, allow_https: bool = False) -> tuple[str, str]:
    """``host:port`` or ``http[s]://host:port`` -> (``scheme://host:port``, ``host:port``)."""
    value = text.strip()
    if "://" not in value:
        value = "http://" + value
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as err:
        raise UsageError(f"--server {text!r} is not a valid address: {err}") from None
    if parts.scheme == "https" and not allow_https:
        raise UsageError(
            f"--server {text!r}: https is not supported; an Ankaios v0.3.1 server speaks plain HTTP/2 "
            "without TLS, use http://host:port"
        )
    if parts.scheme not in ("http", "https"):
        raise UsageError(f"--server {text!r}: only http://host:port, https://host:port or host:port")
    if not parts.hostname or port is None:
        raise UsageError(f"--server {text!r} needs a host and a port, e.g. 127.0.0.1:25551")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(f"--server {text!r} must not have a path; use {parts.scheme}://host:port")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}", f"{host}:{port}"


def parse_log_level(text: str, source: str) -> str:
    level = text.strip().lower()
    if level not in LOG_LEVELS:
        raise UsageError(f"{source} {text!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


def rust_log_level(text: str) -> str | None:
    """The level of a plain ``RUST_LOG`` value (``debug``, ``info,foo=trace``...); None if it has none."""
    plain = [part.strip().lower() for part in text.split(",") if part.strip() and "=" not in part]
    return _RUST_LEVELS.get(plain[-1]) if plain else None


def parse_protocol(text: str, source: str) -> ProtocolChoice:
    try:
        return ProtocolChoice(text.strip().lower())
    except ValueError:
        choices = ", ".join(p.value for p in ProtocolChoice)
        raise UsageError(f"{source} {text!r} is not one of {choices}") from None


def parse_bool(text: str, source: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise UsageError(f"{source} must be true or false, not {text!r}")
    return value == "true"


def parse_tag(text: str) -> tuple[str, str]:
    """``KEY=VALUE``, split at the first ``=`` (the value may contain more)."""
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, no usage dump: a user error is one clear line.
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ank-agent",
        description="Eclipse Ankaios node agent (server v0.3.1 or v1.0.1): runs the workloads the "
        "Ankaios server assigns to this node on Podman and reports their states.",
        epilog="Sources, later wins: defaults, the config file, environment variables, flags. "
        "The enabled runtimes are set in the config file only (runtimes = ['podman', 'podman-kube']).",
    )
    parser.add_argument(
        "--agent-config",
        "-x",
        "--config_path",
        dest="agent_config",
        metavar="PATH",
        help=f"TOML config file (default {DEFAULT_CONFIG_PATH} if it exists)",
    )
    parser.add_argument("--name", "-n", help="agent name (config: name)")
    parser.add_argument(
        "--server",
        "--server-url",
        "-s",
        dest="server",
        metavar="URL",
        help=f"server address, http://host:port, https://host:port or host:port (default "
        f"{DEFAULT_SERVER_URL}, {DEFAULT_TLS_SERVER_URL} with TLS or --protocol v1; config: server_url)",
    )
    parser.add_argument(
        "--run-folder",
        "-r",
        metavar="PATH",
        help=f"base folder of the run directory <run-folder>/<name>_io, created (mode 0750) if missing "
        f"(default {DEFAULT_RUN_FOLDER}, with --protocol v1 $TMPDIR/ankaios; config: run_folder)",
    )
    parser.add_argument(
        "--protocol",
        metavar="{auto,v0.3,v1}",
        help=f"server dialect: Ankaios v0.3.1, v1.0.1, or auto per connection (default auto; "
        f"${PROTOCOL_ENV}; config: protocol)",
    )
    parser.add_argument(
        "--insecure",
        "-k",
        action="store_const",
        const=True,
        default=None,
        help=f"plain HTTP/2 without TLS; an https:// URL becomes http:// (${INSECURE_ENV}=true|false; "
        "config: insecure)",
    )
    parser.add_argument(
        "--strict-authorization",
        action="store_const",
        const=True,
        default=None,
        help="v1.0.1 control interface: a '*' in a request cannot pass a deny rule (the reference lets it; "
        f"${STRICT_AUTHORIZATION_ENV}=true|false; config: strict_authorization)",
    )
    for item, label in (("ca", "CA certificate"), ("crt", "agent certificate"), ("key", "agent private key")):
        parser.add_argument(
            f"--{item}_pem",
            f"--{item}-pem",
            dest=f"{item}_pem",
            metavar="PATH",
            help=f"{label} PEM file for mutual TLS (${PEM_ENV[item + '_pem']}; config: {item}_pem "
            f"or {item}_pem_content)",
        )
    parser.add_argument(
        "--tag",
        "-t",
        action="append",
        type=parse_tag,
        metavar="KEY=VALUE",
        help="agent tag, repeatable; replaces the config file's tags (config: tags)",
    )
    parser.add_argument(
        "--podman-socket",
        metavar="SOCKET",
        help="Podman API socket (path or unix:// URL); default: CONTAINER_HOST, then the usual "
        "rootful/rootless sockets, else a private podman service (config: podman_socket)",
    )
    parser.add_argument(
        "--log-level",
        help=f"one of {', '.join(LOG_LEVELS)} (default: ${LOG_LEVEL_ENV}, else a plain ${RUST_LOG_ENV}, "
        "else config: log_level, else info)",
    )
    parser.add_argument("--version", "-V", action="version", version=f"ank-agent {VERSION}")
    return parser


def parse_args(
    argv: Sequence[str] | None,
    environ: Mapping[str, str],
    *,
    default_config: Path = DEFAULT_CONFIG_PATH,
) -> AgentConfig:
    """Merge flags, environment and config file; UsageError (one line) for anything wrong.

    --help/--version raise SystemExit(0). The config file and the PEM files are read here,
    once; nothing later reads them again.
    """
    args = build_parser().parse_args(argv)
    env = {key: value for key, value in environ.items() if value}  # an empty variable is unset
    notices: list[str] = []
    file = _load_file(args.agent_config, default_config)
    if file is not None and file.unknown_keys:
        notices.append(f"config file {file.path}: unknown keys ignored: {', '.join(file.unknown_keys)}")

    protocol = _protocol(args, env, file)
    name = _name(args.name if args.name is not None else _file(file, "name"), protocol, notices)
    insecure = _switch(args, env, file, "insecure", INSECURE_ENV)
    tls = _tls(args, env, file)
    if tls is not None and insecure:
        notices.append("--insecure and TLS certificates are both given; using TLS")
    server_url, server_address = resolve_server(
        args.server if args.server is not None else _file(file, "server_url"),
        protocol=protocol,
        tls=tls is not None,
        insecure=insecure,
    )
    return AgentConfig(
        name=name,
        server_url=server_url,
        server_address=server_address,
        run_folder=_run_folder(args, env, file, protocol),
        podman_socket=_podman_socket(args, file),
        log_level=_log_level(args, env, file),
        protocol=protocol,
        tls=tls,
        insecure=insecure,
        strict_authorization=_switch(args, env, file, "strict_authorization", STRICT_AUTHORIZATION_ENV),
        tags=_tags(args, file),
        runtimes=_runtimes(file, notices),
        config_file=file.path if file is not None else None,
        notices=tuple(notices),
    )


def resolve_server(
    text: str | None, *, protocol: ProtocolChoice, tls: bool, insecure: bool
) -> tuple[str, str]:
    """The server URL and gRPC target for the chosen protocol and transport (see the module docstring)."""
    if protocol is ProtocolChoice.V0_3 and tls:
        raise UsageError(
            "TLS certificates are given but --protocol v0.3 speaks plain HTTP/2 only: an Ankaios v0.3.1 "
            "server has no TLS"
        )
    if protocol is ProtocolChoice.V1 and not tls and not insecure:
        raise UsageError(
            "missing certificate files: give --ca_pem, --crt_pem and --key_pem for mutual TLS, or "
            "--insecure for plain HTTP/2"
        )
    if text is None:
        text = DEFAULT_TLS_SERVER_URL if tls or protocol is ProtocolChoice.V1 else DEFAULT_SERVER_URL
    if protocol is ProtocolChoice.V0_3 and not insecure:
        return parse_server(text)
    url, address = parse_server(text, allow_https=True)
    https = url.startswith("https://")
    if tls and not https:
        raise UsageError(f"--server {text!r}: TLS certificates are given, so the URL must be https://")
    if not tls and https:
        if not insecure:
            raise UsageError(
                f"--server {text!r}: https:// needs --ca_pem, --crt_pem and --key_pem (mutual TLS); "
                "for plain HTTP/2 use http:// or --insecure"
            )
        url = "http://" + url.removeprefix("https://")
    return url, address


def _load_file(flag: str | None, default: Path) -> FileSettings | None:
    if flag is not None:
        if not flag.strip():
            raise UsageError("--agent-config must not be empty")
        return config_file.load(Path(flag))
    if default.exists():
        return config_file.load(default)
    return None


def _file(file: FileSettings | None, key: str) -> str | None:
    value = getattr(file, key) if file is not None else None
    assert value is None or isinstance(value, str)
    return value


def _protocol(args: argparse.Namespace, env: Mapping[str, str], file: FileSettings | None) -> ProtocolChoice:
    if args.protocol is not None:
        return parse_protocol(args.protocol, "--protocol")
    if PROTOCOL_ENV in env:
        return parse_protocol(env[PROTOCOL_ENV], PROTOCOL_ENV)
    if (text := _file(file, "protocol")) is not None:
        return parse_protocol(text, f"'protocol' in {_path(file)}")
    return ProtocolChoice.AUTO


def _name(name: str | None, protocol: ProtocolChoice, notices: list[str]) -> str:
    if name is None:
        raise UsageError("no agent name: give --name (-n) or 'name' in the config file")
    if protocol is ProtocolChoice.V1:
        return validate_v1_name(name)
    validate_name(name)
    if protocol is ProtocolChoice.AUTO and not is_v1_name(name):
        notices.append(
            f"agent name {name!r} has characters an Ankaios v1.0.1 server does not expect in agent names "
            "(letters, digits, '-' and '_' only); fine for a v0.3.1 server"
        )
    return name


def _switch(
    args: argparse.Namespace, env: Mapping[str, str], file: FileSettings | None, key: str, variable: str
) -> bool:
    """An on/off setting: the flag (only ever turns it on) over the variable over the file."""
    if getattr(args, key) is not None:
        return True
    if variable in env:
        return parse_bool(env[variable], variable)
    return bool(file is not None and getattr(file, key))


def _tls(args: argparse.Namespace, env: Mapping[str, str], file: FileSettings | None) -> TlsMaterial | None:
    sources: dict[str, PemSource] = {}
    for item, variable in PEM_ENV.items():
        flag = getattr(args, item)
        if flag is not None:
            sources[item] = _path_source(flag, f"--{item}")
        elif variable in env:
            sources[item] = _path_source(env[variable], variable)
        elif file is not None and (path := _file(file, item)) is not None:
            sources[item] = _path_source(path, f"{item} in {file.path}")
        elif file is not None and (content := _file(file, f"{item}_content")) is not None:
            sources[item] = PemSource(origin=f"{item}_content in {file.path}", content=content)
    if not sources:
        return None
    missing = [f"--{item}" for item in PEM_ENV if item not in sources]
    if missing:
        raise UsageError(
            f"missing certificate files: mutual TLS needs --ca_pem, --crt_pem and --key_pem, "
            f"{' and '.join(missing)} not given"
        )
    return load_material(sources["ca_pem"], sources["crt_pem"], sources["key_pem"])


def _path_source(text: str, origin: str) -> PemSource:
    if not text.strip():
        raise UsageError(f"{origin} must not be empty")
    return PemSource(origin=origin, path=Path(text))


def _run_folder(
    args: argparse.Namespace, env: Mapping[str, str], file: FileSettings | None, protocol: ProtocolChoice
) -> Path:
    text = args.run_folder if args.run_folder is not None else _file(file, "run_folder")
    if text is None:
        if protocol is ProtocolChoice.V1:
            return Path(env.get("TMPDIR", "/tmp")) / "ankaios"
        text = DEFAULT_RUN_FOLDER
    if not text:
        raise UsageError("--run-folder must not be empty")
    return Path(text)


def _podman_socket(args: argparse.Namespace, file: FileSettings | None) -> str | None:
    socket = args.podman_socket if args.podman_socket is not None else _file(file, "podman_socket")
    if socket is not None and not socket.strip():
        raise UsageError("--podman-socket must not be empty")
    return socket


def _log_level(args: argparse.Namespace, env: Mapping[str, str], file: FileSettings | None) -> str:
    if args.log_level is not None:
        return parse_log_level(args.log_level, "--log-level")
    if LOG_LEVEL_ENV in env:
        return parse_log_level(env[LOG_LEVEL_ENV], LOG_LEVEL_ENV)
    if RUST_LOG_ENV in env and (level := rust_log_level(env[RUST_LOG_ENV])) is not None:
        return level
    if (text := _file(file, "log_level")) is not None:
        return parse_log_level(text, f"'log_level' in {_path(file)}")
    return "info"


def _tags(args: argparse.Namespace, file: FileSettings | None) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = args.tag if args.tag is not None else list((file and file.tags) or ())
    # A key given twice keeps its last value, in the position it was first given.
    return tuple(dict(pairs).items())


def _runtimes(file: FileSettings | None, notices: list[str]) -> tuple[str, ...]:
    if file is None or file.runtimes is None:
        return SUPPORTED_RUNTIMES
    enabled: list[str] = []
    for name in file.runtimes:
        if name in SUPPORTED_RUNTIMES:
            if name not in enabled:
                enabled.append(name)
        elif name in REFERENCE_ONLY_RUNTIMES:
            notices.append(f"configured runtime {name!r} is not supported by this agent; ignored")
        else:
            notices.append(f"configured runtime {name!r} is not supported; ignored")
    if not enabled:
        raise UsageError(
            f"config file {file.path}: no supported runtime in 'runtimes'; this agent supports "
            f"{', '.join(SUPPORTED_RUNTIMES)}"
        )
    return tuple(enabled)


def _path(file: FileSettings | None) -> Path | None:
    return file.path if file is not None else None


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
