"""Test PKI made with ``cryptography``: a CA, a server and an agent certificate, as PEM files.

Shaped like an Ankaios installation: the server certificate names ``ank-server``
(DNS SAN, serverAuth), the agent certificate has the SAN ``*`` (clientAuth), and
Ed25519 keys by default. Files are written with mode 0600.

grpcio's TLS stack (BoringSSL) does not verify Ed25519 handshake signatures:
a grpcio server double with its own TLS cannot use an Ed25519 key nor accept an
agent with one, so tests of it give both leaves EC keys (``server_kind``,
``agent_kind``; the CA may stay Ed25519). With Ed25519 leaves, put a plain double
behind ``tests.support.tls_terminator.TlsTerminator`` (OpenSSL) instead; the
agent itself makes its TLS with OpenSSL and handles both.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def new_key(kind: str = "ed25519") -> PrivateKey:
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def _sign_hash(key: PrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca(common: str = "ankaios-test-ca", kind: str = "ed25519") -> Issued:
    key = new_key(kind)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, _sign_hash(key))
    )
    return Issued(cert, key)


def issue(ca: Issued, common: str, dns: list[str], *, server: bool, kind: str = "ed25519") -> Issued:
    key = new_key(kind)
    now = datetime.datetime.now(datetime.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca.key, _sign_hash(ca.key))
    )
    return Issued(cert, key)


@dataclass(frozen=True)
class Pki:
    """A CA with one server and one agent certificate, written under ``folder``."""

    folder: Path
    ca: Issued
    server: Issued
    agent: Issued

    @property
    def ca_pem(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def agent_pem(self) -> Path:
        return self.folder / "agent.pem"

    @property
    def agent_key(self) -> Path:
        return self.folder / "agent-key.pem"

    def flags(self) -> list[str]:
        return [
            "--ca_pem",
            str(self.ca_pem),
            "--crt_pem",
            str(self.agent_pem),
            "--key_pem",
            str(self.agent_key),
        ]


def write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


def make_pki(
    folder: Path,
    *,
    server_dns: tuple[str, ...] = ("ank-server",),
    kind: str = "ed25519",
    server_kind: str | None = None,
    agent_kind: str | None = None,
) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    ca = make_ca(kind=kind)
    pki = Pki(
        folder,
        ca,
        issue(ca, "ank-server", list(server_dns), server=True, kind=server_kind or kind),
        issue(ca, "agent", ["*"], server=False, kind=agent_kind or kind),
    )
    write(pki.ca_pem, ca.cert_pem)
    write(pki.agent_pem, pki.agent.cert_pem)
    write(pki.agent_key, pki.agent.key_pem)
    return pki
