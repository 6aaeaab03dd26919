"""The server connection over real mutual TLS on loopback, and the servers it must refuse."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pytest

from ankaios_agent.agent.config import parse_args
from ankaios_agent.agent.connection import ConnectionTimings, ServerConnection, open_channel
from ankaios_agent.agent.outbox import Outbox
from ankaios_agent.agent.tls import TlsMaterial
from ankaios_agent.proto import ankaios_pb2_grpc as pb_grpc
from tests.integration.conftest import RecordingHandler
from tests.server_double import ServerDouble
from tests.server_double.server import SERVER_OPTIONS
from tests.support.tls_files import Issued, Pki, issue, make_ca, make_pki, write


class TlsServerDouble(ServerDouble):
    """The server double behind TLS that demands a client certificate from ``client_ca``."""

    def __init__(self, server: Issued, client_ca: Issued) -> None:
        super().__init__()
        self._credentials = grpc.ssl_server_credentials(
            [(server.key_pem, server.cert_pem)],
            root_certificates=client_ca.cert_pem,
            require_client_auth=True,
        )
        self.peer_names: list[bytes] = []

    async def start(self, port: int = 0) -> int:
        server = grpc.aio.server(options=SERVER_OPTIONS)
        pb_grpc.add_AgentConnectionServicer_to_server(self, server)  # type: ignore[no-untyped-call]
        bound: int = server.add_secure_port(f"127.0.0.1:{port}", self._credentials)
        await server.start()
        self._server, self._port, self._stopping = server, bound, False
        return bound

    async def ConnectAgent(self, request_iterator: object, context: grpc.aio.ServicerContext) -> None:  # noqa: N802
        self.peer_names.extend(context.peer_identities() or [])
        await super().ConnectAgent(request_iterator, context)


def _material(pki: Pki) -> TlsMaterial:
    return TlsMaterial(pki.ca.cert_pem, pki.agent.cert_pem, pki.agent.key_pem)


@contextlib.asynccontextmanager
async def _running(
    server: ServerDouble, name: str, tls: TlsMaterial | None, recorder: RecordingHandler
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


@pytest.mark.parametrize("ca_kind", ["ec", "ed25519"])
async def test_connects_over_mutual_tls_verifying_ank_server(
    tmp_path: Path, agent_name: str, recorder: RecordingHandler, ca_kind: str
) -> None:
    """The agent dials 127.0.0.1 but verifies the server as ank-server, and presents its certificate."""
    pki = make_pki(tmp_path, kind=ca_kind, server_kind="ec", agent_kind="ec")
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
    [
        ("ec", "ec"),
        ("ec", "ed25519"),  # the reference's test certificates use Ed25519 for the agent
        pytest.param(
            "ed25519",
            "ed25519",
            marks=pytest.mark.xfail(
                strict=True,
                reason="grpcio's BoringSSL offers no Ed25519 signature algorithm for the server's "
                "handshake signature (NO_COMMON_SIGNATURE_ALGORITHMS); passes once grpcio supports it",
            ),
        ),
    ],
)
async def test_tls_handshake_with_an_openssl_server(
    tmp_path: Path, server_kind: str, agent_kind: str
) -> None:
    """Against a TLS stack that verifies Ed25519 (OpenSSL here; the Rust server uses rustls), the
    agent completes the mutual-TLS handshake with the key types the reference's setup uses."""
    pki = make_pki(tmp_path, server_kind=server_kind, agent_kind=agent_kind)
    server_cert = write(tmp_path / "server.pem", pki.server.cert_pem)
    server_key = write(tmp_path / "server-key.pem", pki.server.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_cert, server_key)
    context.load_verify_locations(cadata=pki.ca.cert_pem.decode())
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    handshakes: asyncio.Queue[object] = asyncio.Queue()

    async def accepted(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handshakes.put_nowait(writer.get_extra_info("peercert"))  # only called after the handshake
        writer.close()

    listener = await asyncio.start_server(accepted, "127.0.0.1", 0, ssl=context)
    port = listener.sockets[0].getsockname()[1]
    channel = open_channel(f"127.0.0.1:{port}", _material(pki), ConnectionTimings())
    ready = asyncio.create_task(channel.channel_ready())
    try:
        peer = await asyncio.wait_for(handshakes.get(), 5)
        assert peer is not None  # the agent presented its certificate
    finally:
        ready.cancel()
        await channel.close()
        listener.close()


async def test_settings_from_the_command_line_reach_the_server(
    tmp_path: Path, agent_name: str, recorder: RecordingHandler
) -> None:
    """--ca_pem/--crt_pem/--key_pem and an https:// URL: the files read at startup make the channel."""
    pki = make_pki(tmp_path, server_kind="ec", agent_kind="ec")
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


@pytest.mark.parametrize("wrong", ["ca", "san"])
async def test_refuses_a_server_it_cannot_verify(
    tmp_path: Path, agent_name: str, recorder: RecordingHandler, caplog: pytest.LogCaptureFixture, wrong: str
) -> None:
    """A server certificate from another CA, or not issued for ank-server: no session, retries go on."""
    pki = make_pki(tmp_path, server_kind="ec", agent_kind="ec")
    if wrong == "ca":
        server_cert = issue(make_ca("foreign-ca"), "ank-server", ["ank-server"], server=True, kind="ec")
    else:
        server_cert = issue(pki.ca, "localhost", ["localhost", "127.0.0.1"], server=True, kind="ec")
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
    pki = make_pki(tmp_path, server_kind="ec", agent_kind="ec")
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
