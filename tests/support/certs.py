"""Test certificates for mutual TLS, made fresh per test session with ``cryptography``.

The layout follows what an Ankaios v1.0.1 installation uses: one CA, a server
certificate whose only DNS name is ``ank-server`` (agents verify the server by
that fixed name whatever host they dial) with EKU serverAuth, and agent
certificates with EKU clientAuth whose DNS names list the agent names they may
use (``*`` for any).

Keys are ECDSA P-256 unless asked for Ed25519; a CA can issue leaves of the
other key type. The Ankaios system tests use Ed25519, but grpcio's TLS stack
(BoringSSL) does not offer Ed25519 signature algorithms, so a grpcio server with
an Ed25519 key, or one asked to accept an agent with such a key, fails every
handshake (NO_COMMON_SIGNATURE_ALGORITHMS); ``key_type="ed25519"`` exists to show
that, and to test the agent, which makes its TLS with OpenSSL and handles both
(put a plain double behind ``tests.support.tls_terminator.TlsTerminator`` then).
``CertificateAuthority`` can also issue a certificate without any subjectAltName
and lives side by side with a second, unrelated CA, so tests can present a
foreign or an incomplete client identity.

``write_pki`` puts a CA and an agent identity into files (mode 0600) and gives
the agent's command-line flags for them.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_NAME = "ank-server"
_VALIDITY = datetime.timedelta(days=2)


@dataclass(frozen=True)
class Identity:
    """A certificate and its private key, both PEM."""

    cert: bytes
    key: bytes

    def write(self, folder: Path, stem: str) -> tuple[Path, Path]:
        """Write ``<stem>.pem`` and ``<stem>-key.pem`` with mode 0600; return both paths."""
        cert_path, key_path = folder / f"{stem}.pem", folder / f"{stem}-key.pem"
        for path, data in ((cert_path, self.cert), (key_path, self.key)):
            path.write_bytes(data)
            os.chmod(path, 0o600)
        return cert_path, key_path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


KeyType = Literal["ecdsa", "ed25519"]
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class CertificateAuthority:
    """A self-signed CA that issues leaf certificates."""

    def __init__(self, common_name: str = "ank-test-ca", key_type: KeyType = "ecdsa") -> None:
        self._key_type = key_type
        self._key = _new_key(key_type)
        self._hash = None if key_type == "ed25519" else hashes.SHA256()
        now = datetime.datetime.now(datetime.UTC)
        self._name = _name(common_name)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
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
            .sign(self._key, self._hash)
        )

    @property
    def cert(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.PEM)

    def write(self, folder: Path, stem: str = "ca") -> Path:
        path = folder / f"{stem}.pem"
        path.write_bytes(self.cert)
        os.chmod(path, 0o600)
        return path

    def issue(
        self,
        common_name: str,
        dns_names: Sequence[str] | None,
        *,
        server: bool = False,
        key_type: KeyType | None = None,
    ) -> Identity:
        """A leaf for ``common_name``; ``dns_names=None`` leaves out the subjectAltName extension.

        The leaf's key is of the CA's type unless ``key_type`` says otherwise.
        """
        key = _new_key(key_type or self._key_type)
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if dns_names is not None:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
            )
        cert = builder.sign(self._key, self._hash)
        return Identity(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def server_identity(
        self, dns_names: Sequence[str] = (SERVER_NAME,), key_type: KeyType | None = None
    ) -> Identity:
        return self.issue(SERVER_NAME, dns_names, server=True, key_type=key_type)

    def agent_identity(
        self,
        dns_names: Sequence[str] | None = ("*",),
        common_name: str = "agent",
        key_type: KeyType | None = None,
    ) -> Identity:
        return self.issue(common_name, dns_names, key_type=key_type)


@dataclass(frozen=True)
class Pki:
    """Everything a mutual-TLS test needs: CA, server and agent identities, and a foreign CA."""

    ca: CertificateAuthority
    server: Identity
    agent: Identity
    foreign_ca: CertificateAuthority

    @classmethod
    def create(cls, key_type: KeyType = "ecdsa") -> Pki:
        ca = CertificateAuthority(key_type=key_type)
        foreign = CertificateAuthority("ank-foreign-ca", key_type=key_type)
        return cls(ca, ca.server_identity(), ca.agent_identity(), foreign)


def write_file(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


@dataclass(frozen=True)
class PkiFiles:
    """A CA with one server and one agent identity; the CA and the agent's are files in ``folder``."""

    folder: Path
    ca: CertificateAuthority
    server: Identity
    agent: Identity

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
        """The agent's command-line options naming these files."""
        return [
            "--ca_pem",
            str(self.ca_pem),
            "--crt_pem",
            str(self.agent_pem),
            "--key_pem",
            str(self.agent_key),
        ]


def write_pki(
    folder: Path,
    *,
    server_dns: Sequence[str] = (SERVER_NAME,),
    key_type: KeyType = "ed25519",
    server_key_type: KeyType | None = None,
    agent_key_type: KeyType | None = None,
) -> PkiFiles:
    """A fresh CA (Ed25519 unless asked otherwise) and its leaves; writes ca.pem, agent(-key).pem."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority(key_type=key_type)
    pki = PkiFiles(
        folder,
        ca,
        ca.server_identity(server_dns, key_type=server_key_type),
        ca.agent_identity(key_type=agent_key_type),
    )
    ca.write(folder)
    pki.agent.write(folder, "agent")
    return pki


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.support.certs DIR``: write ca.pem, server(-key).pem and agent(-key).pem."""
    import argparse  # noqa: PLC0415 (only the command line needs it)

    parser = argparse.ArgumentParser(prog="python -m tests.support.certs", description=main.__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--agent-name", action="append", help="agent certificate DNS name (default '*')")
    args = parser.parse_args(argv)
    args.folder.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority()
    ca.write(args.folder)
    ca.server_identity().write(args.folder, "server")
    ca.agent_identity(args.agent_name or ["*"]).write(args.folder, "agent")
    print(f"wrote ca.pem, server.pem, server-key.pem, agent.pem, agent-key.pem to {args.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
