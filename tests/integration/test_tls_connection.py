"""The server connection over real mutual TLS on loopback, and the servers it must refuse.

Two kinds of TLS server: the grpcio server double with grpc's own TLS (ECDSA leaves
only: BoringSSL cannot sign or verify Ed25519 handshakes), and a plain double behind
an OpenSSL terminator, which handles the Ed25519 keys Ankaios installations use."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from ankaios_agent.agent.config import parse_args
from ankaios_agent.agent.connection import ConnectionTimings, ServerConnection, open_channel
from ankaios_agent.agent.outbox import Outbox
from ankaios_agent.agent.tls import TlsMaterial
from ankaios_agent.agent.tls_bridge import TlsBridge
from ankaios_agent.proto import ankaios_pb2_grpc as pb_grpc
from tests.integration.conftest import RecordingHandler
from tests.integration.test_keepalive import FreezableProxy
from tests.server_double import ServerDouble
from tests.server_double.server import SERVER_OPTIONS
from tests.support.certs import CertificateAuthority, Identity, KeyType, PkiFiles, write_pki
from tests.support.tls_terminator import TlsTerminator, server_context


class TlsServerDouble(ServerDouble):
    """The server double behind TLS that demands a client certificate from ``client_ca``."""

    def __init__(self, server: Identity, client_ca: CertificateAuthority) -> None:
        super().__init__()
        self._credentials = grpc.ssl_server_credentials(
            [(server.key, server.cert)],
            root_certificates=client_ca.cert,
            require_client_auth=True,
        )
        self.peer_names: list[bytes] = []

    async def start(self, port: int = 0) -> int:
        server = grpc.aio.server(options=SERVER_OPTIONS)
        pb_grpc.add_AgentConnectionServicer_to_server(self, server)
        bound: int = server.add_secure_port(f"127.0.0.1:{port}", self._credentials)
        await server.start()
        self._server, self._port, self._stopping = server, bound, False
        return bound

    async def ConnectAgent(self, request_iterator: object, context: grpc.aio.ServicerContext) -> None:  # noqa: N802
        self.peer_names.extend(context.peer_identities() or [])
        await super().ConnectAgent(request_iterator, context)


def _material(pki: PkiFiles) -> TlsMaterial:
    return TlsMaterial(pki.ca.cert, pki.agent.cert, pki.agent.key)


@contextlib.asynccontextmanager
async def _terminated(
    server_cert: Identity, client_ca: CertificateAuthority
) -> AsyncIterator[tuple[ServerDouble, TlsTerminator]]:
    """A plain server double behind an OpenSSL TLS terminator (any key type, Ed25519 too)."""
    server = ServerDouble()
    port = await server.start()
    try:
        async with TlsTerminator(port, server_cert.cert, server_cert.key, client_ca.cert) as terminator:
            yield server, terminator
    finally:
        await server.stop()


def _dns_names(peer: dict[str, Any]) -> list[str]:
    return [value for kind, value in peer.get("subjectAltName", ()) if kind == "DNS"]


@contextlib.asynccontextmanager
async def _running(
    server: ServerDouble | TlsTerminator, name: str, tls: TlsMaterial | None, recorder: RecordingHandler
) -> AsyncIterator[ServerConnection]:
    connection = ServerConnection(
        server.address,
        name,
        Outbox(),
        recorder.handle,
        recorder.on_connected,
        ConnectionTimings(connect_timeout=5.0),
        tls=tls,
    )
    task = asyncio.create_task(connection.run())
    try:
        yield connection
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _wait_for_attempts(caplog: pytest.LogCaptureFixture, attempts: int) -> None:
    """Wait until the connection has logged ``attempts`` failed retries (debug lines)."""
    async with asyncio.timeout(20):
        while sum("retry" in r.getMessage() for r in caplog.records) < attempts:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("ca_kind", ["ecdsa", "ed25519"])
async def test_connects_over_mutual_tls_verifying_ank_server(
    tmp_path: Path, agent_name: str, recorder: RecordingHandler, ca_kind: KeyType
) -> None:
    """The agent dials 127.0.0.1 but verifies the server as ank-server, and presents its certificate."""
    pki = write_pki(tmp_path, key_type=ca_kind, server_key_type="ecdsa", agent_key_type="ecdsa")
    server = TlsServerDouble(pki.server, client_ca=pki.ca)
    await server.start()
    try:
        async with _running(server, agent_name, _material(pki), recorder) as connection:
            await server.wait_for_agent(agent_name, timeout=10)
            await recorder.wait_until(lambda: recorder.connected_calls == 1)
            assert connection.connected
        assert b"*" in server.peer_names  # the agent certificate's SAN reached the server
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("server_kind", "agent_kind"),
    [("ecdsa", "ecdsa"), ("ecdsa", "ed25519"), ("ed25519", "ed25519")],
)
async def test_tls_handshake_with_an_openssl_server(
    tmp_path: Path, server_kind: KeyType, agent_kind: KeyType
) -> None:
    """Against a TLS stack that verifies Ed25519 (OpenSSL here; the Rust server uses rustls), the
    agent's channel completes the mutual-TLS handshake with the reference setup's key types."""
    pki = write_pki(tmp_path, server_key_type=server_kind, agent_key_type=agent_kind)
    context = server_context(pki.server.cert, pki.server.key, pki.ca.cert)
    handshakes: asyncio.Queue[object] = asyncio.Queue()

    async def accepted(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handshakes.put_nowait(writer.get_extra_info("peercert"))  # only called after the handshake
        writer.close()

    listener = await asyncio.start_server(accepted, "127.0.0.1", 0, ssl=context)
    address = f"127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    async with TlsBridge(address, _material(pki), connect_timeout=5) as bridge:
        channel = open_channel(address, ConnectionTimings(), bridge)
        ready = asyncio.create_task(channel.channel_ready())
        try:
            peer = await asyncio.wait_for(handshakes.get(), 5)
            assert peer is not None  # the agent presented its certificate
        finally:
            ready.cancel()
            await channel.close()
            listener.close()


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa"])
async def test_connects_to_an_openssl_tls_server(
    tmp_path: Path, agent_name: str, recorder: RecordingHandler, kind: KeyType
) -> None:
    """A whole session with a server that signs with Ed25519 (as the reference's setup) or ECDSA."""
    pki = write_pki(tmp_path, key_type=kind)
    async with _terminated(pki.server, pki.ca) as (server, terminator):
        async with _running(terminator, agent_name, _material(pki), recorder) as connection:
            await server.wait_for_agent(agent_name, timeout=10)
            await recorder.wait_until(lambda: recorder.connected_calls == 1)
            assert connection.connected
        assert _dns_names(terminator.peer_certificates[-1]) == ["*"]  # the agent's certificate


async def test_reconnects_through_the_bridge_after_the_server_restarts(
    tmp_path: Path, agent_name: str, recorder: RecordingHandler
) -> None:
    """The bridge outlives sessions: a lost stream reconnects through it like a plain one."""
    pki = write_pki(tmp_path)
    async with (
        _terminated(pki.server, pki.ca) as (server, terminator),
        _running(terminator, agent_name, _material(pki), recorder) as connection,
    ):
        await recorder.wait_until(lambda: recorder.connected_calls == 1)
        await server.restart()
        await recorder.wait_until(lambda: recorder.connected_calls == 2, within=10)
        assert connection.sessions == 2


@pytest.mark.parametrize(
    ("wrong", "check"),
    [
        ("ca", "signed by the CA given to the agent"),
        ("san", "names ank-server as DNS subjectAltName"),
        ("agent-ca", "the server refused the agent's certificate"),
    ],
)
async def test_an_openssl_tls_server_that_does_not_match_is_refused(
    *,
    tmp_path: Path,
    agent_name: str,
    recorder: RecordingHandler,
    caplog: pytest.LogCaptureFixture,
    wrong: str,
    check: str,
) -> None:
    """Ed25519 everywhere: a server of another CA, a server certificate without ank-server, or a
    server that does not trust the agent's CA: no session, retries go on, one warning says why."""
    pki = write_pki(tmp_path)
    server_cert, client_ca = pki.server, pki.ca
    if wrong == "ca":
        server_cert = CertificateAuthority("foreign-ca", key_type="ed25519").issue(
            "ank-server", ["ank-server"], server=True
        )
    elif wrong == "san":
        server_cert = pki.ca.issue("localhost", ["localhost", "127.0.0.1"], server=True)
    else:
        client_ca = CertificateAuthority("foreign-agent-ca", key_type="ed25519")
    caplog.set_level(logging.DEBUG, logger="ankaios_agent.agent")
    async with _terminated(server_cert, client_ca) as (server, terminator):
        async with _running(terminator, agent_name, _material(pki), recorder) as connection:
            await _wait_for_attempts(caplog, 3)
            assert connection.sessions == 0
            assert recorder.connected_calls == 0
        assert server.received == {}  # the hello never reached the server
    bridge_warnings = [r.getMessage() for r in caplog.records if r.name.endswith("tls_bridge")]
    warned = [m for m in bridge_warnings if "TLS connection to server" in m]
    assert warned and check in warned[0]
    tls_warnings = [
        r for r in caplog.records if r.name.endswith("tls_bridge") and r.levelno == logging.WARNING
    ]
    assert len(tls_warnings) == 1  # once per kind, not per retry
    unreachable = [r.getMessage() for r in caplog.records if "not reachable" in r.getMessage()]
    assert len(unreachable) == 1 and check in unreachable[0]


async def test_the_test_server_refuses_a_client_without_certificate(tmp_path: Path) -> None:
    """The terminator really demands a client certificate: a TLS client without one gets no data."""
    pki = write_pki(tmp_path)
    async with _terminated(pki.server, pki.ca) as (server, terminator):
        context = ssl.create_default_context(cadata=pki.ca.cert.decode())
        context.set_alpn_protocols(["h2"])
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", terminator.port, ssl=context, server_hostname="ank-server"
        )
        try:
            writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, not a byte answered
        finally:
            writer.close()
        assert terminator.peer_certificates == []
        assert server.received == {}


