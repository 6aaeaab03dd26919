"""The process around the connection: supervision, ordered shutdown, signals, exit while calls hang."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from ankaios_agent.agent.app import AgentManager, AppTimings, run_agent
from ankaios_agent.agent.config import AgentConfig, parse_args
from ankaios_agent.agent.fakes import FakeControlInterfaceHost
from ankaios_agent.agent.manager import Manager
from ankaios_agent.agent.ports import MessageSink
from ankaios_agent.agent.timings import AgentTimings
from ankaios_agent.proto import ankaios_pb2 as pb
from tests.integration.hanging_agent import HangingRuntime
from tests.integration.recording_agent import RecordingManager, recording_factory
from tests.server_double import ServerDouble
from tests.server_double.state import state_from_yaml
from tests.support.podman_env import PodmanEnv

ROOT = Path(__file__).resolve().parents[2]


async def test_stop_runs_ordered_shutdown_and_exits_0(
    server: ServerDouble, agent_name: str, tmp_path: Path
) -> None:
    """manager.shutdown, then the stream is cancelled (server: disconnected), exit 0."""
    config = parse_args(["-n", agent_name, "-s", server.address, "-r", str(tmp_path)], {})
    manager = RecordingManager()
    stop = asyncio.Event()
    task = asyncio.create_task(run_agent(config, recording_factory(manager), stop=stop, timings=AppTimings()))
    await server.wait_for_agent(agent_name)
    assert server.disconnects.get(agent_name, 0) == 0
    stop.set()
    assert await asyncio.wait_for(task, 5) == 0
    assert manager.calls[0] == "factory enter"
    assert manager.calls[-2:] == ["shutdown", "factory exit"]
    assert "on_connected" in manager.calls
    assert manager.run_cancelled
    await server.wait_until(lambda: server.disconnects.get(agent_name, 0) == 1)


async def test_manager_crash_is_logged_and_exits_1(
    server: ServerDouble, agent_name: str, tmp_path: Path
) -> None:
    """Only the top-level supervisor decides to exit; a dead top-level task -> exit 1."""
    config = parse_args(["-n", agent_name, "-s", server.address, "-r", str(tmp_path)], {})
    manager = RecordingManager(fail_run=True)
    assert await asyncio.wait_for(run_agent(config, recording_factory(manager)), 5) == 1
    assert manager.calls[-2:] == ["shutdown", "factory exit"]


def _spawn(args: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRPC_VERBOSITY": "ERROR"}
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


async def _wait_connected(server: ServerDouble, agent: str, proc: subprocess.Popen[str]) -> None:
    """Wait for the agent's hello; fail at once (with its stderr) if the process ends first."""
    deadline = time.monotonic() + 20
    while agent not in server.connected_agents:
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"the agent did not connect (exit {proc.returncode}); stderr:\n{err}")
        try:
            await server.wait_for_agent(agent, timeout=0.2)
        except TimeoutError:
            continue


