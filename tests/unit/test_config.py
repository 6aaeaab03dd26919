"""Command-line parsing of ank-agent: flags, defaults, name rules, run folder."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ankaios_agent.agent import cli
from ankaios_agent.agent.config import (
    AgentConfig,
    RunFolderError,
    parse_args,
    parse_server,
    prepare_io_folder,
)
from ankaios_agent.agent.errors import UsageError


def test_defaults_match_the_reference() -> None:
    """Defaults as the v0.3.1 agent: server http://127.0.0.1:25551, run folder /tmp/ankaios/, level info."""
    config = parse_args(["--name", "node1"], {})
    assert config == AgentConfig(
        name="node1",
        server_url="http://127.0.0.1:25551",
        server_address="127.0.0.1:25551",
        run_folder=Path("/tmp/ankaios/"),
        podman_socket=None,
        log_level="info",
    )
    assert config.io_folder == Path("/tmp/ankaios/node1_io")


@pytest.mark.parametrize("flag", ["--name", "-n"])
def test_name_flag_forms(flag: str) -> None:
    assert parse_args([flag, "agent_A"], {}).name == "agent_A"


@pytest.mark.parametrize("name", ["", "a.b", "a@b", "a/b", "a b", "a\tb", " "])
def test_bad_names_are_refused(name: str) -> None:
    """Empty, '.', '@', '/' or whitespace -> usage error."""
    with pytest.raises(UsageError, match="--name"):
        parse_args(["--name", name], {})


@pytest.mark.parametrize(
    ("text", "url", "address"),
    [
        ("127.0.0.1:25551", "http://127.0.0.1:25551", "127.0.0.1:25551"),
        ("http://127.0.0.1:25551", "http://127.0.0.1:25551", "127.0.0.1:25551"),
        ("http://server.local:1234/", "http://server.local:1234", "server.local:1234"),
        ("localhost:9", "http://localhost:9", "localhost:9"),
        ("[::1]:25551", "http://[::1]:25551", "[::1]:25551"),
    ],
)
def test_server_forms(text: str, url: str, address: str) -> None:
    """host:port and http://host:port are accepted."""
    assert parse_server(text) == (url, address)


@pytest.mark.parametrize("flag", ["--server", "--server-url", "-s"])
def test_server_flag_aliases(flag: str) -> None:
    assert parse_args(["-n", "a", flag, "10.0.0.1:5"], {}).server_address == "10.0.0.1:5"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("https://127.0.0.1:25551", "https is not supported"),
        ("ftp://x:1", "only http"),
        ("127.0.0.1", "host and a port"),
        ("http://:25551", "host and a port"),
        ("http://x:99999", "not a valid address"),
        ("http://x:1/path", "path"),
    ],
)
def test_bad_servers_are_refused(text: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        parse_server(text)


def test_log_level_from_env_and_flag_wins() -> None:
    """ANKAGENT_LOG_LEVEL, overridden by --log-level."""
    assert parse_args(["-n", "a"], {"ANKAGENT_LOG_LEVEL": "DEBUG"}).log_level == "debug"
    assert (
        parse_args(["-n", "a", "--log-level", "warning"], {"ANKAGENT_LOG_LEVEL": "debug"}).log_level
        == "warning"
    )


@pytest.mark.parametrize(
    ("argv", "env"), [(["--log-level", "loud"], {}), ([], {"ANKAGENT_LOG_LEVEL": "verbose"})]
)
def test_bad_log_level_is_refused(argv: list[str], env: dict[str, str]) -> None:
    with pytest.raises(UsageError, match="not one of"):
        parse_args(["-n", "a", *argv], env)


def test_podman_socket_and_run_folder() -> None:
    config = parse_args(["-n", "a", "-r", "/srv/ank", "--podman-socket", "unix:///run/p.sock"], {})
    assert config.run_folder == Path("/srv/ank")
    assert config.io_folder == Path("/srv/ank/a_io")
    assert config.podman_socket == "unix:///run/p.sock"


def test_missing_name_and_unknown_flag_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="--name"):
        parse_args([], {})
    with pytest.raises(UsageError, match="unrecognized"):
        parse_args(["-n", "a", "--bogus"], {})


def test_cli_user_error_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """One clear line, exit code 2, no traceback."""
    assert cli.main(["--name", "bad.name"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("ank-agent: error: ")
    assert "Traceback" not in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`ank-agent --version` prints `ank-agent 0.3.1` (scripts call it to check the binary)."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == "ank-agent 0.3.1"


def test_help_explains_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--name", "--server-url", "--run-folder", "--podman-socket", "--log-level", "--version"):
        assert flag in out


def test_io_folder_is_created_with_parents_and_not_world_writable(tmp_path: Path) -> None:
    """<run-folder>/<name>_io with parents, never world-writable."""
    config = parse_args(["-n", "a", "-r", str(tmp_path / "deep" / "run")], {})
    folder = prepare_io_folder(config)
    assert folder == tmp_path / "deep" / "run" / "a_io"
    for created in (folder, folder.parent, folder.parent.parent):
        assert created.is_dir()
        assert not stat.S_IMODE(created.stat().st_mode) & 0o002


def test_existing_io_folder_is_reused(tmp_path: Path) -> None:
    (tmp_path / "a_io").mkdir()
    marker = tmp_path / "a_io" / "keep"
    marker.write_text("x")
    prepare_io_folder(parse_args(["-n", "a", "-r", str(tmp_path)], {}))
    assert marker.read_text() == "x"


def test_run_folder_that_is_a_file_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run folder that cannot be created ends the agent with exit 1."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RunFolderError):
        prepare_io_folder(parse_args(["-n", "a", "-r", str(blocker)], {}))
    assert cli.main(["-n", "a", "-r", str(blocker)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot create the run folder" in err


@pytest.mark.parametrize("which", ["run", "io"])
def test_folder_writable_by_group_or_others_is_refused_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], which: str
) -> None:
    """Whoever may write the run or io folder could plant FIFOs or symlinks for the agent to open."""
    run = tmp_path / "run"
    (run / "a_io").mkdir(parents=True, mode=0o700)
    os.chmod(run, 0o700)
    loose = run if which == "run" else run / "a_io"
    os.chmod(loose, 0o777)
    with pytest.raises(UsageError, match=f"chmod go-w {loose}"):
        prepare_io_folder(parse_args(["-n", "a", "-r", str(run)], {}))
    assert cli.main(["-n", "a", "-r", str(run)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "writable by group or others" in err


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a folder to another user")
def test_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "a_io").mkdir(parents=True, mode=0o700)
    os.chmod(run, 0o700)
    os.chown(run / "a_io", 12345, 12345)
    with pytest.raises(UsageError, match=r"belongs to uid 12345.*chown it"):
        prepare_io_folder(parse_args(["-n", "a", "-r", str(run)], {}))
