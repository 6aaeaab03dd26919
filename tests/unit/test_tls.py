"""TLS material is read and checked once at startup; every problem is one line naming the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ankaios_agent.agent.errors import UsageError
from ankaios_agent.agent.tls import (
    PemSource,
    TlsMaterial,
    check_with_cryptography,
    check_with_ssl,
    load_material,
)
from tests.support.certs import CertificateAuthority, KeyType, PkiFiles, write_file, write_pki

Check = Callable[[TlsMaterial, str, str, str], None]
CHECKS = [pytest.param(check_with_cryptography, id="cryptography"), pytest.param(check_with_ssl, id="ssl")]


def _sources(pki: PkiFiles) -> tuple[PemSource, PemSource, PemSource]:
    return (
        PemSource("--ca_pem", pki.ca_pem),
        PemSource("--crt_pem", pki.agent_pem),
        PemSource("--key_pem", pki.agent_key),
    )


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa"])
def test_good_material_loads(tmp_path: Path, kind: KeyType) -> None:
    pki = write_pki(tmp_path, key_type=kind)
    material = load_material(*_sources(pki))
    assert material == TlsMaterial(pki.ca.cert, pki.agent.cert, pki.agent.key)
    assert material.server_name == "ank-server"


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("kind", ["ed25519", "ecdsa"])
def test_both_checkers_accept_good_material(tmp_path: Path, check: Check, kind: KeyType) -> None:
    pki = write_pki(tmp_path, key_type=kind)
    check(TlsMaterial(pki.ca.cert, pki.agent.cert, pki.agent.key), "ca", "crt", "key")


@pytest.mark.parametrize("check", CHECKS)
def test_key_of_another_certificate_is_refused(tmp_path: Path, check: Check) -> None:
    pki = write_pki(tmp_path)
    other = pki.ca.issue("other", ["*"], server=False)
    material = TlsMaterial(pki.ca.cert, pki.agent.cert, other.key)
    with pytest.raises(
        UsageError, match=r"private key \(key\) does not belong to the agent certificate \(crt\)"
    ):
        check(material, "ca", "crt", "key")


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize(
    ("item", "why"),
    [("ca", "the CA certificate \\(ca\\) is not a PEM certificate"), ("key", "key")],
)
def test_garbage_is_refused(tmp_path: Path, check: Check, item: str, why: str) -> None:
    pki = write_pki(tmp_path)
    parts = {"ca": pki.ca.cert, "cert": pki.agent.cert, "key": pki.agent.key}
    parts[item] = b"-----BEGIN GARBAGE-----\nAAAA\n-----END GARBAGE-----\n"
    with pytest.raises(UsageError, match=why):
        check(TlsMaterial(parts["ca"], parts["cert"], parts["key"]), "ca", "crt", "key")


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda p: p.agent_key.chmod(0o640), "agent private key .* insecure permissions 0640.*0600 or 0400"),
        (lambda p: p.agent_key.chmod(0o644), "insecure permissions 0644"),
        (lambda p: p.agent_pem.chmod(0o666), "agent certificate .* insecure permissions 0666"),
        (lambda p: p.ca_pem.chmod(0o755), "CA certificate .* insecure permissions 0755"),
        (lambda p: p.ca_pem.unlink(), r"cannot read the CA certificate .*ca.pem \(--ca_pem\): No such file"),
        (lambda p: write_file(p.agent_pem, b"\n"), r"agent certificate .* \(--crt_pem\) is empty"),
        (
            lambda p: write_file(p.agent_pem, p.agent.cert + p.ca.cert),
            "exactly one PEM certificate, found 2",
        ),
        (lambda p: write_file(p.agent_pem, p.agent.key), "exactly one PEM certificate, found 0"),
    ],
)
def test_file_problems_are_one_line(tmp_path: Path, mutate: Callable[[PkiFiles], object], why: str) -> None:
    pki = write_pki(tmp_path)
    mutate(pki)
    with pytest.raises(UsageError, match=why) as info:
        load_material(*_sources(pki))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o644, 0o444])
def test_certificate_modes_that_pass(tmp_path: Path, mode: int) -> None:
    pki = write_pki(tmp_path)
    pki.agent_pem.chmod(mode)
    pki.ca_pem.chmod(mode)
    load_material(*_sources(pki))


def test_content_from_the_config_file_needs_no_file(tmp_path: Path) -> None:
    pki = write_pki(tmp_path)
    ca = CertificateAuthority(key_type="ed25519")
    foreign = PemSource("ca_pem_content in f", content=ca.cert.decode())
    material = load_material(foreign, *_sources(pki)[1:])
    assert material.ca == ca.cert
