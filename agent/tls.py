"""Mutual-TLS material for the server connection: read and checked once at startup.

The agent proves who it is with one client certificate and its private key, and
trusts the server only if its certificate chains up to the configured CA *and*
names ``ank-server`` (a DNS subjectAltName), whatever host the URL contains: that
is the name every Ankaios server certificate is issued for, so the host in the
URL may be an IP address or an alias.

Everything that can be wrong with the files is found here, before the first
connection attempt, and reported as one :class:`~agent.errors.UsageError` line
naming the file and where it came from (flag, environment variable or config
file): a missing or unreadable file, a file that is not PEM, a private key that
others may read, a certificate file with more than one certificate (the server
refuses an agent that presents a chain), a key that does not belong to the
certificate. The check uses the ``cryptography`` package when it is installed
(for the clearest messages), and always loads the material the way the
connection will, with the standard library's ``ssl`` module (:func:`client_context`),
so that whatever OpenSSL refuses is found at startup too.
"""

from __future__ import annotations

import logging
import os
import ssl
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ankaios_agent.agent.errors import UsageError

logger = logging.getLogger(__name__)

SERVER_NAME = "ank-server"
_BEGIN_CERT = b"-----BEGIN CERTIFICATE-----"
# A private key that group or others can read is refused; these two modes are allowed.
_KEY_MODES = (0o600, 0o400)


@dataclass(frozen=True)
class PemSource:
    """Where one PEM item comes from: a file, or text from the config file."""

    origin: str  # what a person typed, e.g. "--ca_pem" or "ca_pem_content in /etc/ankaios/ank-agent.conf"
    path: Path | None = None
    content: str | None = None


@dataclass(frozen=True)
class TlsMaterial:
    """CA, client certificate and key, as PEM bytes (the key never appears in a repr)."""

    ca: bytes
    cert: bytes
    key: bytes = field(repr=False)
    server_name: str = SERVER_NAME


def load_material(ca: PemSource, cert: PemSource, key: PemSource) -> TlsMaterial:
    """Read the three items and check that they can work together; UsageError otherwise."""
    material = TlsMaterial(
        ca=_read(ca, "CA certificate", is_key=False),
        cert=_read(cert, "agent certificate", is_key=False),
        key=_read(key, "agent private key", is_key=True),
    )
    check_material(material, ca.origin, cert.origin, key.origin)
    return material


def check_material(material: TlsMaterial, ca_origin: str, cert_origin: str, key_origin: str) -> None:
    if material.cert.count(_BEGIN_CERT) != 1:
        raise UsageError(
            f"the agent certificate ({cert_origin}) must hold exactly one PEM certificate, found "
            f"{material.cert.count(_BEGIN_CERT)}: the server refuses an agent that presents a chain"
        )
    try:
        import cryptography  # noqa: F401, PLC0415 (optional: only used when installed)
    except ImportError:
        check_with_ssl(material, ca_origin, cert_origin, key_origin)
    else:
        check_with_cryptography(material, ca_origin, cert_origin, key_origin)
        # The connection loads the material with OpenSSL: whatever it refuses fails here, at startup.
        check_with_ssl(material, ca_origin, cert_origin, key_origin)


def check_with_cryptography(material: TlsMaterial, ca_origin: str, cert_origin: str, key_origin: str) -> None:
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    try:
        x509.load_pem_x509_certificates(material.ca)
    except ValueError as err:
        raise UsageError(f"the CA certificate ({ca_origin}) is not a PEM certificate: {err}") from None
    try:
        cert = x509.load_pem_x509_certificate(material.cert)
    except ValueError as err:
        raise UsageError(f"the agent certificate ({cert_origin}) is not a PEM certificate: {err}") from None
    try:
        key = serialization.load_pem_private_key(material.key, password=None)
    except (ValueError, TypeError) as err:
        # TypeError: the key is encrypted; the agent has nobody to ask for a passphrase.
        raise UsageError(
            f"the agent private key ({key_origin}) is not an unencrypted PEM private key: {err}"
        ) from None
    spki = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise UsageError(
            f"the agent private key ({key_origin}) does not belong to the agent certificate ({cert_origin})"
        )


def check_with_ssl(material: TlsMaterial, ca_origin: str, cert_origin: str, key_origin: str) -> None:
    """The same checks with the standard library, for an installation without ``cryptography``."""
    try:
        client_context(material)
    except _CaError as err:
        raise UsageError(f"the CA certificate ({ca_origin}) is not a PEM certificate: {err}") from None
    except ssl.SSLError as err:
        if "KEY_VALUES_MISMATCH" in str(err.reason):
            raise UsageError(
                f"the agent private key ({key_origin}) does not belong to the agent certificate "
                f"({cert_origin})"
            ) from None
        raise UsageError(
            f"the agent certificate ({cert_origin}) or private key ({key_origin}) cannot be used: {err}"
        ) from None


