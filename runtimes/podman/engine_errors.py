"""Podman's failures, translated once where they enter the agent.

Every call to Podman, from either runtime, runs inside ``podman_call`` (or
passes its response through ``check``). What Podman or the transport raises
becomes one ``EngineCallFailed`` subclass, chosen by HTTP status code and
exception type only, never by Podman's wording (which changes between
versions and languages):

====================================  ==================
HTTP 404                               EngineNotFound
HTTP 409, 304 (already in that state)  EngineConflict
HTTP 400, 422                          EngineRejected
no status: refused / missing socket,   EngineUnreachable
broken connection, read timeout
anything else Podman answers           EngineCallFailed (kind OTHER)
====================================  ==================

Anything else (a ``KeyError``, a ``TypeError``) is a bug in the agent and
passes through untouched, so it is never mistaken for a failed create.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import requests
from podman.errors import APIError, PodmanError

from ankaios_agent.agent.errors import (
    EngineCallFailed,
    EngineConflict,
    EngineNotFound,
    EngineRejected,
    EngineUnreachable,
)

_BY_STATUS: dict[int, type[EngineCallFailed]] = {
    304: EngineConflict,
    400: EngineRejected,
    404: EngineNotFound,
    409: EngineConflict,
    422: EngineRejected,
}

# What a transport below podman-py raises when Podman does not answer at all.
_UNREACHABLE = (requests.ConnectionError, requests.Timeout, ConnectionError, FileNotFoundError, TimeoutError)


def engine_error_class(status: int | None) -> type[EngineCallFailed]:
    """The error type for an HTTP status (None: no answer at all)."""
    if status is None:
        return EngineUnreachable
    return _BY_STATUS.get(status, EngineCallFailed)


def translate(operation: str, exc: BaseException) -> EngineCallFailed | None:
    """The typed error for ``exc``, or None when ``exc`` is not a Podman or transport failure."""
    if isinstance(exc, EngineCallFailed):
        return exc
    if isinstance(exc, _UNREACHABLE):
        return EngineUnreachable(operation, f"cannot reach Podman: {exc}")
    if isinstance(exc, APIError):
        status = exc.status_code
        if status is None:
            # podman-py wraps every OSError (refused or missing socket, broken connection) in an
            # APIError without a status; the socket error itself is the useful text.
            cause = exc.__cause__
            text = f"cannot reach Podman: {cause}" if cause is not None else str(exc)
            return EngineUnreachable(operation, text)
        text = str(exc.explanation) if exc.explanation else str(exc)
        return engine_error_class(status)(operation, text, status)
    if isinstance(exc, requests.HTTPError):
        response = exc.response
        status = response.status_code if response is not None else None
        return engine_error_class(status)(operation, _response_text(response) or str(exc), status)
    if isinstance(exc, PodmanError | requests.RequestException | OSError):
        return EngineCallFailed(operation, str(exc))
    return None


@contextlib.contextmanager
def podman_call(operation: str) -> Iterator[None]:
    """Run a block of Podman calls; Podman's failures leave it as ``EngineCallFailed``."""
    try:
        yield
    except Exception as exc:
        error = translate(operation, exc)
        if error is None or error is exc:
            raise
        raise error from exc


def check(operation: str, response: Any) -> Any:
    """``response`` if its status is below 400, else the typed error carrying Podman's message."""
    status = int(response.status_code)
    if status < 400:
        return response
    raise engine_error_class(status)(operation, _response_text(response) or f"HTTP {status}", status)


def _response_text(response: Any) -> str:
    """Podman's ``message`` (else ``cause``, else the body) from an error response."""
    if response is None:
        return ""
    try:
        body = response.json()
    except ValueError:
        return str(response.text or "").strip()[:500]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("cause") or "")
    return str(body)[:500]
