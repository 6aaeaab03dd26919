"""Workload files: mount-point checks, content decoding and the order in which the first error is chosen."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ankaios_agent.agent import workload_files
from ankaios_agent.agent.workload_files import (
    Base64Content,
    FilesPlan,
    PlannedFile,
    TextContent,
    WorkloadFile,
    WorkloadFileError,
    decode_base64,
    mount_point_parts,
    plan_file,
    plan_files,
)


def text(mount_point: str, content: str = "x") -> WorkloadFile:
    return WorkloadFile(mount_point, TextContent(content))


def binary(mount_point: str, encoded: str) -> WorkloadFile:
    return WorkloadFile(mount_point, Base64Content(encoded))


@pytest.mark.parametrize(
    ("mount_point", "parts"),
    [
        pytest.param("/etc/nginx/nginx.conf", ("etc", "nginx", "nginx.conf"), id="nested_path_is_kept"),
        pytest.param("/hello", ("hello",), id="file_at_the_root"),
        pytest.param("/a/./b", ("a", "b"), id="dot_is_normalised_away"),
        pytest.param("//a///b", ("a", "b"), id="repeated_slashes_are_normalised_away"),
        pytest.param("/a/b/.", ("a", "b"), id="trailing_dot_is_normalised_away"),
        pytest.param("/.hidden/..x/x..", (".hidden", "..x", "x.."), id="dots_inside_names_are_plain"),
        pytest.param("/ä/ü b", ("ä", "ü b"), id="non_ascii_and_spaces_are_plain"),
        pytest.param("/" + "n" * 255, ("n" * 255,), id="name_of_255_bytes_fits"),
    ],
)
def test_mount_point_becomes_plain_names_below_the_files_folder(
    mount_point: str, parts: tuple[str, ...]
) -> None:
    assert mount_point_parts(mount_point) == parts


@pytest.mark.parametrize(
    ("mount_point", "reason"),
    [
        pytest.param("/etc/", "'/etc/' is a directory, expected a file", id="trailing_slash_is_a_directory"),
        pytest.param("/", "'/' is a directory, expected a file", id="root_is_a_directory"),
        pytest.param("/.", "'/.' is a directory, expected a file", id="root_dot_is_a_directory"),
        pytest.param(
            "../x", "path '../x' is relative, expected absolute path", id="parent_relative_is_relative"
        ),
        pytest.param("etc/x", "path 'etc/x' is relative, expected absolute path", id="relative_is_refused"),
        pytest.param("", "path '' is relative, expected absolute path", id="empty_is_relative"),
        pytest.param(
            "/a/../../etc", "path '/a/../../etc' contains invalid path components", id="dotdot_escape"
        ),
        pytest.param("/..", "path '/..' contains invalid path components", id="dotdot_at_root"),
        pytest.param("/a/..", "path '/a/..' contains invalid path components", id="trailing_dotdot"),
        pytest.param("/a\0b", "path '/a\0b' contains invalid path components", id="nul_byte_is_refused"),
        pytest.param(
            "/" + "n" * 256,
            f"path '/{'n' * 256}' has a name longer than 255 bytes",
            id="name_longer_than_the_file_system_allows",
        ),
        pytest.param(
            "/" + "é" * 128,
            f"path '/{'é' * 128}' has a name longer than 255 bytes",
            id="name_length_counts_utf8_bytes",
        ),
        pytest.param(
            "/a" * 2048,
            f"path '{'/a' * 2048}' is longer than 4095 bytes",
            id="path_longer_than_the_file_system_allows",
        ),
    ],
)
def test_bad_mount_point_is_refused_naming_the_file(mount_point: str, reason: str) -> None:
    with pytest.raises(WorkloadFileError) as caught:
        plan_file(text(mount_point))
    assert caught.value.reason == f"invalid mount point '{mount_point}': '{reason}'"
    assert caught.value.mount_point == mount_point


def test_error_gives_the_state_info_of_the_failed_start() -> None:
    with pytest.raises(WorkloadFileError) as caught:
        plan_file(text("rel"))
    assert caught.value.state_info == (
        "Failed to create workload file: "
        "'invalid mount point 'rel': 'path 'rel' is relative, expected absolute path''"
    )


def test_text_content_is_written_as_utf8() -> None:
    planned = plan_file(text("/a/./conf", "grüße\n"))
    assert planned == PlannedFile("/a/./conf", ("a", "conf"), "grüße\n".encode())
    assert planned.destination == "/a/conf"


@pytest.mark.parametrize(
    ("encoded", "data"),
    [
        pytest.param("aGVsbG8=", b"hello", id="padded"),
        pytest.param("aGVs\nbG8=\n", b"hello", id="wrapped_over_lines"),
        pytest.param("  aGVs  \r\n\tbG8=  ", b"hello", id="whitespace_around_lines_is_removed"),
        pytest.param("", b"", id="empty_is_empty"),
        pytest.param("AAEC/w==", b"\x00\x01\x02\xff", id="standard_alphabet"),
    ],
)
def test_base64_is_decoded_line_by_line(encoded: str, data: bytes) -> None:
    assert plan_file(binary("/f", encoded)).data == data


@pytest.mark.parametrize(
    "encoded",
    [
        pytest.param("aGVsbG8", id="missing_padding"),
        pytest.param("aGVs bG8=", id="space_inside_a_line"),
        pytest.param("aGVsbG9=", id="non_canonical_last_symbol"),
        pytest.param("aGVsbG8==", id="too_much_padding"),
        pytest.param("aGVs=bG8=", id="padding_in_the_middle"),
        pytest.param("_-8=", id="url_safe_alphabet"),
        pytest.param("aGVsbG8é", id="non_ascii"),
        pytest.param("a", id="single_symbol"),
    ],
)
def test_bad_base64_is_refused_naming_the_file(encoded: str) -> None:
    with pytest.raises(WorkloadFileError) as caught:
        plan_file(binary("/etc/key", encoded))
    assert caught.value.reason.startswith("invalid base64 data in '/etc/key': '")
    assert caught.value.mount_point == "/etc/key"


@given(st.binary(max_size=200), st.integers(min_value=1, max_value=80))
def test_base64_of_any_data_wrapped_anyhow_decodes_to_the_data(data: bytes, width: int) -> None:
    encoded = base64.b64encode(data).decode()
    wrapped = "\n".join(encoded[i : i + width] for i in range(0, len(encoded), width))
    assert decode_base64(wrapped) == data


def test_mount_point_is_checked_before_the_content() -> None:
    with pytest.raises(WorkloadFileError) as caught:
        plan_file(binary("/a/../b", "!!"))
    assert caught.value.reason.startswith("invalid mount point '/a/../b'")


def test_files_are_planned_in_list_order() -> None:
    plan = plan_files([text("/b", "2"), text("/a", "1")])
    assert plan == FilesPlan((PlannedFile("/b", ("b",), b"2"), PlannedFile("/a", ("a",), b"1")))


def test_first_bad_file_stops_the_plan_and_keeps_the_files_before_it() -> None:
    plan = plan_files([text("/ok"), text("rel"), binary("/bad", "!")])
    assert plan.files == (PlannedFile("/ok", ("ok",), b"x"),)
    assert plan.error is not None and plan.error.mount_point == "rel"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("/a/b", "/a/b", id="same_mount_point"),
        pytest.param("/a/b", "/a/./b", id="same_after_normalising_dot"),
        pytest.param("/a/b", "//a//b", id="same_after_normalising_slashes"),
    ],
)
def test_two_files_at_one_mount_point_are_refused(first: str, second: str) -> None:
    plan = plan_files([text(first, "1"), text(second, "2")])
    assert plan.files == (PlannedFile(first, ("a", "b"), b"1"),)
    assert plan.error is not None
    assert (
        plan.error.reason
        == f"invalid mount point '{second}': 'path '{second}' is used by an earlier file too'"
    )


def test_no_files_give_an_empty_plan() -> None:
    assert plan_files([]) == FilesPlan(())


def test_public_names_are_pinned() -> None:
    assert workload_files.__all__ == [
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
