"""CommandOptions → libpod create specification."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from ankaios_agent.agent.errors import WorkloadConfigError
from ankaios_agent.agent.model import InstanceName
from ankaios_agent.runtimes.podman.option_values import parse_duration_ns, parse_size
from ankaios_agent.runtimes.podman.options import (
    ENV_FILE_MAX_BYTES,
    CreateOptions,
    read_env_files,
    translate,
    translate_general,
)

INSTANCE = InstanceName("wl", "agent_A", "1")
AGENT_LABELS = {"name": "wl.1.agent_A", "agent": "agent_A"}


def spec_of(*tokens: str) -> dict[str, object]:
    return translate(INSTANCE, tokens).to_spec("img", [], "wl.1.agent_A", dict(AGENT_LABELS))


# Each row: option tokens, the spec keys/values they must produce.
CASES: list[tuple[tuple[str, ...], dict[str, object]]] = [
    (("-p", "8080:80"), {"portmappings": [{"container_port": 80, "protocol": "tcp", "host_port": 8080}]}),
    (
        ("--publish=127.0.0.1:53:53/udp",),
        {
            "portmappings": [
                {"container_port": 53, "protocol": "udp", "host_port": 53, "host_ip": "127.0.0.1"}
            ]
        },
    ),
    (("-p", "80"), {"portmappings": [{"container_port": 80, "protocol": "tcp"}]}),
    (
        ("-p", "8000-8002:9000-9002"),
        {"portmappings": [{"container_port": 9000, "protocol": "tcp", "host_port": 8000, "range": 3}]},
    ),
    (("-e", "A=1", "--env=B=x=y"), {"env": {"A": "1", "B": "x=y"}}),
    (
        ("-v", "/data:/data:ro,z"),
        {"mounts": [{"type": "bind", "source": "/data", "destination": "/data", "options": ["ro", "z"]}]},
    ),
    (("--volume", "vol1:/v"), {"volumes": [{"Name": "vol1", "Dest": "/v", "Options": []}]}),
    (("-v", "/anon"), {"volumes": [{"Name": "", "Dest": "/anon", "Options": []}]}),
    (
        ("--mount", "type=bind,source=/src,target=/dst,readonly"),
        {"mounts": [{"type": "bind", "source": "/src", "destination": "/dst", "options": ["readonly"]}]},
    ),
    (
        ("--mount=type=tmpfs,destination=/t,tmpfs-size=1m",),
        {"mounts": [{"type": "tmpfs", "source": "tmpfs", "destination": "/t", "options": ["tmpfs-size=1m"]}]},
    ),
    (("--mount", "type=volume,src=v2,dst=/v2"), {"volumes": [{"Name": "v2", "Dest": "/v2", "Options": []}]}),
    (("--network", "none"), {"netns": {"nsmode": "none"}}),
    (("--net=host",), {"netns": {"nsmode": "host"}}),
    (("--network", "container:abc"), {"netns": {"nsmode": "container", "value": "abc"}}),
    (("--network", "mynet"), {"netns": {"nsmode": "bridge"}, "networks": {"mynet": {}}}),
    (("--name", "custom"), {"name": "custom"}),
    (("-u", "1000:1000"), {"user": "1000:1000"}),
    (("--user=nobody",), {"user": "nobody"}),
    (("-w", "/tmp"), {"work_dir": "/tmp"}),
    (("--workdir=/srv",), {"work_dir": "/srv"}),
    (("--entrypoint", "/bin/sh"), {"entrypoint": ["/bin/sh"]}),
    (("-h", "box"), {"hostname": "box"}),
    (("--hostname=box2",), {"hostname": "box2"}),
    (("-l", "tier=web", "--label=empty"), {"labels": {"tier": "web", "empty": "", **AGENT_LABELS}}),
    (("--cap-add", "NET_ADMIN", "--cap-add=SYS_TIME"), {"cap_add": ["NET_ADMIN", "SYS_TIME"]}),
    (("--cap-drop", "ALL"), {"cap_drop": ["ALL"]}),
    (("--device", "/dev/null:/dev/mynull"), {"devices": [{"path": "/dev/null:/dev/mynull"}]}),
    (("-m", "64m"), {"resource_limits": {"memory": {"limit": 64 * 1024 * 1024}}}),
    (("--memory=1g",), {"resource_limits": {"memory": {"limit": 1024**3}}}),
    (("--cpus", "1.5"), {"resource_limits": {"cpu": {"period": 100_000, "quota": 150_000}}}),
    (("--read-only",), {"read_only_filesystem": True}),
    (("--read-only=false",), {"read_only_filesystem": False}),
    (
        ("--tmpfs", "/run:size=1m,mode=1777"),
        {
            "mounts": [
                {
                    "type": "tmpfs",
                    "source": "tmpfs",
                    "destination": "/run",
                    "options": ["size=1m", "mode=1777"],
                }
            ]
        },
    ),
    (("--add-host", "db:10.0.0.2"), {"hostadd": ["db:10.0.0.2"]}),
    (("--dns", "1.1.1.1", "--dns=8.8.8.8"), {"dns_server": ["1.1.1.1", "8.8.8.8"]}),
    (("--init",), {"init": True}),
    (("--privileged",), {"privileged": True}),
    (("--security-opt", "no-new-privileges"), {"no_new_privileges": True}),
    (("--security-opt", "label=disable"), {"selinux_opts": ["disable"]}),
    (("--security-opt=seccomp=unconfined",), {"seccomp_profile_path": "unconfined"}),
    (("--security-opt", "apparmor=unconfined"), {"apparmor_profile": "unconfined"}),
    (("--ulimit", "nofile=512:1024"), {"r_limits": [{"type": "nofile", "soft": 512, "hard": 1024}]}),
    (("--ulimit=nproc=100",), {"r_limits": [{"type": "nproc", "soft": 100, "hard": 100}]}),
    (("--userns", "keep-id"), {"userns": {"nsmode": "keep-id"}}),
    (("--userns=host",), {"userns": {"nsmode": "host"}}),
    (("--rm",), {"remove": True}),
    (("-t",), {"terminal": True}),
    (("--tty",), {"terminal": True}),
    (("-i",), {"stdin": True}),
    (("--interactive",), {"stdin": True}),
    (("-it",), {"terminal": True, "stdin": True}),
    (("-it=false",), {"terminal": False, "stdin": True}),
    (("--pod", "mypod"), {"pod": "mypod"}),
    (("--ipc", "host"), {"ipcns": {"nsmode": "host"}}),
    (("--ipc=shareable",), {"ipcns": {"nsmode": "shareable"}}),
    (("--pid", "host"), {"pidns": {"nsmode": "host"}}),
    (("--pid=container:abc",), {"pidns": {"nsmode": "container", "value": "abc"}}),
    (("--shm-size", "128m"), {"shm_size": 128 * 1024 * 1024}),
    (("--stop-signal", "SIGINT"), {"stop_signal": int(signal.SIGINT)}),
    (("--stop-signal=KILL",), {"stop_signal": int(signal.SIGKILL)}),
    (("--stop-timeout", "3"), {"stop_timeout": 3}),
    (("--log-driver", "k8s-file"), {"log_configuration": {"driver": "k8s-file", "options": {}}}),
    (("--log-opt", "tag=web"), {"log_configuration": {"options": {"tag": "web"}}}),
    (("--log-opt=max-size=1m",), {"log_configuration": {"options": {}, "size": 1024 * 1024}}),
    (
        (
            "--health-cmd",
            "true",
            "--health-interval=30s",
            "--health-timeout",
            "1m30s",
            "--health-start-period=500ms",
            "--health-retries",
            "3",
        ),
        {
            "healthconfig": {
                "Test": ["CMD-SHELL", "true"],
                "Interval": 30 * 10**9,
                "Timeout": 90 * 10**9,
                "StartPeriod": 500 * 10**6,
                "Retries": 3,
            }
        },
    ),
    (("-d",), {}),
    (("--detach",), {}),
    (("-p8080:80",), {"portmappings": [{"container_port": 80, "protocol": "tcp", "host_port": 8080}]}),
    (("-p=8081:80",), {"portmappings": [{"container_port": 80, "protocol": "tcp", "host_port": 8081}]}),
    (
        ("-itp", "9:9"),
        {
            "terminal": True,
            "stdin": True,
            "portmappings": [{"container_port": 9, "protocol": "tcp", "host_port": 9}],
        },
    ),
]


@pytest.mark.parametrize(("tokens", "expected"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_supported_option_sets_create_spec_field(
    tokens: tuple[str, ...], expected: dict[str, object]
) -> None:
    """Every supported option, in --opt value / --opt=value / short forms."""
    spec = spec_of(*tokens)
    for key, value in expected.items():
        assert spec[key] == value, key


def test_no_options_give_agent_name_labels_and_image_only() -> None:
    """Container name and the two agent labels."""
    assert spec_of() == {"image": "img", "name": "wl.1.agent_A", "labels": AGENT_LABELS}


def test_user_name_wins_but_agent_labels_win_over_user_labels() -> None:
    """--name in commandOptions wins; the agent's --label come last on the CLI, so they win."""
    spec = spec_of("--name", "mine", "-l", "agent=evil", "-l", "name=evil")
    assert spec["name"] == "mine"
    assert spec["labels"] == AGENT_LABELS


