"""Settings from flags, environment and the TOML config file: sources, precedence, per-dialect rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ankaios_agent.agent import cli
from ankaios_agent.agent.config import (
    SUPPORTED_RUNTIMES,
    AgentConfig,
    ProtocolChoice,
    parse_args,
    resolve_server,
    rust_log_level,
)
from ankaios_agent.agent.config_file import settings_from
from ankaios_agent.agent.errors import UsageError
from tests.support.certs import write_pki


@pytest.fixture
def no_file(tmp_path: Path) -> Path:
    """A default config path that does not exist: the host's /etc never leaks into a test."""
    return tmp_path / "absent" / "ank-agent.conf"


def _conf(tmp_path: Path, text: str, name: str = "agent.conf") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def parse(argv: list[str], env: dict[str, str] | None = None, *, default: Path) -> AgentConfig:
    return parse_args(argv, env or {}, default_config=default)


# --- precedence: defaults < file < environment < flags -------------------------------------------

FILE = """
version = 'v1'
name = 'from_file'
server_url = 'http://10.0.0.1:1'
run_folder = '/srv/file'
protocol = 'v0.3'
log_level = 'error'
podman_socket = '/run/file.sock'
insecure = false
tags = { zone = 'file', rack = '7' }
"""


@pytest.mark.parametrize(
    ("argv", "env", "field", "expected"),
    [
        ([], {}, "name", "from_file"),
        (["-n", "flag"], {}, "name", "flag"),
        ([], {}, "server_url", "http://10.0.0.1:1"),
        (["-s", "10.0.0.2:2"], {}, "server_url", "http://10.0.0.2:2"),
        ([], {}, "run_folder", Path("/srv/file")),
        (["-r", "/srv/flag"], {}, "run_folder", Path("/srv/flag")),
        ([], {}, "protocol", ProtocolChoice.V0_3),
        ([], {"ANKAGENT_PROTOCOL": "auto"}, "protocol", ProtocolChoice.AUTO),
        (["--protocol", "v0.3"], {"ANKAGENT_PROTOCOL": "auto"}, "protocol", ProtocolChoice.V0_3),
        ([], {}, "log_level", "error"),
        ([], {"RUST_LOG": "debug"}, "log_level", "debug"),
        ([], {"RUST_LOG": "debug", "ANKAGENT_LOG_LEVEL": "warning"}, "log_level", "warning"),
        (["--log-level", "info"], {"ANKAGENT_LOG_LEVEL": "warning"}, "log_level", "info"),
        ([], {}, "podman_socket", "/run/file.sock"),
        (["--podman-socket", "/run/flag.sock"], {}, "podman_socket", "/run/flag.sock"),
        ([], {}, "tags", (("zone", "file"), ("rack", "7"))),
        (["-t", "zone=cli"], {}, "tags", (("zone", "cli"),)),  # CLI tags replace the whole table
        ([], {}, "insecure", False),
        ([], {"ANKAGENT_INSECURE": "true"}, "insecure", True),
        (["-k"], {"ANKAGENT_INSECURE": "false"}, "insecure", True),
        ([], {"ANKAGENT_INSECURE": ""}, "insecure", False),  # an empty variable is unset
    ],
)
def test_later_sources_win(
    tmp_path: Path, argv: list[str], env: dict[str, str], field: str, expected: object
) -> None:
    config = parse(["-x", str(_conf(tmp_path, FILE)), *argv], env, default=tmp_path / "none")
    assert getattr(config, field) == expected


def test_default_config_path_is_read_when_it_exists(tmp_path: Path) -> None:
    default = _conf(tmp_path, "version = 'v1'\nname = 'dflt'\n", "ank-agent.conf")
    config = parse([], default=default)
    assert (config.name, config.config_file) == ("dflt", default)


@pytest.mark.parametrize("flag", ["--agent-config", "-x", "--config_path"])
def test_config_file_flag_forms_override_the_default(tmp_path: Path, flag: str) -> None:
    default = _conf(tmp_path, "version = 'v1'\nname = 'dflt'\n", "ank-agent.conf")
    other = _conf(tmp_path, "version = 'v1'\nname = 'other'\n")
    assert parse([flag, str(other)], default=default).name == "other"


