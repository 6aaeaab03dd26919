"""CommandOptions reach the real container: checked on Podman's inspect data."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ankaios_agent.agent.model import ExecutionState
from ankaios_agent.agent.ports import CreateRequest
from tests.integration.podman.conftest import Harness

pytestmark = pytest.mark.podman

# Podman's inspect output is untyped JSON; the checks below index into it freely.
Inspect = dict[str, Any]


def config(data: Inspect) -> dict[str, Any]:
    section: dict[str, Any] = data["Config"]
    return section


def host(data: Inspect) -> dict[str, Any]:
    section: dict[str, Any] = data["HostConfig"]
    return section


# (options, description, check on the inspect data). Options are combined into one container;
# ulimits name nproc too because setting any ulimit here drops the containers.conf defaults.
TABLE: list[tuple[list[str], str, Callable[[Inspect], bool]]] = [
    (["-e", "A=1", "--env=B=2"], "env", lambda d: {"A=1", "B=2"} <= set(config(d)["Env"])),
    (["-w", "/tmp"], "workdir", lambda d: config(d)["WorkingDir"] == "/tmp"),
    (["--user=65534"], "user", lambda d: config(d)["User"] == "65534"),
    (["-h", "box"], "hostname", lambda d: config(d)["Hostname"] == "box"),
    (["-l", "tier=web"], "label", lambda d: config(d)["Labels"]["tier"] == "web"),
    (["--read-only"], "read-only", lambda d: host(d)["ReadonlyRootfs"] is True),
    (["--cap-add", "NET_ADMIN"], "cap-add", lambda d: "CAP_NET_ADMIN" in host(d)["CapAdd"]),
    (["--cap-drop", "CHOWN"], "cap-drop", lambda d: "CAP_CHOWN" in host(d)["CapDrop"]),
    (["--tmpfs", "/scratch:size=1m"], "tmpfs", lambda d: "size=1m" in host(d)["Tmpfs"]["/scratch"]),
    (
        ["--ulimit", "nofile=512:1024", "--ulimit=nproc=100:200"],
        "ulimit",
        lambda d: {"Name": "RLIMIT_NOFILE", "Soft": 512, "Hard": 1024} in host(d)["Ulimits"],
    ),
    (["--stop-signal", "SIGINT"], "stop-signal", lambda d: config(d)["StopSignal"] == 2),
    (["--stop-timeout", "3"], "stop-timeout", lambda d: config(d)["StopTimeout"] == 3),
    (
        ["--entrypoint", "/bin/sh"],
        "entrypoint",
        lambda d: config(d)["Entrypoint"] in ("/bin/sh", ["/bin/sh"]),
    ),
    (["--add-host", "db:10.0.0.2"], "add-host", lambda d: host(d)["ExtraHosts"] == ["db:10.0.0.2"]),
    (["--dns", "1.1.1.1"], "dns", lambda d: host(d)["Dns"] == ["1.1.1.1"]),
    (["--shm-size", "32m"], "shm-size", lambda d: host(d)["ShmSize"] == 32 * 1024 * 1024),
    (
        ["--security-opt", "no-new-privileges"],
        "security-opt",
        lambda d: "no-new-privileges" in host(d)["SecurityOpt"],
    ),
    (["-t", "-i"], "tty+interactive", lambda d: config(d)["Tty"] is True and config(d)["OpenStdin"] is True),
    (
        ["--health-cmd", "true", "--health-interval=30s"],
        "health",
        lambda d: config(d)["Healthcheck"]["Test"] == ["CMD-SHELL", "true"],
    ),
    (
        ["--log-driver", "k8s-file", "--log-opt", "max-size=1m"],
        "log",
        lambda d: host(d)["LogConfig"]["Type"] == "k8s-file",
    ),
    (["-v", "/tmp:/hosttmp:ro"], "volume", lambda d: "/tmp:/hosttmp:ro,rprivate,rbind" in host(d)["Binds"]),
    (["--mount", "type=tmpfs,destination=/t2"], "mount", lambda d: "/t2" in host(d)["Tmpfs"]),
    (["--pull", "missing"], "pull", lambda d: True),
]
# Root only: rootless Podman here cannot exec the bind-mounted catatonit ("stat /run/podman-init:
# permission denied"), it bind-mounts devices, so inspect lists no Devices, and on cgroup v1 it
# cannot apply resource limits, so it drops --memory and --cpus.
ROOT_ONLY_TABLE: list[tuple[list[str], str, Callable[[Inspect], bool]]] = [
    (["-m", "64m"], "memory", lambda d: host(d)["Memory"] == 64 * 1024 * 1024),
    (["--cpus", "0.5"], "cpus", lambda d: (host(d)["CpuQuota"], host(d)["CpuPeriod"]) == (50_000, 100_000)),
    (["--init"], "init", lambda d: host(d)["Init"] is True),
    (
        ["--device", "/dev/null:/dev/mynull"],
        "device",
        lambda d: host(d)["Devices"][0]["PathInContainer"] == "/dev/mynull",
    ),
]


async def test_options_are_visible_in_the_containers_inspect_data(harness: Harness) -> None:
    """Every supported option, table-driven, checked where Podman exposes it."""
    options = [token for row in TABLE for token in row[0]]
    instance = harness.instance()
    cid = await harness.runtime.create(CreateRequest(harness.spec(instance, ["-c", "sleep 30"], options)))
    data = harness.env.inspect(cid)
    failed = [name for _, name, check in TABLE if not check(data)]
    assert failed == []


@pytest.mark.root
async def test_root_only_options_are_visible_in_the_containers_inspect_data(harness: Harness) -> None:
    """--init, --device, --memory and --cpus reach the container (root only, see ROOT_ONLY_TABLE)."""
    options = [token for row in ROOT_ONLY_TABLE for token in row[0]]
    instance = harness.instance()
    cid = await harness.runtime.create(CreateRequest(harness.spec(instance, ["-c", "sleep 30"], options)))
    data = harness.env.inspect(cid)
    failed = [name for _, name, check in ROOT_ONLY_TABLE if not check(data)]
    assert failed == []


@pytest.mark.root  # rootless: no /dev/mqueue to share with --ipc host in this sandbox
async def test_host_namespaces_privileged_and_rm(harness: Harness) -> None:
    """--ipc/--pid host, --privileged and --rm reach the container.

    Podman 4.3's inspect reports IpcMode "shareable" even for --ipc host, so the
    container itself compares its IPC namespace with the host's.
    """
    instance = harness.instance()
    host_ipc = os.readlink("/proc/self/ns/ipc")
    options = ["--ipc", "host", "--pid=host", "--privileged", "--rm"]
    script = f'test "$(readlink /proc/self/ns/ipc)" = "{host_ipc}" && sleep 2'
    cid = await harness.runtime.create(CreateRequest(harness.spec(instance, ["sh", "-c", script], options)))
    hc = host(harness.env.inspect(cid))
    assert (hc["PidMode"], hc["Privileged"], hc["AutoRemove"]) == ("host", True, True)
    await harness.recorder.wait_state(instance, ExecutionState.succeeded())


async def test_env_file_and_user_name_reach_the_process(harness: Harness, tmp_path: Path) -> None:
    """--env-file is read by the agent; the process sees the variables."""
    env_file = tmp_path / "w.env"
    env_file.write_text("GREETING=hello\n")
    instance = harness.instance()
    script = 'test "$GREETING" = hello'
    await harness.runtime.create(
        CreateRequest(harness.spec(instance, ["sh", "-c", script], ["--env-file", str(env_file)]))
    )
    await harness.recorder.wait_state(instance, ExecutionState.succeeded())
