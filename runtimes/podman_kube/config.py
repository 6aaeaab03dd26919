"""The runtimeConfig of the ``podman-kube`` runtime and its translation to REST parameters.

The runtimeConfig is YAML text holding a mapping::

    manifest: |          # required: Kubernetes YAML (one or more documents)
      apiVersion: v1
      kind: Pod
      ...
    generalOptions: []   # podman global options; the reference puts them before ``kube play``
    playOptions: []      # ``podman kube play`` options
    downOptions: []      # ``podman kube down`` options

The reference hands the option lists to the podman CLI. We talk to the libpod
REST API (``POST /libpod/play/kube``, ``DELETE /libpod/play/kube``), so every
option is translated into a query parameter here, with the same ``--opt value``,
``--opt=value`` and short forms the CLI accepts. Podman 4.3's REST service
silently ignores query parameters it does not know, so an option we cannot
honour is refused with a message naming it, rather than passed on and dropped.

Unknown keys are ignored, as in the reference; wrong types are errors.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import yaml

from ankaios_agent.agent.errors import WorkloadConfigError
from ankaios_agent.agent.model import InstanceName
from ankaios_agent.runtimes.podman.names import check_object_name
from ankaios_agent.runtimes.podman.option_tokens import (
    MissingValue,
    NotAnOption,
    OptionTable,
    OptionToken,
    UnknownOption,
    split_options,
)
from ankaios_agent.runtimes.podman.option_values import parse_bool
from ankaios_agent.runtimes.podman.options import CLI_LOGGING_OPTIONS

logger = logging.getLogger(__name__)

RUNTIME_NAME = "podman-kube"

_Fail = Callable[[str], WorkloadConfigError]


class _Kind(enum.Enum):
    """How a CLI option maps to a query parameter."""

    STRING = "string"  # one value; a repeated option keeps the last (pflag semantics)
    LIST = "list"  # repeatable; each occurrence adds a value
    MAPPING = "mapping"  # repeatable ``key=value``; sent as a JSON object
    BOOL = "bool"  # flag; ``--opt`` or ``--opt=true|false`` (never ``--opt value``)


@dataclass(frozen=True)
class _Option:
    param: str | None  # query parameter; None: handled by the runtime itself or ignored
    kind: _Kind


# ``podman kube play`` options of Podman 4.3 that its REST handler honours.
_PLAY_OPTIONS: Mapping[str, _Option] = MappingProxyType(
    {
        "--network": _Option("network", _Kind.LIST),
        "--log-driver": _Option("logDriver", _Kind.STRING),
        "--log-opt": _Option("logOptions", _Kind.LIST),
        "--ip": _Option("staticIPs", _Kind.LIST),
        "--mac-address": _Option("staticMACs", _Kind.LIST),
        "--annotation": _Option("annotations", _Kind.MAPPING),
        "--no-hosts": _Option("noHosts", _Kind.BOOL),
        "--start": _Option("start", _Kind.BOOL),
        "--tls-verify": _Option("tlsVerify", _Kind.BOOL),
        # The REST service is always quiet; the reference passes --quiet itself.
        "--quiet": _Option(None, _Kind.BOOL),
        # Not a query parameter in 4.3: the remote CLI tears down first, and so do we.
        "--replace": _Option(None, _Kind.BOOL),
    }
)
_PLAY_TABLE = OptionTable(
    takes_value=MappingProxyType({name: opt.kind is not _Kind.BOOL for name, opt in _PLAY_OPTIONS.items()}),
    short=MappingProxyType({"-q": "--quiet"}),
)

# Options of the CLI that the REST service cannot honour, with the reason shown to the user.
_PLAY_REFUSED: Mapping[str, str] = MappingProxyType(
    {
        "--authfile": "registry credentials files are not sent over the REST API",
        "--cert-dir": "registry certificates are not sent over the REST API",
        "--creds": "registry credentials are not sent over the REST API",
        "--configmap": "configmap files are not sent over the REST API; put the ConfigMap in the manifest",
        "--build": "building images is not supported by the REST API",
        "--context-dir": "building images is not supported by the REST API",
        "--seccomp-profile-root": "not available with a remote Podman",
        "--userns": "Podman 4.3's REST API ignores it",
        "--publish": "not supported by Podman 4.3's kube play; use hostPort in the manifest",
    }
)

# Only the CLI's logging flags are accepted (and ignored). Others (e.g. --runtime, which
# the podman runtime applies to its containers) cannot reach containers made by kube
# play and are refused.
_GENERAL_IGNORED = OptionTable(takes_value=CLI_LOGGING_OPTIONS)


@dataclass(frozen=True)
class PlayParams:
    """What ``playOptions`` asks for, ready for ``POST /libpod/play/kube``."""

    query: Mapping[str, str | list[str]] = field(default_factory=lambda: MappingProxyType({}))
    replace: bool = False


@dataclass(frozen=True)
class KubeConfig:
    """A validated podman-kube runtimeConfig."""

    manifest: str
    general_options: tuple[str, ...] = ()
    play_options: tuple[str, ...] = ()
    down_options: tuple[str, ...] = ()
    play: PlayParams = field(default_factory=PlayParams)
    control_interface_target: str | None = None
    """``<podName>/<containerName>``: the one container that gets the control interface."""


def check_workload_name(instance: InstanceName) -> None:
    """The instance name must be usable as a Podman volume name: the bookkeeping volumes carry it.

    Checked before anything is created, so a refused name touches no volume or pod.
    """
    check_object_name(
        instance,
        str(instance),
        f"{RUNTIME_NAME} workload",
        "its bookkeeping volumes are named after it; rename the workload",
    )


def parse_kube_config(instance: InstanceName, text: str) -> KubeConfig:
    """Parse and validate a podman-kube runtimeConfig.

    Raises WorkloadConfigError whose reason names the problem; that text is
    what the user sees as ``Pending(StartingFailed)`` info.
    """

    def fail(reason: str) -> WorkloadConfigError:
        return WorkloadConfigError(instance, f"invalid {RUNTIME_NAME} runtimeConfig: {reason}")

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise fail(f"not valid YAML ({_one_line(err)})") from err
    if not isinstance(data, dict):
        raise fail(f"expected a mapping with a 'manifest' key, got {_type_name(data)}")

    manifest = data.get("manifest")
    if manifest is None:
        raise fail("'manifest' is missing")
    if not isinstance(manifest, str):
        raise fail(f"'manifest' must be a string (Kubernetes YAML), got {_type_name(manifest)}")
    _check_manifest(manifest, fail)

    lists: dict[str, tuple[str, ...]] = {}
    for key in ("generalOptions", "playOptions", "downOptions"):
        value = data.get(key)
        if value is None:
            lists[key] = ()
            continue
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise fail(f"'{key}' must be a list of strings, got {value!r}")
        lists[key] = tuple(value)

    target = data.get("controlInterfaceTarget")
    if target is not None and not isinstance(target, str):
        raise fail(f"'controlInterfaceTarget' must be a string '<pod_name>/<container_name>', got {target!r}")

    try:
        _check_general_options(instance, lists["generalOptions"])
        play = translate_play_options(lists["playOptions"])
        check_down_options(lists["downOptions"])
    except ValueError as err:
        raise fail(str(err)) from err

    return KubeConfig(
        manifest=manifest,
        general_options=lists["generalOptions"],
        play_options=lists["playOptions"],
        down_options=lists["downOptions"],
        play=play,
        control_interface_target=target,
    )


def _check_manifest(manifest: str, fail: _Fail) -> None:
    """Refuse manifests podman could only answer with a confusing error."""
    if not manifest.strip():
        raise fail("'manifest' is empty")
    try:
        documents = [doc for doc in yaml.safe_load_all(manifest) if doc is not None]
    except yaml.YAMLError as err:
        raise fail(f"'manifest' is not valid YAML ({_one_line(err)})") from err
    if not documents:
        raise fail("'manifest' holds no Kubernetes document")
    for index, doc in enumerate(documents, start=1):
        if not isinstance(doc, dict) or not isinstance(doc.get("kind"), str):
            raise fail(f"'manifest' document {index} is not a Kubernetes object (no 'kind')")


def translate_play_options(options: Sequence[str]) -> PlayParams:
    """Translate ``playOptions`` into REST query parameters; ValueError names a bad option."""
    query: dict[str, str | list[str]] = {}
    annotations: dict[str, str] = {}
    replace = False
    for token in _tokens(options, _PLAY_TABLE, "playOptions", _refuse_play):
        name, value = token.name, token.value
        option = _PLAY_OPTIONS[name]
        if name == "--replace":
            replace = _bool_value(name, value, "playOptions")
        elif option.param is None:
            _bool_value(name, value, "playOptions")  # still validate the value
        elif option.kind is _Kind.BOOL:
            query[option.param] = "true" if _bool_value(name, value, "playOptions") else "false"
        elif option.kind is _Kind.STRING:
            query[option.param] = _required(name, value)
        elif option.kind is _Kind.LIST:
            existing = query.setdefault(option.param, [])
            assert isinstance(existing, list)
            existing.append(_required(name, value))
        else:
            key, sep, item = _required(name, value).partition("=")
            if not sep or not key:
                raise ValueError(f"playOptions: {name} needs key=value, got {value!r}")
            annotations[key] = item
    if annotations:
        query["annotations"] = json.dumps(annotations, sort_keys=True)
    return PlayParams(query=MappingProxyType(query), replace=replace)


def _refuse_play(name: str) -> ValueError:
    if name in _PLAY_REFUSED:
        return ValueError(f"playOptions: {name} is not supported ({_PLAY_REFUSED[name]})")
    return ValueError(f"playOptions: unsupported option {name}")


def check_down_options(options: Sequence[str]) -> None:
    """``podman kube down`` of Podman 4.3 takes no options at all; refuse any."""

    def refuse(name: str) -> ValueError:
        return ValueError(f"downOptions: unsupported option {name} (Podman 4.3's kube down takes none)")

    list(_tokens(options, OptionTable(takes_value=MappingProxyType({})), "downOptions", refuse))


def _check_general_options(instance: InstanceName, options: Sequence[str]) -> None:
    def refuse(name: str) -> ValueError:
        return ValueError(
            f"generalOptions: unsupported option {name} (the agent talks to the Podman service; "
            "only --log-level and --syslog are accepted, and ignored)"
        )

    for token in _tokens(options, _GENERAL_IGNORED, "generalOptions", refuse):
        if not _GENERAL_IGNORED.takes_value[token.name]:
            _bool_value(token.name, token.value, "generalOptions")
        logger.warning(
            "workload %s: generalOptions %s has no effect over the Podman REST API; ignored",
            instance,
            token.name,
        )


def _tokens(
    options: Sequence[str], table: OptionTable, key: str, refuse: Callable[[str], ValueError]
) -> Iterator[OptionToken]:
    """The options of the ``key`` list; the first option not in ``table`` raises ``refuse(name)``."""
    try:
        yield from split_options(options, table)
    except NotAnOption as err:
        raise ValueError(f"{key}: unexpected argument {err.word!r} (options must start with '-')") from None
    except UnknownOption as err:
        raise refuse(err.word) from None
    except MissingValue as err:
        raise ValueError(f"{key}: option {err.word} needs a value") from None


def _bool_value(name: str, value: str | None, key: str) -> bool:
    if value is None:
        return True
    try:
        return parse_bool(value)
    except ValueError:
        raise ValueError(f"{key}: {name} takes true or false, got {value!r}") from None


def _required(name: str, value: str | None) -> str:
    if value is None:
        raise ValueError(f"option {name} needs a value")
    return value


def _type_name(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())