def test_without_any_file_the_defaults_apply(no_file: Path) -> None:
    config = parse(["-n", "a"], default=no_file)
    assert config.config_file is None
    assert config.runtimes == SUPPORTED_RUNTIMES
    assert (config.protocol, config.tls, config.insecure, config.tags) == (
        ProtocolChoice.AUTO,
        None,
        False,
        (),
    )


# --- config file errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("name = 'a'\n", "'version' must be 'v1', it is missing"),
        ("version = 'v2'\n", "'version' must be 'v1', it is 'v2'"),
        ("version = 'v1'\ninsecure = 'false'\n", "'insecure' must be true or false, not str"),
        ("version = 'v1'\nname = 3\n", "'name' must be a string, not int"),
        ("version = 'v1'\nruntimes = 'podman'\n", "'runtimes' must be an array of strings"),
        ("version = 'v1'\nruntimes = [1]\n", "'runtimes' must be an array of strings"),
        ("version = 'v1'\ntags = ['a']\n", "'tags' must be a table of strings"),
        ("version = 'v1'\ntags = { a = 1 }\n", "'tags.a' must be a string"),
        ("version = 'v1'\nca_pem = '/x'\nca_pem_content = 'y'\n", "either 'ca_pem'"),
        ("version = 'v1'\nname = \n", "not valid TOML"),
        ("version = 'v1'\nruntimes = []\n", "no supported runtime"),
        ("version = 'v1'\nprotocol = 'v2'\n", "is not one of auto, v0.3, v1"),
    ],
)
def test_bad_config_files_are_one_line_errors(tmp_path: Path, text: str, why: str) -> None:
    path = _conf(tmp_path, text)
    with pytest.raises(UsageError, match=f"{re.escape(str(path))}.*{why}" if "TOML" in why else why) as info:
        parse(["-n", "a", "-x", str(path)], default=tmp_path / "none")
    assert "\n" not in str(info.value)


def test_missing_named_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read the config file"):
        parse(["-n", "a", "-x", str(tmp_path / "nope.conf")], default=tmp_path / "none")


def test_unknown_keys_are_a_notice_not_an_error(tmp_path: Path) -> None:
    path = _conf(tmp_path, "version = 'v1'\nnmae = 'typo'\n")
    config = parse(["-n", "a", "-x", str(path)], default=tmp_path / "none")
    assert config.notices == (f"config file {path}: unknown keys ignored: nmae",)


def test_file_settings_are_typed(tmp_path: Path) -> None:
    settings = settings_from(
        {"version": "v1", "runtimes": ["podman"], "tags": {"k": "v"}, "insecure": True}, tmp_path
    )
    assert (settings.runtimes, settings.tags, settings.insecure) == (("podman",), (("k", "v"),), True)


# --- runtimes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listed", "enabled", "notices"),
    [
        ("['podman']", ("podman",), 0),
        ("['podman-kube', 'podman']", ("podman-kube", "podman"), 0),
        ("['podman', 'containerd']", ("podman",), 1),
        ("['podman', 'podman', 'rkt']", ("podman",), 1),
    ],
)
def test_enabled_runtimes(tmp_path: Path, listed: str, enabled: tuple[str, ...], notices: int) -> None:
    path = _conf(tmp_path, f"version = 'v1'\nruntimes = {listed}\n")
    config = parse(["-n", "a", "-x", str(path)], default=tmp_path / "none")
    assert config.runtimes == enabled
    assert len([n for n in config.notices if "runtime" in n]) == notices


def test_only_unsupported_runtimes_is_an_error(tmp_path: Path) -> None:
    path = _conf(tmp_path, "version = 'v1'\nruntimes = ['containerd']\n")
    with pytest.raises(UsageError, match=r"no supported runtime.*podman, podman-kube"):
        parse(["-n", "a", "-x", str(path)], default=tmp_path / "none")