class _CaError(ssl.SSLError):
    """The CA text could not be loaded as trust anchor."""


def client_context(material: TlsMaterial) -> ssl.SSLContext:
    """The client side of mutual TLS with OpenSSL: every key type OpenSSL signs with (Ed25519 too).

    TLS 1.2 or newer, the configured CA as the only trust anchor, the server verified by
    ``material.server_name`` (its DNS subjectAltName only), the agent certificate presented,
    and HTTP/2 offered by ALPN. The key is read from the material once, here: OpenSSL loads a
    key only from a file, so it gets a private copy that is removed right after loading.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.hostname_checks_common_name = False
    context.set_alpn_protocols(["h2"])
    try:
        context.load_verify_locations(cadata=material.ca.decode("ascii", errors="replace"))
    except ssl.SSLError as err:
        raise _CaError(*err.args) from None
    with tempfile.TemporaryDirectory(prefix="ank-agent-tls-") as folder:  # mode 0700
        cert_file, key_file = Path(folder, "cert.pem"), Path(folder, "key.pem")
        for path, data in ((cert_file, material.cert), (key_file, material.key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        # An encrypted key fails here instead of prompting on the terminal for a passphrase.
        context.load_cert_chain(cert_file, key_file, password=lambda: b"")
    if not _present_own_certificate_only(context):
        logger.warning(
            "cannot stop OpenSSL from sending the CA certificate along with the agent certificate; "
            "an Ankaios v1.0.1 server refuses such a client as 'Ambiguous agent certificates provided!'"
        )
    return context


# OpenSSL's SSL_CTRL_MODE and SSL_MODE_NO_AUTO_CHAIN (ssl.h, stable since OpenSSL 1.0.2).
_SSL_CTRL_MODE = 33
_SSL_MODE_NO_AUTO_CHAIN = 0x8


def _present_own_certificate_only(context: ssl.SSLContext) -> bool:
    """Make the handshake carry the agent's certificate alone; False if that cannot be done.

    With no chain configured, OpenSSL completes the client's chain from the trust
    store, so the server would receive the CA as a second certificate; an Ankaios
    v1.0.1 server refuses any client that sends more than one. Python's ``ssl``
    has no switch for OpenSSL's "no auto chain" mode, so it is set on the
    context's ``SSL_CTX`` through the ``_ssl`` module's own OpenSSL. The pointer
    is CPython's (the first field after the object header); it is used only if
    OpenSSL reports the very options Python reports for this context.
    """
    import ctypes  # noqa: PLC0415 (only a TLS session needs it: ~0.4 MiB an agent without TLS keeps)

    try:
        libssl = ctypes.CDLL(ssl._ssl.__file__)  # type: ignore[attr-defined]
        get_options, ctrl = libssl.SSL_CTX_get_options, libssl.SSL_CTX_ctrl
    except (OSError, AttributeError):
        return False
    get_options.restype, get_options.argtypes = ctypes.c_uint64, [ctypes.c_void_p]
    ctrl.restype, ctrl.argtypes = (
        ctypes.c_long,
        [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p],
    )
    ssl_ctx = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not ssl_ctx or get_options(ssl_ctx) != int(context.options):
        return False
    mode = ctrl(ssl_ctx, _SSL_CTRL_MODE, _SSL_MODE_NO_AUTO_CHAIN, None)
    return bool(mode & _SSL_MODE_NO_AUTO_CHAIN)


def _read(source: PemSource, what: str, *, is_key: bool) -> bytes:
    if source.content is not None:
        return source.content.encode()
    assert source.path is not None
    path = source.path
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        _check_mode(mode, path, what, source.origin, is_key=is_key)
        data = path.read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read the {what} {path} ({source.origin}): {err.strerror or err}") from None
    if not data.strip():
        raise UsageError(f"the {what} {path} ({source.origin}) is empty")
    return data


def _check_mode(mode: int, path: Path, what: str, origin: str, *, is_key: bool) -> None:
    if is_key:
        if mode not in _KEY_MODES:
            raise UsageError(
                f"the {what} {path} ({origin}) has insecure permissions {mode:04o}; "
                "a private key must have mode 0600 or 0400"
            )
    elif not mode & stat.S_IRUSR or mode & (stat.S_IWGRP | stat.S_IWOTH) or mode & 0o111:
        raise UsageError(
            f"the {what} {path} ({origin}) has insecure permissions {mode:04o}; a certificate must be "
            "readable by its owner, not writable by group or others and not executable (e.g. 0644 or 0600)"
        )
