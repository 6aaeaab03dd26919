"""Parsers for podman option values (sizes, durations, signals, namespaces), as the CLI reads them."""

from __future__ import annotations

import re
import signal

NS_MODES = ("host", "private", "none", "bridge", "slirp4netns", "pasta", "auto", "keep-id", "nomap")

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmgt]?)b?$", re.IGNORECASE)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def parse_size(text: str) -> int:
    """``512m`` / ``1g`` / ``1024`` → bytes (binary units, as podman)."""
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError(f"invalid size {text!r} (use e.g. 512m, 1g)")
    number, unit = match.groups()
    return int(float(number) * 1024 ** "bkmgt".index(unit.lower() or "b"))


def parse_duration_ns(text: str) -> int:
    """A Go duration (``30s``, ``1m30s``, ``500ms``) → nanoseconds."""
    if not text or _DURATION_PART.sub("", text) != "":
        raise ValueError(f"invalid duration {text!r} (use e.g. 30s, 1m30s)")
    return sum(round(float(n) * _DURATION_NS[u]) for n, u in _DURATION_PART.findall(text))


def parse_bool(text: str) -> bool:
    """Booleans as podman's CLI takes them (Go's ParseBool), plus yes/no."""
    lowered = text.lower()
    if lowered in ("true", "t", "1", "yes"):
        return True
    if lowered in ("false", "f", "0", "no"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def parse_signal(text: str) -> int:
    if text.isdigit():
        return int(text)
    name = text.upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ValueError(f"unknown signal {text!r}") from None


def parse_key_value(text: str, what: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not key or not sep:
        raise ValueError(f"expected {what} as KEY=VALUE, got {text!r}")
    return key, value


def parse_namespace(text: str) -> dict[str, str]:
    """``host``, ``private``, ``container:<id>``, ``ns:<path>`` ... → libpod Namespace."""
    mode, sep, value = text.partition(":")
    if mode in ("container", "ns", "slirp4netns", "pasta") and sep:
        return {"nsmode": "path" if mode == "ns" else mode, "value": value}
    if mode in NS_MODES or mode == "shareable":
        return {"nsmode": mode}
    raise ValueError(f"unsupported namespace mode {text!r}")