def _modes_and_files(socket_path: Path) -> tuple[int, int, list[str]]:
    return (
        stat.S_IMODE(socket_path.parent.stat().st_mode),
        stat.S_IMODE(socket_path.stat().st_mode),
        [p.name for p in socket_path.parent.iterdir()],
    )


async def test_the_bridge_socket_is_private_and_removed_at_close(tmp_path: Path) -> None:
    """Only the agent's user may use its identity through the bridge; the key is never left on disk."""
    pki = write_pki(tmp_path)
    bridge = TlsBridge("127.0.0.1:1", _material(pki), connect_timeout=1)
    await bridge.open()
    socket_path = Path(bridge.target.removeprefix("unix:"))
    try:
        assert _modes_and_files(socket_path) == (0o700, 0o600, [socket_path.name])
    finally:
        await bridge.close()
    assert not await asyncio.to_thread(socket_path.parent.exists)


async def test_settings_from_the_command_line_reach_the_server(
    tmp_path: Path, agent_name: str, recorder: RecordingHandler
) -> None:
    """--ca_pem/--crt_pem/--key_pem and an https:// URL: the files read at startup make the channel."""
    pki = write_pki(tmp_path, server_key_type="ecdsa", agent_key_type="ecdsa")
    server = TlsServerDouble(pki.server, client_ca=pki.ca)
    port = await server.start()
    config = parse_args(
        ["-n", agent_name, "-s", f"https://127.0.0.1:{port}", *pki.flags()],
        {},
        default_config=tmp_path / "none",
    )
    assert config.tls is not None
    try:
        async with _running(server, agent_name, config.tls, recorder):
            await server.wait_for_agent(agent_name, timeout=10)
    finally:
        await server.stop()


