"""What only the Ankaios v1.0.1 dialect does, against the v1.0.1 server double on loopback.

Probing (v1.0.1 first, v0.3.1 after UNIMPLEMENTED), a server that refuses our
protocol version and is upgraded later, tags in the hello, mutual TLS with the
real agent process (accepted, and refused for a foreign CA, a certificate for
another name, no client certificate), a server swapped from one version to
the other while the agent runs, and (on Podman) the ServerHello after an agent
or server restart with unchanged, changed and no workloads, and the swap with
the running containers adopted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import grpc
import pytest

from ankaios_agent.agent import dialects, tls_bridge
from ankaios_agent.agent.connection import ConnectionTimings, ServerConnection
from ankaios_agent.agent.dialects import WireDialect
from ankaios_agent.agent.lifecycle_rules import Dialect
from ankaios_agent.agent.outbox import Outbox
from ankaios_agent.agent.tls import TlsMaterial
from tests.integration.conftest import PROBING, RecordingHandler
from tests.integration.test_lifecycle_podman import SLOW, RunningAgent, _ids_by_workload, _sleeper, _state
from tests.integration.test_tls_connection import _wait_for_attempts
from tests.server_double import ServerDouble
from tests.server_double_v1 import ServerDoubleV1
from tests.server_double_v1 import TlsMaterial as ServerTls
from tests.server_double_v1.state import instance_of
from tests.server_double_v1.state import state_from_yaml as v1_state_from_yaml
from tests.support.certs import Identity, Pki
from tests.support.doubles import Double, make_double, replace_desired_quietly, set_desired
from tests.support.podman_env import PodmanEnv

ROOT = Path(__file__).resolve().parents[2]
QUICK = ConnectionTimings(connect_timeout=5.0, version_refused_backoff=0.1)
CONNECTION_LOG = "ankaios_agent.agent.connection"


@contextlib.asynccontextmanager
async def _connection(
    address: str,
    name: str,
    recorder: RecordingHandler,
    probe: Sequence[WireDialect] = PROBING,
    *,
    tls: TlsMaterial | None = None,
    tags: dict[str, str] | None = None,
) -> AsyncIterator[ServerConnection]:
    connection = ServerConnection(
        address,
        name,
        Outbox(),
        recorder.handle,
        recorder.on_connected,
        QUICK,
        tls=tls,
        dialects=probe,
        tags=tags,
    )
    task = asyncio.create_task(connection.run())
    try:
        yield connection
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


AnyDouble = TypeVar("AnyDouble", ServerDouble, ServerDoubleV1)


async def _started(double: AnyDouble, port: int = 0) -> AnyDouble:
    await double.start(port)
    return double


# --- probing ----------------------------------------------------------------------


async def test_auto_speaks_v1_to_a_v1_server(agent_name: str, recorder: RecordingHandler) -> None:
    server = await _started(ServerDoubleV1())
    try:
        async with _connection(server.address, agent_name, recorder) as connection:
            await server.wait_for_agent(agent_name)
            await recorder.wait_until(lambda: "ServerHello" in recorder.events)
            assert recorder.dialects == [Dialect.V1]
            assert connection.dialect is Dialect.V1
            assert [h.protocolVersion for h in server.hellos[agent_name]] == ["1.0.1"]
    finally:
        await server.stop()


async def test_auto_falls_back_to_v0_3_on_unimplemented(
    agent_name: str, recorder: RecordingHandler, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=CONNECTION_LOG)
    server = await _started(ServerDouble())
    try:
        async with _connection(server.address, agent_name, recorder):
            await server.wait_for_agent(agent_name)
            await recorder.wait_until(lambda: recorder.connected_calls == 1)
            assert recorder.dialects == [Dialect.V0_3]
        assert "does not know the Ankaios v1.0.1 protocol" in caplog.text
        assert "(Ankaios v0.3.1 protocol)" in caplog.text
        warnings = [r for r in caplog.records if r.name == CONNECTION_LOG and r.levelno >= logging.WARNING]
        assert [r.getMessage() for r in warnings] == []
    finally:
        await server.stop()


async def test_only_the_configured_dialects_are_tried(
    agent_name: str, recorder: RecordingHandler, caplog: pytest.LogCaptureFixture
) -> None:
    """--protocol v1 against a v0.3.1 server: never connects, says so once, keeps trying."""
    caplog.set_level(logging.DEBUG, logger=CONNECTION_LOG)
    server = await _started(ServerDouble())
    try:
        async with _connection(server.address, agent_name, recorder, (dialects.V1,)) as connection:
            await _wait_for_attempts(caplog, 3)
            assert connection.sessions == 0
            assert agent_name not in server.connected_agents
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "speaks none of: Ankaios v1.0.1 protocol" in warnings[0]
    finally:
        await server.stop()


async def test_version_refusal_is_logged_once_and_an_upgrade_is_picked_up(
    agent_name: str, recorder: RecordingHandler, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=CONNECTION_LOG)
    server = ServerDoubleV1()
    server.supported_major = 2  # a server of a later release
    await server.start()
    try:
        async with _connection(server.address, agent_name, recorder) as connection:
            await server.wait_until(lambda: len(server.refusals) >= 3, timeout=10)
            assert {r.code for r in server.refusals} == {grpc.StatusCode.FAILED_PRECONDITION}
            errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
            assert len(errors) == 1, errors
            assert "version 1.0.1" in errors[0] and "supports version '2'" in errors[0]
            assert connection.sessions == 0
            server.supported_major = 1  # the server is replaced by one that speaks our version
            await server.wait_for_agent(agent_name, timeout=10)
            await recorder.wait_until(lambda: recorder.dialects == [Dialect.V1])
    finally:
        await server.stop()


async def test_tags_are_sent_in_every_hello(agent_name: str, recorder: RecordingHandler) -> None:
    server = await _started(ServerDoubleV1())
    try:
        async with _connection(server.address, agent_name, recorder, tags={"zone": "a", "tier": "edge"}):
            await server.wait_for_agent(agent_name)
            await server.restart(down_for=0.2)
            await server.wait_until(lambda: len(server.hellos.get(agent_name, [])) == 2, timeout=10)
        assert [dict(h.tags.tags) for h in server.hellos[agent_name]] == [{"zone": "a", "tier": "edge"}] * 2
        assert dict(server.agents[agent_name].tags.tags) == {"zone": "a", "tier": "edge"}
    finally:
        await server.stop()


async def test_server_swapped_for_another_version_is_found_again(
    agent_name: str, recorder: RecordingHandler, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=CONNECTION_LOG)
    old = await _started(ServerDouble())
    port = old.port
    async with _connection(old.address, agent_name, recorder):
        await old.wait_for_agent(agent_name)
        await old.stop()
        new = await _started(ServerDoubleV1(), port)
        try:
            await new.wait_for_agent(agent_name, timeout=10)
            await recorder.wait_until(lambda: recorder.dialects == [Dialect.V0_3, Dialect.V1])
        finally:
            await new.stop()
    assert "now speaks the Ankaios v1.0.1 protocol instead of the Ankaios v0.3.1 protocol" in caplog.text


# --- mutual TLS with the real agent process -----------------------------------------


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki.create()


def _server_tls(pki: Pki) -> ServerTls:
    return ServerTls(pki.ca.cert, pki.server.cert, pki.server.key)


def _spawn_agent(
    name: str, server: ServerDoubleV1, folder: Path, agent: Identity, ca: bytes
) -> subprocess.Popen[str]:
    """The agent's real process (settings, TLS, connection), with a recording manager instead of Podman."""
    (folder / "ca.pem").write_bytes(ca)
    (folder / "ca.pem").chmod(0o600)
    cert, key = agent.write(folder, "agent")
    args = [
        "-m", "tests.integration.recording_agent",
        "--name", name,
        "--server-url", server.url,
        "--ca_pem", str(folder / "ca.pem"),
        "--crt_pem", str(cert),
        "--key_pem", str(key),
        "-r", str(folder),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRPC_VERBOSITY": "NONE"}
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


async def _stderr_until(proc: subprocess.Popen[str], wanted: str) -> str:
    """Read the agent's log until a line contains ``wanted``; fail with the log if it ends first."""
    assert proc.stderr is not None
    seen: list[str] = []
    async with asyncio.timeout(20):
        while True:
            line = await asyncio.to_thread(proc.stderr.readline)
            if not line:
                pytest.fail(
                    f"the agent ended (exit {proc.poll()}) before logging {wanted!r}:\n{''.join(seen)}"
                )
            seen.append(line)
            if wanted in line:
                return line


@contextlib.asynccontextmanager
async def _tls_agent(
    pki: Pki, agent_name: str, tmp_path: Path, identity: Identity, ca: bytes | None = None
) -> AsyncIterator[tuple[ServerDoubleV1, subprocess.Popen[str]]]:
    server = ServerDoubleV1(tls=_server_tls(pki))
    await server.start()
    proc = _spawn_agent(agent_name, server, tmp_path, identity, ca or pki.ca.cert)
    try:
        yield server, proc
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.communicate, timeout=10)
        await server.stop()


