"""Workload file writer on a real file system: layout, modes, clean-up and symbolic-link attacks."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ankaios_agent.agent import workload_file_writer
from ankaios_agent.agent.workload_file_writer import FileMount, remove_files, write_files
from ankaios_agent.agent.workload_files import (
    Base64Content,
    TextContent,
    WorkloadFile,
    WorkloadFileError,
    plan_file,
    plan_files,
)


def text(mount_point: str, content: str = "x") -> WorkloadFile:
    return WorkloadFile(mount_point, TextContent(content))


@pytest.fixture
def files_dir(tmp_path: Path) -> Path:
    return tmp_path / "run" / "nginx.abc" / "files"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder the writer must never touch, with one file in it."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "passwd").write_text("original")
    return folder


@pytest.fixture
def strict_umask() -> Iterator[None]:
    old = os.umask(0o077)
    yield
    os.umask(old)


def tree(root: Path) -> dict[str, bytes | None]:
    """Every entry below ``root``: a file's bytes, ``None`` for a directory."""
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
        for p in sorted(root.rglob("*"))
        if not p.is_symlink()
    }


def test_files_land_below_the_folder_at_their_mount_points(files_dir: Path) -> None:
    plan = plan_files(
        [
            text("/etc/nginx/nginx.conf", "server {}"),
            text("/hello", "hi"),
            text("/a/./b", "ab"),
            WorkloadFile("/bin/blob", Base64Content("AAEC/w==")),
        ]
    )
    mounts = write_files(files_dir, plan)
    assert mounts == (
        FileMount(files_dir / "etc/nginx/nginx.conf", "/etc/nginx/nginx.conf"),
        FileMount(files_dir / "hello", "/hello"),
        FileMount(files_dir / "a/b", "/a/b"),
        FileMount(files_dir / "bin/blob", "/bin/blob"),
    )
    assert tree(files_dir) == {
        "a": None,
        "a/b": b"ab",
        "bin": None,
        "bin/blob": b"\x00\x01\x02\xff",
        "etc": None,
        "etc/nginx": None,
        "etc/nginx/nginx.conf": b"server {}",
        "hello": b"hi",
    }


@pytest.mark.usefixtures("strict_umask")
def test_modes_let_any_container_user_read_whatever_the_umask(files_dir: Path) -> None:
    write_files(files_dir, plan_files([text("/etc/app/conf")]))
    assert stat.S_IMODE((files_dir / "etc/app/conf").stat().st_mode) == 0o644
    assert stat.S_IMODE((files_dir / "etc/app").stat().st_mode) == 0o755
    assert stat.S_IMODE((files_dir / "etc").stat().st_mode) == 0o755
    assert stat.S_IMODE(files_dir.stat().st_mode) == 0o755


def test_no_temporary_file_is_left_behind(files_dir: Path) -> None:
    write_files(files_dir, plan_files([text("/a/b"), text("/a/c")]))
    assert sorted(p.name for p in (files_dir / "a").iterdir()) == ["b", "c"]


def test_folder_is_rebuilt_so_a_dropped_file_disappears(files_dir: Path) -> None:
    write_files(files_dir, plan_files([text("/old", "1"), text("/keep", "1")]))
    write_files(files_dir, plan_files([text("/keep", "2")]))
    assert tree(files_dir) == {"keep": b"2"}


def test_no_files_leave_no_folder(files_dir: Path) -> None:
    write_files(files_dir, plan_files([text("/old")]))
    assert write_files(files_dir, plan_files([])) == ()
    assert not files_dir.exists()


def test_planned_error_is_raised_after_the_good_files_and_nothing_stays(files_dir: Path) -> None:
    plan = plan_files([text("/ok"), text("relative")])
    with pytest.raises(WorkloadFileError) as caught:
        write_files(files_dir, plan)
    assert caught.value is plan.error
    assert not files_dir.exists()


def test_planned_error_of_the_first_file_creates_nothing(files_dir: Path) -> None:
    with pytest.raises(WorkloadFileError, match="is relative"):
        write_files(files_dir, plan_files([text("relative")]))
    assert not files_dir.exists()


