"""A TLS server made with Python's ``ssl`` (OpenSSL) in front of a plain HTTP/2 server on loopback.

grpcio servers, like grpcio clients, cannot handshake with Ed25519 keys. Put this
terminator in front of a plain ``grpc.aio`` server (a server double) to get a
server that speaks mutual TLS the way an Ankaios server does: its certificate and
key, a client certificate signed by ``client_ca`` required, ALPN ``h2``, TLS 1.2
or newer. Each accepted connection is relayed byte for byte to the backend.

``peer_certificates`` records the client certificate of every connection that
got through the handshake (``ssl.SSLSocket.getpeercert`` form), so a test can
show which identity reached the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import tempfile
from pathlib import Path
from typing import Any

_CHUNK = 64 * 1024


def server_context(cert_pem: bytes, key_pem: bytes, client_ca: bytes) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=client_ca.decode())
    context.set_alpn_protocols(["h2"])
    with tempfile.TemporaryDirectory(prefix="tls-terminator-") as folder:
        cert, key = Path(folder, "cert.pem"), Path(folder, "key.pem")
        for path, data in ((cert, cert_pem), (key, key_pem)):
            path.write_bytes(data)
            os.chmod(path, 0o600)
        context.load_cert_chain(cert, key)
    return context


class TlsTerminator:
    def __init__(self, backend_port: int, cert_pem: bytes, key_pem: bytes, client_ca: bytes) -> None:
        self._backend_port = backend_port
        self._context = server_context(cert_pem, key_pem, client_ca)
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()
        self.peer_certificates: list[dict[str, Any]] = []
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port, ssl=self._context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for relay in self._relays:
            relay.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> TlsTerminator:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        try:
            self.peer_certificates.append(writer.get_extra_info("peercert"))
            backend_reader, backend_writer = await asyncio.open_connection("127.0.0.1", self._backend_port)
            pumps = [
                asyncio.create_task(_pump(reader, backend_writer)),
                asyncio.create_task(_pump(backend_reader, writer)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
                backend_writer.close()
        except OSError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                async with asyncio.timeout(1):
                    await writer.wait_closed()
            self._relays.discard(task)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ssl.SSLError):
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