async def test_mtls_agent_is_accepted(pki: Pki, agent_name: str, tmp_path: Path) -> None:
    identity = pki.ca.agent_identity([agent_name])
    async with _tls_agent(pki, agent_name, tmp_path, identity) as (server, proc):
        line = await _stderr_until(proc, "connected to server")
        assert "(Ankaios v1.0.1 protocol)" in line
        await server.wait_for_agent(agent_name, timeout=10)
        assert server.refusals == []


async def test_mtls_agent_of_a_foreign_ca_is_refused(pki: Pki, agent_name: str, tmp_path: Path) -> None:
    """The server's TLS refuses the handshake: no hello ever arrives, the agent says what to check."""
    identity = pki.foreign_ca.agent_identity([agent_name])
    async with _tls_agent(pki, agent_name, tmp_path, identity) as (server, proc):
        line = await _stderr_until(proc, "is not reachable")
        assert "signed by the configured CA" in line
        assert proc.poll() is None
        assert agent_name not in server.hellos


async def test_mtls_agent_named_otherwise_in_its_certificate_is_refused(
    pki: Pki, agent_name: str, tmp_path: Path
) -> None:
    identity = pki.ca.agent_identity(["someone_else"])
    async with _tls_agent(pki, agent_name, tmp_path, identity) as (server, proc):
        await server.wait_until(lambda: len(server.refusals) >= 2, timeout=20)
        assert {(r.agent, r.code) for r in server.refusals} == {(agent_name, grpc.StatusCode.UNAUTHENTICATED)}
        assert proc.poll() is None
        assert agent_name not in server.connected_agents