# --- tags ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "tags"),
    [
        (["-t", "a=1", "--tag", "b=2"], (("a", "1"), ("b", "2"))),
        (["-t", "k=v=w"], (("k", "v=w"),)),  # split at the first '='
        (["-t", "k="], (("k", ""),)),
        (["-t", "a=1", "-t", "a=2"], (("a", "2"),)),  # the last value of a key wins
    ],
)
def test_tag_flags(no_file: Path, argv: list[str], tags: tuple[tuple[str, str], ...]) -> None:
    assert parse(["-n", "a", *argv], default=no_file).tags == tags


def test_tag_without_equals_is_a_usage_error(no_file: Path) -> None:
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse(["-n", "a", "-t", "novalue"], default=no_file)


# --- agent name and run folder per protocol -------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "name", "outcome"),
    [
        ("auto", "agent_A-1", "ok"),
        ("auto", "agent+A", "notice"),  # not a v1 name, but usable with v0.3.1
        ("v0.3", "agent+A", "ok"),
        ("v1", "agent_A-1", "ok"),
        ("v1", "agent+A", "error"),
        ("v1", "agent.A", "error"),
        ("auto", "agent.A", "error"),
        ("v0.3", "Invalid@gent", "error"),
    ],
)
def test_agent_name_rule_follows_the_protocol(no_file: Path, protocol: str, name: str, outcome: str) -> None:
    argv = ["-n", name, "--protocol", protocol, "-k"]
    if outcome == "error":
        with pytest.raises(UsageError, match="--name"):
            parse(argv, default=no_file)
        return
    config = parse(argv, default=no_file)
    assert config.name == name
    assert [n for n in config.notices if "v1.0.1 server" in n] == (
        [] if outcome == "ok" else [config.notices[0]]
    )


def test_name_may_come_only_from_the_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no agent name"):
        parse(["-x", str(_conf(tmp_path, "version = 'v1'\n"))], default=tmp_path / "none")


@pytest.mark.parametrize(
    ("protocol", "env", "folder"),
    [
        ("auto", {"TMPDIR": "/var/tmp/x"}, Path("/tmp/ankaios/")),
        ("v0.3", {}, Path("/tmp/ankaios/")),
        ("v1", {}, Path("/tmp/ankaios")),
        ("v1", {"TMPDIR": "/var/tmp/x"}, Path("/var/tmp/x/ankaios")),
    ],
)
def test_default_run_folder_follows_the_protocol(
    no_file: Path, protocol: str, env: dict[str, str], folder: Path
) -> None:
    assert parse(["-n", "a", "--protocol", protocol, "-k"], env, default=no_file).run_folder == folder


@pytest.mark.parametrize("value", ["V1", " v1 "])
def test_protocol_values_are_case_and_space_tolerant(no_file: Path, value: str) -> None:
    assert (
        parse(["-n", "a", "-k"], {"ANKAGENT_PROTOCOL": value}, default=no_file).protocol is ProtocolChoice.V1
    )


@pytest.mark.parametrize(
    ("argv", "env", "why"),
    [
        (["--protocol", "v2"], {}, "--protocol 'v2' is not one of auto, v0.3, v1"),
        ([], {"ANKAGENT_PROTOCOL": "0.3"}, "ANKAGENT_PROTOCOL '0.3' is not one of"),
        ([], {"ANKAGENT_INSECURE": "yes"}, "ANKAGENT_INSECURE must be true or false"),
        (["--insecure=true"], {}, "ignored explicit argument"),  # the flag takes no value
    ],
)
def test_bad_values_are_usage_errors(no_file: Path, argv: list[str], env: dict[str, str], why: str) -> None:
    with pytest.raises(UsageError, match=why):
        parse(["-n", "a", *argv], env, default=no_file)


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("debug", "debug"),
        ("trace", "debug"),
        ("WARN", "warning"),
        ("info,ank=trace", "info"),
        ("ank=debug", None),
    ],
)
def test_rust_log_plain_levels(text: str, level: str | None) -> None:
    assert rust_log_level(text) == level


