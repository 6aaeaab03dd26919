"""Translate ``podman run`` commandOptions into a libpod create specification.

The reference agent hands commandOptions to the podman CLI verbatim; we talk
to the REST API, so each supported option is an entry in ``_TABLE`` that
applies its value to a ``CreateOptions`` (then rendered as libpod's
SpecGenerator JSON by ``to_spec``). Accepted spellings follow the CLI:
``--opt value``, ``--opt=value``, ``-o value``, ``-ovalue``, ``-o=value`` and
combined boolean short flags (``-it``). ``--restart`` is refused because the
agent owns restarts; anything not in the table is refused with a message
naming it. generalOptions (global podman flags) are mostly meaningless over
REST: ``--log-level``/``--syslog`` are ignored with a warning, ``--runtime``
selects the OCI runtime, everything else is refused.

Translation is pure: it never touches the host. The one option that names a
host file the agent itself must read, ``--env-file``, is only recorded;
``read_env_files`` reads those files later in a worker thread, opening each
without blocking (a FIFO or device cannot hold the open), accepting only
regular files and at most ``ENV_FILE_MAX_BYTES`` each. As with the CLI,
variables from ``--env``/``-e`` win over those from env files. Paths in
``--volume``, ``--mount`` or ``--security-opt seccomp=`` are handed to Podman
unread.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from ankaios_agent.agent.errors import WorkloadConfigError
from ankaios_agent.agent.model import InstanceName
from ankaios_agent.runtimes.podman.option_tokens import (
    MissingValue,
    NotAnOption,
    OptionTable,
    UnknownOption,
    split_options,
)
from ankaios_agent.runtimes.podman.option_values import (
    NS_MODES,
    parse_bool,
    parse_duration_ns,
    parse_key_value,
    parse_namespace,
    parse_signal,
    parse_size,
)

logger = logging.getLogger(__name__)

PULL_POLICIES = ("always", "missing", "never", "newer")
ENV_FILE_MAX_BYTES = 1024 * 1024


@dataclass
class CreateOptions:
    """Everything commandOptions can set; ``to_spec`` renders it for libpod."""

    name: str | None = None
    pull: str = "missing"
    env: dict[str, str] = field(default_factory=dict)
    env_files: list[str] = field(default_factory=list)  # read by read_env_files, off the event loop
    labels: dict[str, str] = field(default_factory=dict)
    mounts: list[dict[str, object]] = field(default_factory=list)
    volumes: list[dict[str, object]] = field(default_factory=list)
    portmappings: list[dict[str, object]] = field(default_factory=list)
    netns: dict[str, str] | None = None
    networks: dict[str, dict[str, object]] = field(default_factory=dict)
    user: str | None = None
    work_dir: str | None = None
    entrypoint: list[str] | None = None
    hostname: str | None = None
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    devices: list[dict[str, str]] = field(default_factory=list)
    memory: int | None = None
    cpus: float | None = None
    read_only: bool | None = None
    hostadd: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    init: bool | None = None
    privileged: bool | None = None
    selinux_opts: list[str] = field(default_factory=list)
    apparmor_profile: str | None = None
    seccomp_profile_path: str | None = None
    no_new_privileges: bool | None = None
    rlimits: list[dict[str, object]] = field(default_factory=list)
    userns: dict[str, str] | None = None
    remove: bool | None = None
    terminal: bool | None = None
    stdin: bool | None = None
    pod: str | None = None
    ipcns: dict[str, str] | None = None
    pidns: dict[str, str] | None = None
    shm_size: int | None = None
    stop_signal: int | None = None
    stop_timeout: int | None = None
    log_driver: str | None = None
    log_options: dict[str, str] = field(default_factory=dict)
    log_size: int | None = None
    log_path: str | None = None
    health: dict[str, object] = field(default_factory=dict)
    oci_runtime: str | None = None

    def to_spec(
        self, image: str, command: Sequence[str], name: str, labels: dict[str, str]
    ) -> dict[str, object]:
        """The SpecGenerator JSON; ``labels`` (the agent's) win over user labels as in the reference."""
        spec: dict[str, object] = {
            "image": image,
            "name": self.name or name,
            "labels": {**self.labels, **labels},
        }
        if command:
            spec["command"] = list(command)
        optional: dict[str, object] = {
            "env": self.env or None,
            "mounts": self.mounts or None,
            "volumes": self.volumes or None,
            "portmappings": self.portmappings or None,
            "netns": self.netns,
            "networks": self.networks or None,
            "user": self.user,
            "work_dir": self.work_dir,
            "entrypoint": self.entrypoint,
            "hostname": self.hostname,
            "cap_add": self.cap_add or None,
            "cap_drop": self.cap_drop or None,
            "devices": self.devices or None,
            "read_only_filesystem": self.read_only,
            "hostadd": self.hostadd or None,
            "dns_server": self.dns or None,
            "init": self.init,
            "privileged": self.privileged,
            "selinux_opts": self.selinux_opts or None,
            "apparmor_profile": self.apparmor_profile,
            "seccomp_profile_path": self.seccomp_profile_path,
            "no_new_privileges": self.no_new_privileges,
            "r_limits": self.rlimits or None,
            "userns": self.userns,
            "remove": self.remove,
            "terminal": self.terminal,
            "stdin": self.stdin,
            "pod": self.pod,
            "ipcns": self.ipcns,
            "pidns": self.pidns,
            "shm_size": self.shm_size,
            "stop_signal": self.stop_signal,
            "stop_timeout": self.stop_timeout,
            "oci_runtime": self.oci_runtime,
        }
        spec.update({key: value for key, value in optional.items() if value is not None})
        resources: dict[str, object] = {}
        if self.memory is not None:
            resources["memory"] = {"limit": self.memory}
        if self.cpus is not None:
            resources["cpu"] = {"period": 100_000, "quota": round(self.cpus * 100_000)}
        if resources:
            spec["resource_limits"] = resources
        if self.log_driver is not None or self.log_options or self.log_size or self.log_path:
            log: dict[str, object] = {"options": dict(self.log_options)}
            extras = {"driver": self.log_driver, "size": self.log_size, "path": self.log_path}
            log.update({key: value for key, value in extras.items() if value is not None})
            spec["log_configuration"] = log
        if self.health:
            spec["healthconfig"] = self._health_config()
        return spec

    def _health_config(self) -> dict[str, object]:
        health = dict(self.health)
        if "Test" not in health:
            raise ValueError("--health-* options need --health-cmd")
        return health


# ---------------------------------------------------------------- option appliers


def _env(opts: CreateOptions, text: str) -> None:
    key, sep, value = text.partition("=")
    if not key:
        raise ValueError(f"invalid environment variable {text!r}")
    if sep:
        opts.env[key] = value
    elif key in os.environ:  # `-e NAME` takes the value from the agent's environment, as the CLI does
        opts.env[key] = os.environ[key]


def _env_file(opts: CreateOptions, text: str) -> None:
    if not text:
        raise ValueError("needs a file path")
    opts.env_files.append(text)


def read_env_files(instance: InstanceName, paths: Sequence[str]) -> dict[str, str]:
    """The variables of the ``--env-file`` files, later files winning (blocking: run off the loop).

    Raises WorkloadConfigError naming the file when one cannot be used.
    """
    parsed = CreateOptions()
    for path in paths:
        try:
            text = _read_small_regular_file(path)
            for line in text.splitlines():
                stripped = line.strip()
                if stripped and not stripped.startswith("#"):
                    _env(parsed, stripped)
        except ValueError as exc:
            raise WorkloadConfigError(instance, f"podman option '--env-file': {exc}") from None
    return parsed.env


def _read_small_regular_file(path: str) -> str:
    # O_NONBLOCK: opening a FIFO (or a device) must not wait for a writer; fstat then decides
    # on what was actually opened, so a swapped path cannot slip a FIFO in after a check.
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ValueError(f"cannot read env file {path!r}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"env file {path!r} is not a regular file")
        if info.st_size > ENV_FILE_MAX_BYTES:
            raise ValueError(f"env file {path!r} is larger than the limit of {ENV_FILE_MAX_BYTES} bytes")
        with os.fdopen(fd, "rb", closefd=False) as stream:
            data = stream.read(ENV_FILE_MAX_BYTES + 1)  # the file may have grown since fstat
    except OSError as exc:
        raise ValueError(f"cannot read env file {path!r}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > ENV_FILE_MAX_BYTES:
        raise ValueError(f"env file {path!r} is larger than the limit of {ENV_FILE_MAX_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"env file {path!r} is not UTF-8 text") from None


def _publish(opts: CreateOptions, text: str) -> None:
    spec, _, protocol = text.partition("/")
    parts = spec.split(":")
    if len(parts) > 3 or not parts[-1]:
        raise ValueError(f"invalid port mapping {text!r} (use [ip:][hostPort:]containerPort[/proto])")
    host_ip = parts[0] if len(parts) == 3 else ""
    host = parts[-2] if len(parts) >= 2 else ""
    container_start, container_len = _port_range(parts[-1])
    mapping: dict[str, object] = {"container_port": container_start, "protocol": protocol or "tcp"}
    if host:
        host_start, host_len = _port_range(host)
        if host_len != container_len:
            raise ValueError(f"port ranges of different length in {text!r}")
        mapping["host_port"] = host_start
    if host_ip:
        mapping["host_ip"] = host_ip
    if container_len > 1:
        mapping["range"] = container_len
    opts.portmappings.append(mapping)


def _port_range(text: str) -> tuple[int, int]:
    start, sep, end = text.partition("-")
    if not start.isdigit() or (sep and not end.isdigit()):
        raise ValueError(f"invalid port {text!r}")
    first, last = int(start), int(end) if sep else int(start)
    if not 0 < first <= last <= 65535:
        raise ValueError(f"port out of range {text!r}")
    return first, last - first + 1


def _volume(opts: CreateOptions, text: str) -> None:
    parts = text.split(":")
    if len(parts) == 1:  # anonymous volume at that path
        opts.volumes.append({"Name": "", "Dest": parts[0], "Options": []})
        return
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise ValueError(f"invalid volume {text!r} (use SOURCE:DEST[:OPTIONS])")
    source, dest = parts[0], parts[1]
    options = parts[2].split(",") if len(parts) == 3 else []
    if source.startswith(("/", ".")):
        opts.mounts.append(
            {"type": "bind", "source": os.path.abspath(source), "destination": dest, "options": options}
        )
    else:
        opts.volumes.append({"Name": source, "Dest": dest, "Options": options})


def _mount(opts: CreateOptions, text: str) -> None:
    fields: dict[str, str] = {}
    flags: list[str] = []
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep:
            fields[key] = value
        elif item:
            flags.append(item)
    kind = fields.pop("type", "volume")
    dest = fields.pop("target", None) or fields.pop("destination", None) or fields.pop("dst", None)
    source = fields.pop("source", None) or fields.pop("src", None)
    if dest is None:
        raise ValueError(f"--mount {text!r} needs target=")
    readonly = fields.pop("readonly", fields.pop("ro", None))
    if readonly is not None:
        flags.append("ro" if parse_bool(readonly) else "rw")
    options = flags + [f"{key}={value}" for key, value in fields.items()]
    if kind == "volume":
        opts.volumes.append({"Name": source or "", "Dest": dest, "Options": options})
    elif kind in ("bind", "tmpfs", "devpts", "image"):
        if kind == "bind" and source is None:
            raise ValueError(f"--mount {text!r} needs source=")
        mount_source = source or kind
        opts.mounts.append({"type": kind, "source": mount_source, "destination": dest, "options": options})
    else:
        raise ValueError(f"unsupported mount type {kind!r}")


def _tmpfs(opts: CreateOptions, text: str) -> None:
    dest, _, options = text.partition(":")
    opts.mounts.append(
        {
            "type": "tmpfs",
            "source": "tmpfs",
            "destination": dest,
            "options": options.split(",") if options else [],
        }
    )


def _network(opts: CreateOptions, text: str) -> None:
    mode = text.partition(":")[0]
    if mode in NS_MODES or mode in ("container", "ns") or text == "private":
        opts.netns = parse_namespace("bridge" if text == "private" else text)
    else:  # a named network (several --network options join several)
        opts.netns = {"nsmode": "bridge"}
        opts.networks[text] = {}


def _security_opt(opts: CreateOptions, text: str) -> None:
    key, sep, value = text.partition("=")
    if key == "no-new-privileges":
        opts.no_new_privileges = parse_bool(value) if sep else True
    elif key == "label" and sep:
        opts.selinux_opts.append(value)
    elif key == "apparmor" and sep:
        opts.apparmor_profile = value
    elif key == "seccomp" and sep:
        opts.seccomp_profile_path = value
    else:
        raise ValueError(f"unsupported security option {text!r}")


def _ulimit(opts: CreateOptions, text: str) -> None:
    name, limits = parse_key_value(text, "ulimit")
    soft_text, _, hard_text = limits.partition(":")
    try:
        soft = -1 if soft_text == "-1" else int(soft_text)
        hard = soft if not hard_text else (-1 if hard_text == "-1" else int(hard_text))
    except ValueError:
        raise ValueError(f"invalid ulimit {text!r} (use name=soft[:hard])") from None
    opts.rlimits.append({"type": name.lower(), "soft": soft, "hard": hard})


def _pull(opts: CreateOptions, text: str) -> None:
    if text not in PULL_POLICIES:
        raise ValueError(f"invalid pull policy {text!r} (use one of {', '.join(PULL_POLICIES)})")
    opts.pull = text


def _health(key: str, convert: Callable[[str], object]) -> Applier:
    def apply(opts: CreateOptions, text: str) -> None:
        opts.health[key] = convert(text)

    return apply


def _health_cmd(opts: CreateOptions, text: str) -> None:
    opts.health["Test"] = ["NONE"] if text == "none" else ["CMD-SHELL", text]


def _set(attr: str, convert: Callable[[str], object] = str) -> Applier:
    def apply(opts: CreateOptions, text: str) -> None:
        setattr(opts, attr, convert(text))

    return apply


def _append(attr: str) -> Applier:
    def apply(opts: CreateOptions, text: str) -> None:
        getattr(opts, attr).append(text)

    return apply


def _label(opts: CreateOptions, text: str) -> None:
    key, _, value = text.partition("=")
    if not key:
        raise ValueError(f"invalid label {text!r}")
    opts.labels[key] = value


def _log_opt(opts: CreateOptions, text: str) -> None:
    key, value = parse_key_value(text, "log option")
    if key == "max-size":  # libpod keeps the size apart from the driver options, as the CLI does
        opts.log_size = parse_size(value)
    elif key == "path":
        opts.log_path = value
    else:
        opts.log_options[key] = value


def _ignore(_opts: CreateOptions, _text: str) -> None:
    """For options the agent already implies (``--detach``): accepted, nothing to do."""


Applier = Callable[[CreateOptions, str], None]


@dataclass(frozen=True)
class Option:
    names: tuple[str, ...]  # long names with "--", short names with "-"
    apply: Applier
    takes_value: bool = True


_OPTIONS = (
    Option(("-p", "--publish"), _publish),
    Option(("-e", "--env"), _env),
    Option(("--env-file",), _env_file),
    Option(("-v", "--volume"), _volume),
    Option(("--mount",), _mount),
    Option(("--network", "--net"), _network),
    Option(("--name",), _set("name")),
    Option(("-u", "--user"), _set("user")),
    Option(("-w", "--workdir"), _set("work_dir")),
    Option(("--entrypoint",), _set("entrypoint", lambda text: [text])),
    Option(("-h", "--hostname"), _set("hostname")),
    Option(("-l", "--label"), _label),
    Option(("--cap-add",), _append("cap_add")),
    Option(("--cap-drop",), _append("cap_drop")),
    Option(("--device",), lambda opts, text: opts.devices.append({"path": text})),
    Option(("-m", "--memory"), _set("memory", parse_size)),
    Option(("--cpus",), _set("cpus", float)),
    Option(("--read-only",), _set("read_only", parse_bool), takes_value=False),
    Option(("--tmpfs",), _tmpfs),
    Option(("--add-host",), _append("hostadd")),
    Option(("--dns",), _append("dns")),
    Option(("--init",), _set("init", parse_bool), takes_value=False),
    Option(("--privileged",), _set("privileged", parse_bool), takes_value=False),
    Option(("--security-opt",), _security_opt),
    Option(("--ulimit",), _ulimit),
    Option(("--userns",), _set("userns", parse_namespace)),
    Option(("--pull",), _pull),
    Option(("--rm",), _set("remove", parse_bool), takes_value=False),
    Option(("-t", "--tty"), _set("terminal", parse_bool), takes_value=False),
    Option(("-i", "--interactive"), _set("stdin", parse_bool), takes_value=False),
    Option(("-d", "--detach"), _ignore, takes_value=False),
    Option(("--pod",), _set("pod")),
    Option(("--ipc",), _set("ipcns", parse_namespace)),
    Option(("--pid",), _set("pidns", parse_namespace)),
    Option(("--shm-size",), _set("shm_size", parse_size)),
    Option(("--stop-signal",), _set("stop_signal", parse_signal)),
    Option(("--stop-timeout",), _set("stop_timeout", int)),
    Option(("--log-driver",), _set("log_driver")),
    Option(("--log-opt",), _log_opt),
    Option(("--health-cmd",), _health_cmd),
    Option(("--health-interval",), _health("Interval", parse_duration_ns)),
    Option(("--health-timeout",), _health("Timeout", parse_duration_ns)),
    Option(("--health-start-period",), _health("StartPeriod", parse_duration_ns)),
    Option(("--health-retries",), _health("Retries", int)),
)
_TABLE: dict[str, Option] = {name: option for option in _OPTIONS for name in option.names}
_REFUSED = {"--restart": "the Ankaios agent owns restarts; use the workload's restartPolicy instead"}


def _long_name(option: Option) -> str:
    return next(name for name in option.names if name.startswith("--"))


_COMMAND_OPTIONS = OptionTable(
    takes_value=MappingProxyType(
        {name: option.takes_value for name, option in _TABLE.items() if name.startswith("--")}
    ),
    short=MappingProxyType(
        {name: _long_name(option) for name, option in _TABLE.items() if not name.startswith("--")}
    ),
)


def translate(instance: InstanceName, tokens: Sequence[str]) -> CreateOptions:
    """Apply commandOptions ``tokens``; raise WorkloadConfigError naming the first bad one."""
    opts = CreateOptions()
    try:
        for token in split_options(tokens, _COMMAND_OPTIONS):
            value = "true" if token.value is None else token.value
            _run(instance, _TABLE[token.name], token.spelling, opts, value)
    except NotAnOption as exc:
        raise WorkloadConfigError(
            instance, f"unexpected argument {exc.word!r} in commandOptions (options start with '-')"
        ) from None
    except UnknownOption as exc:
        raise WorkloadConfigError(instance, _unknown_reason(exc.word)) from None
    except MissingValue as exc:
        raise _missing_value(instance, exc.word) from None
    return opts


def _unknown_reason(name: str) -> str:
    if name in _REFUSED:
        return f"podman option '{name}' is not allowed: {_REFUSED[name]}"
    return f"unsupported podman option '{name}' in commandOptions"


def _missing_value(instance: InstanceName, name: str) -> WorkloadConfigError:
    return WorkloadConfigError(instance, f"podman option '{name}' needs a value")


def _run(instance: InstanceName, option: Option, name: str, opts: CreateOptions, value: str) -> None:
    try:
        option.apply(opts, value)
    except ValueError as exc:
        raise WorkloadConfigError(instance, f"podman option '{name}': {exc}") from None


# Global flags that only change how the podman CLI itself logs (name: takes a value). They
# mean nothing over REST, so both Podman runtimes accept and ignore them with a warning.
CLI_LOGGING_OPTIONS: Mapping[str, bool] = MappingProxyType({"--log-level": True, "--syslog": False})
_GENERAL_OPTIONS = OptionTable(takes_value=MappingProxyType({**CLI_LOGGING_OPTIONS, "--runtime": True}))


def translate_general(instance: InstanceName, tokens: Sequence[str], opts: CreateOptions) -> None:
    """generalOptions: podman's global flags; only a few mean anything over the REST API."""
    try:
        for token in split_options(tokens, _GENERAL_OPTIONS):
            if token.name == "--runtime":
                opts.oci_runtime = token.value
            else:
                logger.warning(
                    "workload %s: generalOptions %s has no effect over the Podman REST API; ignored",
                    instance,
                    token.name,
                )
    except (NotAnOption, UnknownOption) as exc:
        raise WorkloadConfigError(
            instance, f"unsupported podman generalOptions '{exc.word}' (cannot be applied over the REST API)"
        ) from None
    except MissingValue as exc:
        raise _missing_value(instance, exc.word) from None