def _context_without_certificate(material: TlsMaterial) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_alpn_protocols(["h2"])
    context.load_verify_locations(cadata=material.ca.decode())
    return context


async def test_mtls_without_a_client_certificate_is_refused(
    pki: Pki,
    agent_name: str,
    recorder: RecordingHandler,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The settings never allow it, so the TLS client is made without one: the server demands one."""
    caplog.set_level(logging.DEBUG, logger=CONNECTION_LOG)
    monkeypatch.setattr(tls_bridge, "client_context", _context_without_certificate)
    server = ServerDoubleV1(tls=_server_tls(pki))
    await server.start()
    identity = pki.ca.agent_identity([agent_name])
    tls = TlsMaterial(pki.ca.cert, identity.cert, identity.key)
    try:
        async with _connection(server.address, agent_name, recorder, tls=tls) as connection:
            await _wait_for_attempts(caplog, 3)
            assert connection.sessions == 0
        assert server.hellos == {}
        assert server.refusals == []  # refused in the handshake: no call ever reached the server
    finally:
        await server.stop()


# --- ServerHello reconciliation and the server swap, with the real agent on Podman ------------


@pytest.fixture
def podman_cleanup(podman_env: PodmanEnv, agent_name: str) -> Iterator[None]:
    yield
    podman_env.remove_by_label(f"agent={agent_name}")


def _instance_ids(server: ServerDoubleV1, workload: str) -> set[str]:
    return {i.id for i in server.states if i.workload == workload}


@pytest.mark.podman
async def test_server_hello_after_an_agent_restart(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, podman_cleanup: None
) -> None:
    """While the agent was down one workload changed and one was deleted: the ServerHello keeps
    the unchanged container, replaces the changed one and removes the deleted one; a later empty
    ServerHello removes everything."""
    (tmp_path / f"{agent_name}_io").mkdir()
    names = ("keep", "change", "drop")
    server = make_double("v1.0.1", _state(agent_name, "".join(_sleeper(n, agent_name) for n in names)))
    assert isinstance(server, ServerDoubleV1)
    await server.start()
    agent = RunningAgent(server, agent_name, tmp_path, podman_env)
    try:
        for name in names:
            await server.wait_for_state(name, "Running(Ok)", timeout=SLOW)
        before = _ids_by_workload(podman_env, agent_name)
        await agent.close()
        changed = _state(
            agent_name, _sleeper("keep", agent_name) + _sleeper("change", agent_name, cmd='["sleep", "999"]')
        )
        await set_desired(server, changed)
        new_id = next(iter(instance_ids_of_manifest(changed, "change")))

        agent = RunningAgent(server, agent_name, tmp_path, podman_env)
        await server.wait_until(
            lambda: (
                _instance_ids(server, "change") == {new_id}
                and any(s.display == "Running(Ok)" for s in server.state_of("change"))
                and not server.state_of("drop")
            ),
            timeout=SLOW,
        )
        after = _ids_by_workload(podman_env, agent_name)
        assert set(after) == {"keep", "change"}
        assert after["keep"] == before["keep"]
        assert after["change"] != before["change"]

        await agent.close()
        await set_desired(server, "apiVersion: v0.1\nworkloads: {}\n")
        agent = RunningAgent(server, agent_name, tmp_path, podman_env)
        await server.wait_until(lambda: _ids_by_workload(podman_env, agent_name) == {}, timeout=SLOW)
        await server.wait_until(lambda: not server.state_of("keep") and not server.state_of("change"))
    finally:
        await agent.close()
        await server.stop()


def instance_ids_of_manifest(manifest: str, workload: str) -> set[str]:
    state = v1_state_from_yaml(manifest)
    return {instance_of(workload, state.workloads.workloads[workload]).id}


@pytest.mark.podman
async def test_empty_server_hello_after_a_server_restart_removes_everything(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, podman_cleanup: None
) -> None:
    (tmp_path / f"{agent_name}_io").mkdir()
    server = make_double("v1.0.1", _state(agent_name, _sleeper("a", agent_name) + _sleeper("b", agent_name)))
    assert isinstance(server, ServerDoubleV1)
    await server.start()
    agent = RunningAgent(server, agent_name, tmp_path, podman_env)
    try:
        await server.wait_for_state("a", "Running(Ok)", timeout=SLOW)
        await server.wait_for_state("b", "Running(Ok)", timeout=SLOW)
        replace_desired_quietly(server, "apiVersion: v0.1\nworkloads: {}\n")
        await server.restart(down_for=0.5)
        await server.wait_until(lambda: _ids_by_workload(podman_env, agent_name) == {}, timeout=SLOW)
        assert all(h.agentName == agent_name for h in server.hellos[agent_name])
        assert len(server.hellos[agent_name]) == 2
    finally:
        await agent.close()
        await server.stop()


@pytest.mark.podman
async def test_server_swapped_between_versions_adopts_the_running_containers(
    podman_env: PodmanEnv, agent_name: str, tmp_path: Path, podman_cleanup: None
) -> None:
    """v0.3.1 server, then a v1.0.1 one on the same port with the same workloads, then v0.3.1
    again: both compute the same instance ids, so no container is replaced or restarted."""
    (tmp_path / f"{agent_name}_io").mkdir()
    manifest = _state(agent_name, _sleeper("db", agent_name) + _sleeper("web", agent_name))
    old = make_double("v0.3.1", manifest)
    port = await old.start()
    agent = RunningAgent(old, agent_name, tmp_path, podman_env)
    new: Double | None = None
    try:
        await old.wait_for_state("db", "Running(Ok)", timeout=SLOW)
        await old.wait_for_state("web", "Running(Ok)", timeout=SLOW)
        before = _ids_by_workload(podman_env, agent_name)
        await old.stop()

        new = make_double("v1.0.1", manifest)
        await new.start(port)
        await new.wait_for_agent(agent_name, timeout=SLOW)
        await new.wait_for_state("db", "Running(Ok)", timeout=SLOW)
        await new.wait_for_state("web", "Running(Ok)", timeout=SLOW)
        assert _ids_by_workload(podman_env, agent_name) == before
        shown = {s.display for name in ("db", "web") for s in new.state_of(name)}
        assert shown == {"Running(Ok)"}  # never Stopping, Removed or Pending: nothing restarted
        await new.stop()

        back = make_double("v0.3.1", manifest)
        await back.start(port)
        new = back
        await back.wait_for_agent(agent_name, timeout=SLOW)
        await back.wait_for_state("web", "Running(Ok)", timeout=SLOW)
        assert _ids_by_workload(podman_env, agent_name) == before
    finally:
        await agent.close()
        if new is not None:
            await new.stop()