# --- transport: URL, TLS, insecure ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "protocol", "tls", "insecure", "url"),
    [
        (None, ProtocolChoice.AUTO, False, False, "http://127.0.0.1:25551"),
        (None, ProtocolChoice.AUTO, True, False, "https://127.0.0.1:25551"),
        (None, ProtocolChoice.V1, True, False, "https://127.0.0.1:25551"),
        (None, ProtocolChoice.V1, False, True, "http://127.0.0.1:25551"),  # https default made plain
        (None, ProtocolChoice.V0_3, False, False, "http://127.0.0.1:25551"),
        ("https://h:1", ProtocolChoice.AUTO, False, True, "http://h:1"),
        ("https://h:1", ProtocolChoice.V0_3, False, True, "http://h:1"),
        ("https://h:1", ProtocolChoice.V1, True, True, "https://h:1"),  # TLS wins over --insecure
        ("h:1", ProtocolChoice.AUTO, False, False, "http://h:1"),
    ],
)
def test_server_url_per_transport(
    text: str | None, protocol: ProtocolChoice, tls: bool, insecure: bool, url: str
) -> None:
    assert resolve_server(text, protocol=protocol, tls=tls, insecure=insecure)[0] == url


@pytest.mark.parametrize(
    ("text", "protocol", "tls", "insecure", "why"),
    [
        (None, ProtocolChoice.V1, False, False, "missing certificate files.*--insecure"),
        (None, ProtocolChoice.V0_3, True, False, "--protocol v0.3 speaks plain HTTP/2 only"),
        ("https://h:1", ProtocolChoice.V0_3, False, False, "https is not supported"),
        ("https://h:1", ProtocolChoice.AUTO, False, False, "https:// needs --ca_pem"),
        ("http://h:1", ProtocolChoice.AUTO, True, False, "the URL must be https://"),
        ("h:1", ProtocolChoice.V1, True, False, "the URL must be https://"),
    ],
)
def test_transport_conflicts_are_refused(
    text: str | None, protocol: ProtocolChoice, tls: bool, insecure: bool, why: str
) -> None:
    with pytest.raises(UsageError, match=why):
        resolve_server(text, protocol=protocol, tls=tls, insecure=insecure)


def test_tls_from_flags_environment_and_file(tmp_path: Path, no_file: Path) -> None:
    pki = write_pki(tmp_path / "certs")
    from_flags = parse(["-n", "a", *pki.flags()], default=no_file)
    env = {
        "ANKAGENT_CA_PEM": str(pki.ca_pem),
        "ANKAGENT_CRT_PEM": str(pki.agent_pem),
        "ANKAGENT_KEY_PEM": str(pki.agent_key),
    }
    from_env = parse(["-n", "a"], env, default=no_file)
    conf = _conf(
        tmp_path,
        "version = 'v1'\nname = 'a'\n"
        f"ca_pem_content = '''{pki.ca.cert.decode()}'''\n"
        f"crt_pem = '{pki.agent_pem}'\nkey_pem = '{pki.agent_key}'\n",
    )
    from_file = parse(["-x", str(conf)], default=no_file)
    for config in (from_flags, from_env, from_file):
        assert config.tls is not None
        assert (config.tls.ca, config.tls.cert, config.tls.key) == (
            pki.ca.cert,
            pki.agent.cert,
            pki.agent.key,
        )
        assert config.server_url == "https://127.0.0.1:25551"
        assert config.dialects == (ProtocolChoice.V1,)
    assert "key=" not in repr(from_flags.tls)  # the private key never appears in a log line


def test_flag_pem_path_replaces_the_files_content(tmp_path: Path, no_file: Path) -> None:
    pki = write_pki(tmp_path / "certs")
    conf = _conf(tmp_path, "version = 'v1'\nname = 'a'\nca_pem_content = 'not a certificate'\n")
    config = parse(["-x", str(conf), *pki.flags()], default=no_file)
    assert config.tls is not None and config.tls.ca == pki.ca.cert


