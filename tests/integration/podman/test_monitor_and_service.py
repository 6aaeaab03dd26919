"""Monitoring and Podman connection against real Podman."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ankaios_agent.agent.errors import RuntimeUnavailable
from ankaios_agent.agent.model import ExecutionState, InstanceName, State
from ankaios_agent.agent.ports import CreateRequest, StateChange
from ankaios_agent.runtimes.podman.client import PodmanConnection, PrivateService, ping
from ankaios_agent.runtimes.podman.monitor import PodmanEvent
from ankaios_agent.runtimes.podman.runtime import PodmanRuntime
from tests.integration.podman.conftest import Harness, busybox_spec, fast_timings
from tests.server_double import ServerDouble
from tests.support.podman_env import PodmanEnv

pytestmark = pytest.mark.podman


async def test_exit_is_reported_milliseconds_after_podman_records_it(harness: Harness) -> None:
    """Exits come from the event stream; prints the latency (not asserted)."""
    latencies: list[float] = []

    def observe(change: StateChange, event: object | None) -> None:
        if isinstance(event, PodmanEvent) and event.action == "died" and event.time_ns:
            latencies.append((time.time_ns() - event.time_ns) / 1e6)

    harness.runtime.monitor.on_change = observe
    instance = harness.instance()
    await harness.runtime.create(CreateRequest(harness.spec(instance, ["sh", "-c", "sleep 0.2; exit 4"])))
    await harness.recorder.wait_state(instance, ExecutionState.exec_failed(4))
    assert latencies, "the exit state must come from the died event"
    print(f"exit detection latency (died timeNano -> state change): {latencies[0]:.1f} ms")


async def test_existing_containers_are_reported_at_subscription(podman_env: PodmanEnv) -> None:
    """Runtime protocol: the first item for an existing instance is its state at subscription time."""
    agent = f"adopt{uuid.uuid4().hex[:8]}"
    runtime = PodmanRuntime(PodmanConnection(podman_env.socket_url), agent, fast_timings())
    instance = InstanceName("adopted", agent, "1")
    try:
        cid = await runtime.create(CreateRequest(busybox_spec(podman_env, instance, ["sleep", "60"])))
        fresh = PodmanRuntime(PodmanConnection(podman_env.socket_url), agent, fast_timings())
        stream = fresh.events()
        change = await asyncio.wait_for(anext(stream), 30)
        await stream.aclose()  # type: ignore[attr-defined]
        assert change == StateChange(instance, cid, ExecutionState.running())
    finally:
        podman_env.remove_by_label(f"agent={agent}")


async def test_exit_during_service_outage_is_reported_when_podman_is_back(harness: Harness) -> None:
    """The stream is lost and recovered (service restarted) without a missed exit."""
    instance = harness.instance()
    cid = await harness.runtime.create(CreateRequest(harness.spec(instance, ["sleep", "60"])))
    await harness.recorder.wait_state(instance, ExecutionState.running())
    harness.env.stop_service()
    try:
        await asyncio.sleep(0.3)
        harness.env.podman("kill", "--signal", "KILL", cid)  # exits while nobody serves the socket
    finally:
        harness.env.start_service()
    change = await harness.recorder.wait_for(
        lambda c: c.instance == instance and c.state.state is State.FAILED_EXEC_FAILED
    )
    assert change.state.info == "Exit code: '137'"
    assert change.runtime_id == cid


async def test_long_outage_reports_failed_unknown_then_recovers(harness: Harness) -> None:
    """Past the grace period Failed(Unknown) with the reference text, then real states."""
    instance = harness.instance()
    await harness.runtime.create(CreateRequest(harness.spec(instance, ["sleep", "60"])))
    await harness.recorder.wait_state(instance, ExecutionState.running())
    harness.env.stop_service()
    try:
        await harness.recorder.wait_state(
            instance, ExecutionState.unknown("Error getting state from Podman.")
        )
    finally:
        harness.env.start_service()
    count = len(harness.recorder.states_of(instance))
    await harness.recorder.wait_for(
        lambda c: (
            c.instance == instance
            and c.state == ExecutionState.running()
            and len(harness.recorder.states_of(instance)) > count
        )
    )


def test_discovery_starts_private_service_when_no_socket_answers(tmp_path: Path) -> None:
    """Nothing answers → private `podman system service` in the run folder, stopped on close."""
    run_folder = Path(f"/tmp/ank-disc-{uuid.uuid4().hex[:8]}")  # short path: unix sockets allow 108 bytes
    env = {"CONTAINER_HOST": f"unix://{tmp_path}/nothing.sock", **{k: os.environ[k] for k in ("PATH",)}}
    connection = PodmanConnection.discover(None, run_folder, env=env, uid=os.getuid())
    try:
        assert connection.service is not None
        assert connection.url == f"unix://{run_folder}/podman.sock"
        assert ping(connection.url)
        process = connection.service.process
        assert process is not None
    finally:
        connection.close()
    assert process.poll() is not None
    assert not (run_folder / "podman.sock").exists()


def test_discovery_uses_an_answering_socket(podman_env: PodmanEnv, tmp_path: Path) -> None:
    connection = PodmanConnection.discover(podman_env.socket_url, tmp_path)
    assert connection.service is None
    assert connection.url == podman_env.socket_url
    env = {"CONTAINER_HOST": podman_env.socket_url}
    assert PodmanConnection.discover(None, tmp_path, env=env).url == podman_env.socket_url


def test_explicit_socket_that_does_not_answer_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeUnavailable, match="does not answer"):
        PodmanConnection.discover(str(tmp_path / "none.sock"), tmp_path)


def service_processes(socket_path: Path) -> dict[int, int]:
    """pid -> parent pid of every live ``podman system service`` process serving ``socket_path``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state, ppid = (entry / "stat").read_text().rpartition(")")[2].split()[:2]
        except (OSError, ValueError):
            continue
        if state != "Z" and b"service" in argv and f"unix://{socket_path}".encode() in argv:
            found[int(entry.name)] = int(ppid)
    return found