def test_file_where_a_directory_is_needed_fails_the_structure(files_dir: Path) -> None:
    with pytest.raises(WorkloadFileError) as caught:
        write_files(files_dir, plan_files([text("/a"), text("/a/b")]))
    assert caught.value.reason == (
        "failed to create workload file directory structure for '/a/b': 'Not a directory (os error 20)'"
    )
    assert not files_dir.exists()


def test_directory_where_a_file_is_needed_fails_the_write(files_dir: Path) -> None:
    with pytest.raises(WorkloadFileError) as caught:
        write_files(files_dir, plan_files([text("/a/b"), text("/a")]))
    assert caught.value.reason == "write failed for '/a': 'Is a directory (os error 21)'"
    assert caught.value.state_info.startswith("Failed to create workload file: 'write failed for '/a'")
    assert not files_dir.exists()


def test_preplaced_directory_link_is_replaced_and_nothing_is_written_outside(
    files_dir: Path, outside: Path
) -> None:
    files_dir.mkdir(parents=True)
    (files_dir / "etc").symlink_to(outside)
    write_files(files_dir, plan_files([text("/etc/passwd", "mine")]))
    assert (outside / "passwd").read_text() == "original"
    assert sorted(p.name for p in outside.iterdir()) == ["passwd"]
    assert not (files_dir / "etc").is_symlink()
    assert (files_dir / "etc/passwd").read_text() == "mine"


def test_preplaced_link_as_the_folder_itself_is_replaced(files_dir: Path, outside: Path) -> None:
    files_dir.parent.mkdir(parents=True)
    files_dir.symlink_to(outside)
    write_files(files_dir, plan_files([text("/passwd", "mine")]))
    assert (outside / "passwd").read_text() == "original"
    assert not files_dir.is_symlink()
    assert (files_dir / "passwd").read_text() == "mine"


def test_link_swapped_in_for_a_directory_makes_the_write_fail_not_escape(
    files_dir: Path, outside: Path
) -> None:
    """A link that appears while the tree is written (after the clean start) is not followed."""
    files_dir.mkdir(parents=True)
    (files_dir / "etc").symlink_to(outside)
    root = os.open(files_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(WorkloadFileError) as caught:
            workload_file_writer._write(root, files_dir, plan_file(text("/etc/passwd", "mine")))
    finally:
        os.close(root)
    assert caught.value.reason == (
        "failed to create workload file directory structure for '/etc/passwd': "
        "'Not a directory (os error 20)'"
    )
    assert (outside / "passwd").read_text() == "original"


def test_link_swapped_in_for_the_file_is_replaced_not_written_through(files_dir: Path, outside: Path) -> None:
    files_dir.mkdir(parents=True)
    (files_dir / "passwd").symlink_to(outside / "passwd")
    root = os.open(files_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        workload_file_writer._write(root, files_dir, plan_file(text("/passwd", "mine")))
    finally:
        os.close(root)
    assert (outside / "passwd").read_text() == "original"
    assert not (files_dir / "passwd").is_symlink()
    assert (files_dir / "passwd").read_text() == "mine"


def test_remove_files_tolerates_a_missing_folder(files_dir: Path) -> None:
    remove_files(files_dir)
    assert not files_dir.exists()


def test_remove_files_removes_a_link_not_its_target(files_dir: Path, outside: Path) -> None:
    files_dir.parent.mkdir(parents=True)
    files_dir.symlink_to(outside)
    remove_files(files_dir)
    assert not files_dir.is_symlink()
    assert (outside / "passwd").read_text() == "original"


def test_remove_files_does_not_follow_links_inside_the_tree(files_dir: Path, outside: Path) -> None:
    write_files(files_dir, plan_files([text("/x")]))
    (files_dir / "link").symlink_to(outside)
    remove_files(files_dir)
    assert not files_dir.exists()
    assert (outside / "passwd").read_text() == "original"


def test_public_names_are_pinned() -> None:
    assert workload_file_writer.__all__ == [
        "DIRECTORY_MODE",
        "FILE_MODE",
        "FileMount",
        "remove_files",
        "write_files",
    ]