async def _sigterm_and_wait(proc: subprocess.Popen[str]) -> tuple[int, str, str, float]:
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.to_thread(proc.communicate, timeout=10)
    return proc.returncode, out, err, time.monotonic() - start


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_exits_0_and_server_sees_disconnect(
    server: ServerDouble, agent_name: str, tmp_path: Path, sig: signal.Signals
) -> None:
    """SIGTERM/SIGINT -> stream cancelled (AgentDisconnected), exit 0 (time printed)."""
    proc = _spawn(
        [
            "-m",
            "tests.integration.recording_agent",
            "-n",
            agent_name,
            "-s",
            server.address,
            "-r",
            str(tmp_path),
        ]
    )
    try:
        await _wait_connected(server, agent_name, proc)
        start = time.monotonic()
        proc.send_signal(sig)
        out, err = await asyncio.to_thread(proc.communicate, timeout=10)
        print(f"\n{sig.name}: exited {proc.returncode} after {time.monotonic() - start:.3f} s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.splitlines()[-2:] == ["shutdown", "factory exit"]
    assert "Traceback" not in err
    await server.wait_until(lambda: server.disconnects.get(agent_name, 0) == 1)


@pytest.mark.podman
async def test_real_cli_sigterm_exits_0(
    server: ServerDouble, agent_name: str, tmp_path: Path, podman_env: PodmanEnv
) -> None:
    """`ank-agent --name X --server host:port` connects, SIGTERM ends it with 0."""
    args = [
        "-m",
        "ankaios_agent",
        "--name",
        agent_name,
        "--server",
        server.address,
        "--run-folder",
        str(tmp_path),
    ]
    args += ["--podman-socket", podman_env.socket_url]
    proc = _spawn(args)
    try:
        await _wait_connected(server, agent_name, proc)
        code, _, err, took = await _sigterm_and_wait(proc)
        print(f"\nank-agent exited {code} {took:.3f} s after SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0, err
    assert "Traceback" not in err
    await server.wait_until(lambda: server.disconnects.get(agent_name, 0) == 1)


def _hanging_state(agent: str) -> pb.State:
    return state_from_yaml(
        "apiVersion: v0.1\nworkloads:\n"
        f"  stuck:\n    runtime: podman\n    agent: {agent}\n"
        "    runtimeConfig: |\n      image: never/pulled\n"
    )


async def test_stop_does_not_wait_for_a_hanging_engine_call(agent_name: str, tmp_path: Path) -> None:
    """A create parked in its worker thread does not keep run_agent from returning 0."""
    server = ServerDouble(_hanging_state(agent_name))
    await server.start()
    runtime = HangingRuntime()

    @asynccontextmanager
    async def factory(config: AgentConfig, sink: MessageSink) -> AsyncIterator[AgentManager]:
        yield Manager(config.name, {"podman": runtime}, FakeControlInterfaceHost(), sink, AgentTimings())

    config = parse_args(["-n", agent_name, "-s", server.address, "-r", str(tmp_path)], {})
    stop = asyncio.Event()
    task = asyncio.create_task(run_agent(config, factory, stop=stop))
    try:
        assert await asyncio.to_thread(runtime.some_call_parked.wait, 30)
        assert runtime.parked == ["create stuck"]
        stop.set()
        assert await asyncio.wait_for(task, 5) == 0
        assert runtime.parked == ["create stuck"]  # still parked: nobody waited for it
    finally:
        runtime.release()
        await server.stop()


async def _read_until(proc: subprocess.Popen[str], wanted: str) -> None:
    assert proc.stdout is not None
    while True:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
        if not line:
            _, err = proc.communicate()
            pytest.fail(
                f"the agent ended before printing {wanted!r} (exit {proc.returncode}); stderr:\n{err}"
            )
        if line.strip() == wanted:
            return


async def test_sigterm_exits_0_within_2_s_while_a_create_hangs(agent_name: str, tmp_path: Path) -> None:
    """Shutdown does not wait for an engine call in flight: the process is gone within 2 s of SIGTERM."""
    server = ServerDouble(_hanging_state(agent_name))
    await server.start()
    args = ["-m", "tests.integration.hanging_agent", "-n", agent_name, "-s", server.address]
    proc = _spawn([*args, "-r", str(tmp_path)])
    try:
        await _wait_connected(server, agent_name, proc)
        await _read_until(proc, "create blocked stuck")
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = await asyncio.to_thread(proc.communicate, timeout=2.0)
        except subprocess.TimeoutExpired:
            pytest.fail("the agent was still running 2 s after SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await server.stop()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


@pytest.mark.podman
async def test_real_cli_sigterm_exits_0_within_2_s_while_a_pull_hangs(
    agent_name: str, tmp_path: Path, podman_env: PodmanEnv
) -> None:
    """`ank-agent` with a workload whose image pull cannot finish (its registry accepts the
    connection and never answers): SIGTERM still ends the process with 0 within 2 s."""
    registry = socket.socket()
    registry.bind(("127.0.0.1", 0))
    registry.listen(8)  # connections complete in the kernel's backlog and then hear nothing
    port = registry.getsockname()[1]
    server = ServerDouble(
        state_from_yaml(
            "apiVersion: v0.1\nworkloads:\n"
            f"  stuck:\n    runtime: podman\n    agent: {agent_name}\n"
            f"    runtimeConfig: |\n      image: 127.0.0.1:{port}/never/pulled:1\n"
        )
    )
    await server.start()
    args = ["-m", "ankaios_agent", "--name", agent_name, "--server", server.address]
    proc = _spawn([*args, "--run-folder", str(tmp_path), "--podman-socket", podman_env.socket_url])
    try:
        await _wait_connected(server, agent_name, proc)
        # Podman connecting to the silent registry means the pull is in flight.
        readable = await asyncio.to_thread(lambda: select.select([registry], [], [], 30))
        assert readable[0], "Podman never tried to pull the image"
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = await asyncio.to_thread(proc.communicate, timeout=2.0)
        except subprocess.TimeoutExpired:
            pytest.fail("ank-agent was still running 2 s after SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        registry.close()  # the hanging pull fails now, on Podman's side
        await server.stop()
        podman_env.remove_by_label(f"agent={agent_name}")
    assert proc.returncode == 0, err
    assert "Traceback" not in err