async def test_pem_contents_of_a_config_file_reach_an_ed25519_server(
    tmp_path: Path, agent_name: str, recorder: RecordingHandler
) -> None:
    """``*_pem_content`` in the config file, Ed25519 keys: the texts read at startup make the session."""
    pki = write_pki(tmp_path / "certs")
    async with _terminated(pki.server, pki.ca) as (server, terminator):
        conf = tmp_path / "agent.conf"
        conf.write_text(
            f"version = 'v1'\nname = '{agent_name}'\nserver_url = 'https://{terminator.address}'\n"
            f"ca_pem_content = '''{pki.ca.cert.decode()}'''\n"
            f"crt_pem_content = '''{pki.agent.cert.decode()}'''\n"
            f"key_pem_content = '''{pki.agent.key.decode()}'''\n"
        )
        config = parse_args(["-x", str(conf)], {}, default_config=tmp_path / "none")
        assert config.tls is not None
        async with _running(terminator, agent_name, config.tls, recorder):
            await server.wait_for_agent(agent_name, timeout=10)
        assert _dns_names(terminator.peer_certificates[-1]) == ["*"]


@pytest.mark.parametrize("wrong", ["ca", "san"])
async def test_refuses_a_server_it_cannot_verify(
    tmp_path: Path, agent_name: str, recorder: RecordingHandler, caplog: pytest.LogCaptureFixture, wrong: str
) -> None:
    """A server certificate from another CA, or not issued for ank-server: no session, retries go on."""
    pki = write_pki(tmp_path, server_key_type="ecdsa", agent_key_type="ecdsa")
    if wrong == "ca":
        server_cert = CertificateAuthority("foreign-ca", key_type="ed25519").issue(
            "ank-server", ["ank-server"], server=True, key_type="ecdsa"
        )
    else:
        server_cert = pki.ca.issue("localhost", ["localhost", "127.0.0.1"], server=True, key_type="ecdsa")
    server = TlsServerDouble(server_cert, client_ca=pki.ca)
    await server.start()
    caplog.set_level(logging.DEBUG, logger="ankaios_agent.agent.connection")
    try:
        async with _running(server, agent_name, _material(pki), recorder) as connection:
            await _wait_for_attempts(caplog, 3)
            assert connection.sessions == 0
            assert recorder.connected_calls == 0
        assert server.received == {}  # the hello never reached the server
        assert server.peer_names == []
        warnings = [r.getMessage() for r in caplog.records if "not reachable" in r.getMessage()]
        assert len(warnings) == 1 and "signed by the configured CA, names ank-server" in warnings[0]
    finally:
        await server.stop()


