"""Podman failures become typed errors by status code and exception type, never by their text."""

from __future__ import annotations

import json

import pytest
import requests
from podman.errors import APIError, NotFound

from ankaios_agent.agent.errors import (
    EngineCallFailed,
    EngineConflict,
    EngineErrorKind,
    EngineNotFound,
    EngineRejected,
    EngineUnreachable,
)
from ankaios_agent.runtimes.podman.engine_errors import check, podman_call, translate


def response(status: int, body: object) -> requests.Response:
    result = requests.Response()
    result.status_code = status
    result._content = json.dumps(body).encode() if not isinstance(body, bytes) else body
    return result


def api_error(status: int, message: str) -> APIError:
    return APIError("cause", response=response(status, {"message": message}), explanation=message)


def unreachable_api_error() -> APIError:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as exc:
            raise APIError("http://d/containers/json", explanation="GET operation failed") from exc
    except APIError as err:
        return err


# The message texts deliberately say the opposite of the status: only the status decides.
TABLE = [
    (api_error(404, "pod already exists"), EngineNotFound, EngineErrorKind.NOT_FOUND, 404),
    (
        NotFound("x", response=response(404, {}), explanation="gone"),
        EngineNotFound,
        EngineErrorKind.NOT_FOUND,
        404,
    ),
    (api_error(409, "no such container"), EngineConflict, EngineErrorKind.CONFLICT, 409),
    (api_error(304, "whatever"), EngineConflict, EngineErrorKind.CONFLICT, 304),
    (api_error(400, "no such pod"), EngineRejected, EngineErrorKind.REJECTED, 400),
    (api_error(422, "fine"), EngineRejected, EngineErrorKind.REJECTED, 422),
    (api_error(500, "no such pod"), EngineCallFailed, EngineErrorKind.OTHER, 500),
    (unreachable_api_error(), EngineUnreachable, EngineErrorKind.UNREACHABLE, None),
    (requests.ConnectionError("refused"), EngineUnreachable, EngineErrorKind.UNREACHABLE, None),
    (requests.ReadTimeout("slow"), EngineUnreachable, EngineErrorKind.UNREACHABLE, None),
    (FileNotFoundError(2, "no socket"), EngineUnreachable, EngineErrorKind.UNREACHABLE, None),
    (
        requests.HTTPError(response=response(409, {"message": "in use"})),
        EngineConflict,
        EngineErrorKind.CONFLICT,
        409,
    ),
]


@pytest.mark.parametrize(("exc", "expected", "kind", "status"), TABLE)
def test_podman_failures_translate_by_status_and_type(
    exc: BaseException, expected: type[EngineCallFailed], kind: EngineErrorKind, status: int | None
) -> None:
    error = translate("list containers", exc)
    assert type(error) is expected
    assert error is not None
    assert error.kind is kind
    assert error.status == status
    assert error.operation == "list containers"


def test_unreachable_podman_names_the_socket_error_not_podman_pys_generic_text() -> None:
    error = translate("list", unreachable_api_error())
    assert error is not None
    assert "Connection refused" in error.reason


def test_podmans_message_is_the_reason() -> None:
    error = translate("create", api_error(500, "image not known"))
    assert error is not None
    assert error.reason == "image not known"


@pytest.mark.parametrize("bug", [KeyError("Id"), TypeError("bad"), ValueError("bad"), AttributeError("x")])
def test_programming_errors_are_not_translated(bug: Exception) -> None:
    assert translate("create", bug) is None
    with pytest.raises(type(bug)), podman_call("create"):
        raise bug


def test_podman_call_raises_the_typed_error_with_the_original_as_cause() -> None:
    original = api_error(404, "no such container")
    with pytest.raises(EngineNotFound) as info, podman_call("inspect"):
        raise original
    assert info.value.__cause__ is original


@pytest.mark.parametrize(
    ("status", "expected"),
    [(404, EngineNotFound), (409, EngineConflict), (400, EngineRejected), (500, EngineCallFailed)],
)
def test_check_translates_an_error_response_with_podmans_message(
    status: int, expected: type[EngineCallFailed]
) -> None:
    with pytest.raises(expected) as info:
        check("play", response(status, {"cause": "c", "message": "playing failed"}))
    assert type(info.value) is expected
    assert info.value.reason == "playing failed"
    assert info.value.status == status


def test_check_passes_a_good_response_through() -> None:
    ok = response(204, b"")
    assert check("exists", ok) is ok
