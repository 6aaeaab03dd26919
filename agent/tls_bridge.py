"""Mutual TLS to the server made by OpenSSL, with gRPC speaking plain HTTP/2 to a local socket.

gRPC's own TLS stack (BoringSSL inside grpc core) neither offers nor verifies
Ed25519 signatures, and Ed25519 is the key type Ankaios installations use for
the CA, the server and the agents: a grpcio channel cannot even finish the
handshake with such a server. Python's ``ssl`` module (OpenSSL) can, for every
key type OpenSSL supports. So for a TLS server the connection's channels dial
this bridge instead of the server:

* The bridge listens on a unix socket in a private folder (mode 0700, socket
  0600): only this user can use the agent's identity through it; a TCP port on
  loopback would lend it to every local process.
* For each connection gRPC opens, it connects to the server and makes the TLS
  handshake (TLS 1.2 or newer, the configured CA as the only trust anchor, the
  server verified as ``ank-server``, the agent's certificate presented, ALPN
  ``h2``), then carries bytes both ways with bounded buffers: at most one chunk
  is read per direction before the other side has taken the previous one.
  When either side ends, both are closed.
* A failed connect or handshake closes gRPC's connection: the call fails as
  UNAVAILABLE and the connection loop backs off as for a server that is down.
  A TLS failure is logged as a warning once per kind (until a connection gets
  through again), naming what to check; :attr:`TlsBridge.last_failure` gives
  the connection loop the real reason for its own log line.
* Keepalive pings, stream resets and GOAWAY are HTTP/2 frames: they pass
  through unchanged, so keepalive still detects a dead server end to end.

The bridge lives as long as the connection loop: one per loop, opened before
the first session and closed at shutdown (which also removes its folder).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import shutil
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ankaios_agent.agent.blocking import run_blocking
from ankaios_agent.agent.tls import TlsMaterial, client_context

logger = logging.getLogger(__name__)

# One chunk per direction in flight: reading waits until the other side has drained the last one.
CHUNK = 64 * 1024
_SOCKET_NAME = "server.sock"
_CLOSE_TIMEOUT = 1.0
_MAX_SOCKET_PATH = 107


class FailureKind(enum.Enum):
    """Why a connection to the server could not be bridged; each kind is warned about once."""

    UNREACHABLE = "unreachable"
    SERVER_NOT_TRUSTED = "server-not-trusted"
    WRONG_SERVER_NAME = "wrong-server-name"
    CERTIFICATE_NOT_VALID_NOW = "certificate-not-valid-now"
    SERVER_REFUSED_AGENT = "server-refused-agent"
    NO_COMMON_PARAMETERS = "no-common-parameters"
    NOT_TLS = "not-tls"
    OTHER = "other"


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    reason: str  # what happened, as the TLS library says it
    check: str  # what a person should check; empty when there is nothing TLS-specific to say

    def __str__(self) -> str:
        return f"{self.reason}; {self.check}" if self.check else self.reason


# OpenSSL's certificate verification results (X509_V_ERR_*) the agent can say something about.
_NOT_TRUSTED_CODES = {2, 7, 18, 19, 20, 21}
_NOT_VALID_NOW_CODES = {9, 10}
_HOSTNAME_MISMATCH = 62
_INVALID_PURPOSE = 26
# TLS alerts from the server about the agent's certificate (OpenSSL reason codes).
_REFUSED_AGENT_REASONS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED",
    "SSLV3_ALERT_BAD_CERTIFICATE",
    "TLSV1_ALERT_UNKNOWN_CA",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED",
    "SSLV3_ALERT_CERTIFICATE_REVOKED",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
    "TLSV1_ALERT_ACCESS_DENIED",
    "TLSV1_ALERT_DECRYPT_ERROR",
}
_NO_COMMON_REASONS = {
    "NO_COMMON_SIGNATURE_ALGORITHMS",
    "NO_SUITABLE_SIGNATURE_ALGORITHM",
    "NO_SHARED_CIPHER",
    "SSLV3_ALERT_HANDSHAKE_FAILURE",
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "UNSUPPORTED_PROTOCOL",
    "TLSV1_ALERT_INSUFFICIENT_SECURITY",
}
_NOT_TLS_REASONS = {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"}

_CHECK_CA = "check that the server certificate is signed by the CA given to the agent (ca_pem)"
_CHECK_NAME = "check that the server certificate names ank-server as DNS subjectAltName"
_CHECK_VALIDITY = "check the validity dates of the server certificate and the clock of this device"
_CHECK_PURPOSE = "check that the server certificate allows serverAuth (extended key usage)"
_CHECK_AGENT = (
    "the server refused the agent's certificate: check that it is signed by the CA the server "
    "trusts, not expired, and allows clientAuth"
)
_CHECK_PARAMETERS = (
    "the server and the agent found no TLS version, cipher or signature algorithm in common: "
    "check the key types of the certificates (Ed25519, ECDSA and RSA work) and that the server "
    "offers TLS 1.2 or newer"
)
_CHECK_ANY = (
    "check the CA given to the agent, that the server certificate names ank-server, and that the "
    "server trusts the agent's certificate"
)
_CHECK_NOT_TLS = "the server does not speak TLS there: check the port, or use http:// with --insecure"


# An HTTP/2 server's first bytes are its settings; a close before them is a refusal.
_CLOSED_BEFORE_ANSWER = Failure(
    FailureKind.SERVER_REFUSED_AGENT,
    "the server closed the TLS connection before answering",
    _CHECK_AGENT,
)


def classify(err: BaseException) -> Failure:
    """What a failed connect or handshake (or the server's first answer) means for a person."""
    reason = f"{type(err).__name__}: {err}"
    if isinstance(err, ssl.SSLCertVerificationError):
        code = err.verify_code
        reason = f"the server certificate failed verification: {err.verify_message}"
        if code in _NOT_TRUSTED_CODES:
            return Failure(FailureKind.SERVER_NOT_TRUSTED, reason, _CHECK_CA)
        if code == _HOSTNAME_MISMATCH:
            return Failure(FailureKind.WRONG_SERVER_NAME, reason, _CHECK_NAME)
        if code in _NOT_VALID_NOW_CODES:
            return Failure(FailureKind.CERTIFICATE_NOT_VALID_NOW, reason, _CHECK_VALIDITY)
        if code == _INVALID_PURPOSE:
            return Failure(FailureKind.OTHER, reason, _CHECK_PURPOSE)
        return Failure(FailureKind.OTHER, reason, _CHECK_CA)
    if isinstance(err, ssl.SSLError):
        library_reason = err.reason or ""
        if library_reason in _REFUSED_AGENT_REASONS:
            return Failure(FailureKind.SERVER_REFUSED_AGENT, reason, _CHECK_AGENT)
        if library_reason in _NO_COMMON_REASONS:
            return Failure(FailureKind.NO_COMMON_PARAMETERS, reason, _CHECK_PARAMETERS)
        if library_reason in _NOT_TLS_REASONS:
            return Failure(FailureKind.NOT_TLS, reason, _CHECK_NOT_TLS)
        return Failure(FailureKind.OTHER, reason, _CHECK_ANY)
    if isinstance(err, TimeoutError):
        return Failure(FailureKind.UNREACHABLE, "no TLS connection to the server in time", "")
    return Failure(FailureKind.UNREACHABLE, reason, "")


class TlsBridge:
    """A unix socket that relays each connection to ``address`` over mutual TLS (see module doc)."""

    def __init__(self, address: str, tls: TlsMaterial, *, connect_timeout: float) -> None:
        self._host, self._port = _split(address)
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._context: ssl.SSLContext | None = None
        self._folder: Path | None = None
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()
        self._warned: set[FailureKind] = set()
        self.last_failure: Failure | None = None  # since the server last answered

    @property
    def target(self) -> str:
        """The gRPC target of the bridge: ``unix:/…/server.sock``."""
        assert self._folder is not None, "the bridge is not open"
        return f"unix:{self._folder / _SOCKET_NAME}"

    async def open(self) -> None:
        # Building the context writes the key to a private file for a moment: off the loop.
        self._context = await run_blocking(client_context, self._tls)
        self._folder = await run_blocking(_private_folder)
        path = self._folder / _SOCKET_NAME
        self._server = await asyncio.start_unix_server(self._accept, path, limit=CHUNK)
        os.chmod(path, 0o600)
        logger.debug("TLS bridge to %s:%d listening on %s", self._host, self._port, path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for relay in self._relays:
            relay.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._folder is not None:
            await run_blocking(shutil.rmtree, self._folder, ignore_errors=True)
            self._folder = None

    async def __aenter__(self) -> TlsBridge:
        await self.open()
        return self

    async def __aexit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _accept(self, local_reader: asyncio.StreamReader, local_writer: asyncio.StreamWriter) -> None:
        relay = asyncio.current_task()
        assert relay is not None
        self._relays.add(relay)
        try:
            await self._relay(local_reader, local_writer)
        except Exception:
            # A bug here must cost one connection (gRPC retries), not the bridge.
            logger.exception("the TLS bridge failed on a connection to %s:%d", self._host, self._port)
        finally:
            self._relays.discard(relay)

    async def _relay(self, local_reader: asyncio.StreamReader, local_writer: asyncio.StreamWriter) -> None:
        assert self._context is not None
        try:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    server_reader, server_writer = await asyncio.open_connection(
                        self._host,
                        self._port,
                        ssl=self._context,
                        server_hostname=self._tls.server_name,
                        limit=CHUNK,
                    )
            except (OSError, TimeoutError) as err:
                self._failed(classify(err))
                return
            try:
                await self._pump_both(local_reader, local_writer, server_reader, server_writer)
            finally:
                await _close(server_writer)
        finally:
            await _close(local_writer)

    async def _pump_both(
        self,
        local_reader: asyncio.StreamReader,
        local_writer: asyncio.StreamWriter,
        server_reader: asyncio.StreamReader,
        server_writer: asyncio.StreamWriter,
    ) -> None:
        reached = asyncio.Event()

        def first_answer() -> None:
            # The server sent its first bytes: it accepted the agent, the TLS trouble is over.
            reached.set()
            self.last_failure = None
            self._warned.clear()

        upstream = asyncio.create_task(_pump(local_reader, server_writer))
        downstream = asyncio.create_task(_pump(server_reader, local_writer, on_first=first_answer))
        try:
            done, _ = await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
            upstream_ended_first = downstream not in done
        finally:
            upstream.cancel()
            downstream.cancel()
            results = await asyncio.gather(upstream, downstream, return_exceptions=True)
        if reached.is_set() or upstream_ended_first:
            return
        # With TLS 1.3 the server judges the agent's certificate after the client's handshake
        # is done: its refusal (an alert, or just a close) comes where its HTTP/2 settings should.
        server_error = results[1]
        if isinstance(server_error, ssl.SSLError):
            self._failed(classify(server_error))
        elif server_error is None or isinstance(server_error, OSError):
            self._failed(_CLOSED_BEFORE_ANSWER)

    def _failed(self, failure: Failure) -> None:
        self.last_failure = failure
        if failure.kind is FailureKind.UNREACHABLE or failure.kind in self._warned:
            # Unreachable servers are the connection loop's to report; repeats stay at debug.
            logger.debug("TLS connection to server %s:%d failed: %s", self._host, self._port, failure)
            return
        self._warned.add(failure.kind)
        logger.warning("TLS connection to server %s:%d failed: %s", self._host, self._port, failure)


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, on_first: Callable[[], None] | None = None
) -> None:
    if on_first is not None:
        data = await reader.read(CHUNK)
        if not data:
            return
        on_first()
        writer.write(data)
        await writer.drain()
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close, and give up on a polite TLS shutdown with a peer that does not answer any more."""
    writer.close()
    try:
        async with asyncio.timeout(_CLOSE_TIMEOUT):
            await writer.wait_closed()
    except TimeoutError:
        writer.transport.abort()
    except (OSError, ssl.SSLError):
        pass


def _private_folder() -> Path:
    """A new folder only this user may enter (mode 0700), short enough to hold a unix socket."""
    folder = Path(tempfile.mkdtemp(prefix="ank-agent-tls-"))
    if len(os.fsencode(folder / _SOCKET_NAME)) > _MAX_SOCKET_PATH:
        folder.rmdir()  # a long $TMPDIR: a socket path may not be longer than 107 bytes
        folder = Path(tempfile.mkdtemp(prefix="ank-agent-tls-", dir="/tmp"))
    return folder


def _split(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)
