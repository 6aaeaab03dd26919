"""The agent's TOML config file (default ``/etc/ankaios/ank-agent.conf``), read into typed settings.

The file uses the keys of the Ankaios v1.0.1 agent, so one file serves either
implementation: ``version`` (required, exactly ``'v1'``), ``name``,
``server_url``, ``run_folder``, ``insecure``, ``runtimes``, ``tags``, and the
TLS items ``ca_pem``/``crt_pem``/``key_pem`` (paths) or
``ca_pem_content``/``crt_pem_content``/``key_pem_content`` (the PEM text).
This agent also reads ``protocol``, ``podman_socket`` and ``log_level``.

A wrong type is an error (``insecure = 'false'`` is a string, not a boolean);
an unknown key is kept as a notice so a typo does not go unnoticed, but it does
not stop the agent (the reference ignores unknown keys, and files written for
it must keep working).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from ankaios_agent.agent.errors import UsageError

DEFAULT_CONFIG_PATH = Path("/etc/ankaios/ank-agent.conf")
FILE_VERSION = "v1"
PEM_ITEMS = ("ca_pem", "crt_pem", "key_pem")
_T = TypeVar("_T")


@dataclass(frozen=True)
class FileSettings:
    """What the file says; ``None`` = the key is absent."""

    path: Path
    name: str | None = None
    server_url: str | None = None
    run_folder: str | None = None
    insecure: bool | None = None
    strict_authorization: bool | None = None
    runtimes: tuple[str, ...] | None = None
    tags: tuple[tuple[str, str], ...] | None = None
    ca_pem: str | None = None
    crt_pem: str | None = None
    key_pem: str | None = None
    ca_pem_content: str | None = None
    crt_pem_content: str | None = None
    key_pem_content: str | None = None
    protocol: str | None = None
    podman_socket: str | None = None
    log_level: str | None = None
    unknown_keys: tuple[str, ...] = ()


_STRING_KEYS = (
    "name",
    "server_url",
    "run_folder",
    "ca_pem",
    "crt_pem",
    "key_pem",
    "ca_pem_content",
    "crt_pem_content",
    "key_pem_content",
    "protocol",
    "podman_socket",
    "log_level",
)
_KNOWN_KEYS = frozenset(f.name for f in fields(FileSettings)) - {"path", "unknown_keys"} | {"version"}


def load(path: Path) -> FileSettings:
    """Read and check the file; UsageError (one line, naming the file) for anything wrong."""
    try:
        with path.open("rb") as stream:
            document = tomllib.load(stream)
    except OSError as err:
        raise UsageError(f"cannot read the config file {path}: {err.strerror or err}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"the config file {path} is not valid TOML: {err}") from None
    return settings_from(document, path)


def settings_from(document: dict[str, Any], path: Path) -> FileSettings:
    """Type-check a parsed TOML document (pure: the tests feed it tables directly)."""
    version = document.get("version")
    if version != FILE_VERSION:
        shown = "missing" if version is None else repr(version)
        raise UsageError(f"config file {path}: 'version' must be '{FILE_VERSION}', it is {shown}")
    values: dict[str, Any] = {}
    for key in _STRING_KEYS:
        if key in document:
            values[key] = _expect(document[key], str, key, path, "a string")
    for key in ("insecure", "strict_authorization"):
        if key in document:
            values[key] = _expect(document[key], bool, key, path, "true or false")
    if "runtimes" in document:
        items = _expect(document["runtimes"], list, "runtimes", path, "an array of strings")
        values["runtimes"] = tuple(
            _expect(item, str, "runtimes", path, "an array of strings") for item in items
        )
    if "tags" in document:
        table = _expect(document["tags"], dict, "tags", path, "a table of strings")
        values["tags"] = tuple(
            (key, _expect(value, str, f"tags.{key}", path, "a string")) for key, value in table.items()
        )
    for item in PEM_ITEMS:
        if item in values and f"{item}_content" in values:
            raise UsageError(
                f"config file {path}: give either '{item}' (a path) or '{item}_content' (the PEM text), "
                "not both"
            )
    unknown = tuple(sorted(set(document) - _KNOWN_KEYS))
    return FileSettings(path=path, unknown_keys=unknown, **values)


def _expect(value: object, kind: type[_T], key: str, path: Path, wanted: str) -> _T:
    # bool is an int in Python, but no key here takes a number, so no special case is needed.
    if not isinstance(value, kind):
        raise UsageError(f"config file {path}: '{key}' must be {wanted}, not {type(value).__name__}")
    return value