def services_on(socket_path: Path) -> list[int]:
    """One pid per service serving ``socket_path`` (rootless Podman may run as a parent that
    re-executed itself into a user namespace, with the same command line)."""
    processes = service_processes(socket_path)
    return sorted(pid for pid, ppid in processes.items() if ppid not in processes)


@pytest.fixture
def short_run_folder() -> Iterator[Path]:
    folder = Path(f"/tmp/ank-svc-{uuid.uuid4().hex[:8]}")  # short path: unix sockets allow 108 bytes
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def nowhere_env(folder: Path) -> dict[str, str]:
    """An environment in which discovery finds no socket that answers, so a private service is due."""
    env = {k: v for k, v in os.environ.items() if k != "CONTAINER_HOST"}
    env["CONTAINER_HOST"] = f"unix://{folder}/nothing.sock"
    return env


async def wait_for(predicate: object, bound_s: float = 60.0) -> None:
    """Poll ``predicate`` (processes coming and going give no event to wait on) until it holds;
    the bound only stops a hung test."""
    assert callable(predicate)
    async with asyncio.timeout(bound_s):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.1)


async def test_sigkilled_agent_takes_its_private_service_along(short_run_folder: Path) -> None:
    """An agent that had to start its own Podman service and is killed with SIGKILL (no clean-up
    at all) leaves no service behind; the next agent starts exactly one again."""
    agent = f"svc{uuid.uuid4().hex[:8]}"
    socket_path = short_run_folder / f"{agent}_io" / "podman.sock"
    server = ServerDouble()
    await server.start()
    command = [
        sys.executable, "-m", "ankaios_agent", "--name", agent, "--server", server.address,
        "--run-folder", str(short_run_folder),
    ]  # fmt: skip
    os.mkdir(short_run_folder)
    log_file = open(short_run_folder / "agent.log", "wb")  # noqa: ASYNC230, SIM115
    env = nowhere_env(short_run_folder)
    processes = []
    try:
        for _ in range(2):
            process = await asyncio.create_subprocess_exec(
                *command, stdout=log_file, stderr=subprocess.STDOUT, env=env
            )
            processes.append(process)
            await wait_for(lambda: services_on(socket_path) and ping(f"unix://{socket_path}", 1.0))
            service_pids = services_on(socket_path)
            assert len(service_pids) == 1
            process.kill()
            await process.wait()
            await wait_for(lambda: not services_on(socket_path))
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        for pid in services_on(socket_path):
            os.kill(pid, 9)
        log_file.close()
        await server.stop()


def test_discovery_reuses_a_service_left_on_the_private_socket(short_run_folder: Path) -> None:
    """A service still answering on the private socket (left by an earlier agent) is adopted
    instead of starting a second one, and stopped on close like one the agent started."""
    leftover = PrivateService.start(short_run_folder)
    try:
        connection = PodmanConnection.discover(None, short_run_folder, env=nowhere_env(short_run_folder))
        try:
            assert connection.service is not None
            assert connection.service.pid in service_processes(short_run_folder / "podman.sock")
            assert connection.service.process is None
            assert services_on(short_run_folder / "podman.sock") == [leftover.pid]
            assert ping(connection.url)
        finally:
            connection.close()
        assert leftover.process is not None
        assert leftover.process.wait(timeout=30) is not None
        assert services_on(short_run_folder / "podman.sock") == []
    finally:
        leftover.stop()