def test_pull_policy_defaults_to_missing_and_accepts_all_four() -> None:
    assert translate(INSTANCE, []).pull == "missing"
    for policy in ("always", "missing", "never", "newer"):
        assert translate(INSTANCE, ["--pull", policy]).pull == policy
        assert translate(INSTANCE, [f"--pull={policy}"]).pull == policy


def test_env_without_value_takes_the_agents_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANK_TEST_VALUE", "from-agent")
    assert spec_of("-e", "ANK_TEST_VALUE")["env"] == {"ANK_TEST_VALUE": "from-agent"}


def test_env_file_is_read_at_create(tmp_path: Path) -> None:
    env_file = tmp_path / "vars.env"
    env_file.write_text("# comment\n\nA=1\nB=two words\n")
    opts = translate(INSTANCE, ["--env-file", str(env_file)])
    assert opts.env_files == [str(env_file)]
    assert read_env_files(INSTANCE, opts.env_files) == {"A": "1", "B": "two words"}


def test_env_option_wins_over_env_file_as_with_the_cli(tmp_path: Path) -> None:
    first, second = tmp_path / "first.env", tmp_path / "second.env"
    first.write_text("A=file1\nB=file1\nC=file1\n")
    second.write_text("B=file2\n")
    opts = translate(INSTANCE, ["-e", "A=option", "--env-file", str(first), f"--env-file={second}"])
    assert read_env_files(INSTANCE, opts.env_files) == {"A": "file1", "B": "file2", "C": "file1"}
    assert opts.env == {"A": "option"}


