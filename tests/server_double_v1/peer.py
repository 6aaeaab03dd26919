"""The v1.0.1 server's checks of an agent's client certificate (pure apart from PEM parsing).

With mutual TLS the TLS layer already refused clients without a certificate
from the configured CA. Per ConnectAgent call the server then looks at the
peer certificates before it reads anything, and after the hello compares the
agent name with the certificate's DNS names; only exact equality and the
literal ``*`` count. A SAN extension without any DNS name lets every name in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509

# grpc core's auth-context property names. On the server side the chain property holds the
# certificates the client sent besides its leaf (and is absent when it sent only the leaf).
_CHAIN = "x509_pem_cert_chain"
_LEAF = "x509_pem_cert"
_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class PeerCheck:
    """The outcome of the first check: a refusal message, or the DNS names to compare later."""

    refusal: str | None
    dns_names: tuple[str, ...] = ()


def check_peer(auth_context: Mapping[str, Sequence[bytes]]) -> PeerCheck:
    leaf = b"".join(auth_context.get(_LEAF, ()))
    chain = b"".join(auth_context.get(_CHAIN, ()))
    others = {block.strip() for block in chain.split(_PEM_BEGIN) if block.strip()} - {
        leaf.replace(_PEM_BEGIN, b"").strip()
    }
    if others:
        return PeerCheck("Ambiguous agent certificates provided!")
    if not leaf:
        return PeerCheck("No subject alt names found in agent certificates!")
    cert = x509.load_pem_x509_certificate(leaf)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return PeerCheck("No subject alt names found in agent certificates!")
    return PeerCheck(None, tuple(san.value.get_values_for_type(x509.DNSName)))


def name_refusal(agent: str, dns_names: Sequence[str]) -> str | None:
    """The refusal for ``agent`` given the certificate's DNS names, or None if it may connect."""
    if not dns_names or agent in dns_names or "*" in dns_names:
        return None
    listed = ", ".join(f'"{n}"' for n in dns_names)
    return f"Agent name '{agent}' does not match SAN [{listed}] in agent certificates!"