@pytest.mark.parametrize("given", [["--ca_pem"], ["--ca_pem", "--key_pem"], ["--crt_pem"]])
def test_some_but_not_all_pem_files_is_an_error(tmp_path: Path, no_file: Path, given: list[str]) -> None:
    pki = write_pki(tmp_path / "certs")
    paths = {"--ca_pem": pki.ca_pem, "--crt_pem": pki.agent_pem, "--key_pem": pki.agent_key}
    argv = [part for flag in given for part in (flag, str(paths[flag]))]
    with pytest.raises(UsageError, match=r"missing certificate files.*not given"):
        parse(["-n", "a", *argv], default=no_file)


def test_insecure_and_tls_together_use_tls_with_a_notice(tmp_path: Path, no_file: Path) -> None:
    pki = write_pki(tmp_path / "certs")
    config = parse(["-n", "a", "-k", *pki.flags()], default=no_file)
    assert config.tls is not None
    assert config.notices == ("--insecure and TLS certificates are both given; using TLS",)


@pytest.mark.parametrize(
    ("protocol", "tls", "dialects"),
    [
        ("auto", False, (ProtocolChoice.V1, ProtocolChoice.V0_3)),
        ("auto", True, (ProtocolChoice.V1,)),
        ("v0.3", False, (ProtocolChoice.V0_3,)),
        ("v1", True, (ProtocolChoice.V1,)),
    ],
)
def test_dialects_a_connection_may_speak(
    tmp_path: Path, no_file: Path, protocol: str, tls: bool, dialects: tuple[ProtocolChoice, ...]
) -> None:
    argv = ["-n", "a", "--protocol", protocol]
    argv += write_pki(tmp_path / "certs").flags() if tls else ["-k"]
    assert parse(argv, default=no_file).dialects == dialects


def test_cli_logs_notices_and_tls_errors_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = write_pki(tmp_path / "certs")
    pki.agent_key.chmod(0o644)
    assert cli.main(["-n", "a", *pki.flags()]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "insecure permissions 0644" in err and "Traceback" not in err
    # The same for a TLS setting with an http:// URL.
    pki.agent_key.chmod(0o600)
    assert cli.main(["-n", "a", "-s", "http://127.0.0.1:1", *pki.flags()]) == 2
    assert "must be https://" in capsys.readouterr().err
    # A notice is logged as a warning once logging is set up; the run folder then fails (exit 1).
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["-n", "a+b", "-r", str(blocker)]) == 1
    err = capsys.readouterr().err
    assert "WARNING" in err and "v1.0.1 server does not expect" in err


# --- v1.0.1 control interface: strict authorization is opt-in ---------------------------------


@pytest.mark.parametrize(
    ("argv", "env", "file_line", "expected"),
    [
        ([], {}, "", False),  # the reference's decisions by default
        (["--strict-authorization"], {}, "", True),
        ([], {"ANKAGENT_STRICT_AUTHORIZATION": "true"}, "", True),
        ([], {"ANKAGENT_STRICT_AUTHORIZATION": "false"}, "strict_authorization = true", False),
        ([], {}, "strict_authorization = true", True),
        (["--strict-authorization"], {"ANKAGENT_STRICT_AUTHORIZATION": "false"}, "", True),
    ],
)
def test_strict_authorization_sources(
    tmp_path: Path, argv: list[str], env: dict[str, str], file_line: str, expected: bool
) -> None:
    conf = _conf(tmp_path, f"version = 'v1'\nname = 'a'\n{file_line}\n")
    assert parse(argv, env, default=conf).strict_authorization is expected


def test_strict_authorization_in_the_file_must_be_a_boolean(tmp_path: Path) -> None:
    conf = _conf(tmp_path, "version = 'v1'\nname = 'a'\nstrict_authorization = 'yes'\n")
    with pytest.raises(UsageError, match="strict_authorization"):
        parse([], default=conf)