def test_translation_never_opens_the_env_file(tmp_path: Path) -> None:
    """Translation runs on the event loop; a FIFO named there must not be opened by it."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert translate(INSTANCE, ["--env-file", str(fifo)]).env_files == [str(fifo)]


def _fifo(tmp_path: Path) -> str:
    os.mkfifo(tmp_path / "fifo")
    return str(tmp_path / "fifo")


def _sparse_gib(tmp_path: Path) -> str:
    path = tmp_path / "huge.env"
    with path.open("wb") as stream:
        stream.truncate(1024**3)
    return str(path)


def _just_over_limit(tmp_path: Path) -> str:
    path = tmp_path / "big.env"
    path.write_bytes(b"A=" + b"x" * (ENV_FILE_MAX_BYTES - 2) + b"\n")
    return str(path)


def _latin1(tmp_path: Path) -> str:
    path = tmp_path / "latin1.env"
    path.write_bytes("A=caf\xe9\n".encode("latin-1"))
    return str(path)


@pytest.mark.parametrize(
    ("make_path", "message"),
    [
        (lambda tmp: "/nonexistent/ank.env", "cannot read env file '/nonexistent/ank.env'"),
        (_fifo, "is not a regular file"),
        (lambda tmp: "/dev/zero", "env file '/dev/zero' is not a regular file"),
        (str, "is not a regular file"),
        (_sparse_gib, f"is larger than the limit of {ENV_FILE_MAX_BYTES} bytes"),
        (_just_over_limit, f"is larger than the limit of {ENV_FILE_MAX_BYTES} bytes"),
        (_latin1, "is not UTF-8 text"),
    ],
)
def test_unusable_env_file_is_a_config_error_naming_it(
    tmp_path: Path, make_path: Callable[[Path], str], message: str
) -> None:
    """Only a regular file of at most 1 MiB is read; a FIFO or a device never blocks the read."""
    path = make_path(tmp_path)
    with pytest.raises(WorkloadConfigError) as info:
        read_env_files(INSTANCE, [path])
    assert info.value.reason.startswith("podman option '--env-file': ")
    assert message in info.value.reason


def test_env_file_at_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "limit.env"
    path.write_bytes(b"A=" + b"x" * (ENV_FILE_MAX_BYTES - 3) + b"\n")
    assert read_env_files(INSTANCE, [str(path)]) == {"A": "x" * (ENV_FILE_MAX_BYTES - 3)}


def test_restart_is_refused_because_the_agent_owns_restarts() -> None:
    """--restart is rejected; restartPolicy is the agent's job."""
    with pytest.raises(WorkloadConfigError, match=r"'--restart' is not allowed.*restartPolicy"):
        translate(INSTANCE, ["--restart", "always"])


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (["--gpus", "all"], "unsupported podman option '--gpus'"),
        (["-x"], "unsupported podman option '-x'"),
        (["-iz"], "unsupported podman option '-z'"),
        (["nginx"], "unexpected argument 'nginx'"),
        (["-p"], "'-p' needs a value"),
        (["--env"], "'--env' needs a value"),
        (["--memory", "lots"], "'--memory': invalid size 'lots'"),
        (["-p", "http"], "'-p': invalid port 'http'"),
        (["-p", "1-3:1-2"], "different length"),
        (["--pull", "sometimes"], "invalid pull policy 'sometimes'"),
        (["--rm=maybe"], "'--rm': expected true or false"),
        (["--stop-signal", "NOPE"], "unknown signal 'NOPE'"),
        (["--ulimit", "nofile"], "'--ulimit'"),
        (["--security-opt", "weird"], "unsupported security option 'weird'"),
        (["--mount", "type=bind,target=/x"], "needs source="),
        (["--mount", "type=nfs,target=/x"], "unsupported mount type 'nfs'"),
        (["--health-interval", "soon"], "invalid duration 'soon'"),
        (["--env-file="], "'--env-file': needs a file path"),
        (["--userns", "bogus"], "unsupported namespace mode 'bogus'"),
    ],
)
def test_bad_option_gives_error_naming_the_option(tokens: list[str], message: str) -> None:
    """Anything unsupported or malformed is a create error naming the option."""
    with pytest.raises(WorkloadConfigError) as info:
        translate(INSTANCE, tokens)
    assert message in info.value.reason


def test_health_options_without_health_cmd_are_an_error() -> None:
    with pytest.raises(ValueError, match="--health-cmd"):
        spec_of("--health-retries", "3")


def test_general_log_level_is_ignored_runtime_is_applied_others_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """GeneralOptions that make sense over REST are accepted, the rest refused."""
    opts = CreateOptions()
    translate_general(INSTANCE, ["--log-level", "debug", "--syslog", "--runtime=runc"], opts)
    assert opts.oci_runtime == "runc"
    assert "has no effect" in caplog.text
    with pytest.raises(WorkloadConfigError, match="generalOptions '--root'"):
        translate_general(INSTANCE, ["--root", "/x"], CreateOptions())
    with pytest.raises(WorkloadConfigError, match="'--log-level' needs a value"):
        translate_general(INSTANCE, ["--log-level"], CreateOptions())


def test_size_and_duration_parsers() -> None:
    assert parse_size("512") == 512
    assert parse_size("2k") == 2048
    assert parse_size("1.5g") == int(1.5 * 1024**3)
    assert parse_duration_ns("1h2m3s") == (3600 + 120 + 3) * 10**9
    assert parse_duration_ns("250us") == 250_000