async def test_a_tls_server_refuses_a_plain_agent(
    tmp_path: Path, agent_name: str, recorder: RecordingHandler, caplog: pytest.LogCaptureFixture
) -> None:
    pki = write_pki(tmp_path, server_key_type="ecdsa", agent_key_type="ecdsa")
    server = TlsServerDouble(pki.server, client_ca=pki.ca)
    await server.start()
    caplog.set_level(logging.DEBUG, logger="ankaios_agent.agent.connection")
    try:
        async with _running(server, agent_name, None, recorder) as connection:
            await _wait_for_attempts(caplog, 3)
            assert connection.sessions == 0
        assert server.received == {}
    finally:
        await server.stop()


async def test_keepalive_detects_a_dead_server_through_the_bridge(
    tmp_path: Path, agent_name: str, recorder: RecordingHandler
) -> None:
    """Keepalive pings cross the bridge to the server: a TLS server that stops answering (half-open
    TCP behind the bridge) ends the session, and the agent reconnects through the same bridge."""
    pki = write_pki(tmp_path)
    timings = ConnectionTimings(keepalive_time_ms=1000, keepalive_timeout_ms=1000)
    async with _terminated(pki.server, pki.ca) as (_server, terminator):
        proxy = FreezableProxy(terminator.port)
        port = await proxy.start()
        connection = ServerConnection(
            f"127.0.0.1:{port}",
            agent_name,
            Outbox(),
            recorder.handle,
            recorder.on_connected,
            timings,
            tls=_material(pki),
        )
        task = asyncio.create_task(connection.run())
        try:
            await recorder.wait_until(lambda: recorder.connected_calls == 1)
            proxy.frozen.set()
            async with asyncio.timeout(30):
                while connection.connected:  # noqa: ASYNC110 (poll: the connection has no state event)
                    await asyncio.sleep(0.05)
            proxy.frozen.clear()  # new connections relay again
            await recorder.wait_until(lambda: recorder.connected_calls == 2, within=10)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await proxy.close()
