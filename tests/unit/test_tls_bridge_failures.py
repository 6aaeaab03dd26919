"""What the TLS bridge tells a person about a failed server connection, per kind of failure."""

from __future__ import annotations

import ssl

import pytest

from ankaios_agent.agent.tls_bridge import FailureKind, classify


def _verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    err = ssl.SSLCertVerificationError(1, "certificate verify failed")
    err.verify_code, err.verify_message = code, message
    return err


def _ssl_error(reason: str) -> ssl.SSLError:
    err = ssl.SSLError(1, reason)
    err.reason = reason
    return err


@pytest.mark.parametrize(
    ("err", "kind", "check"),
    [
        (_verify_error(20, "unable to get local issuer certificate"), FailureKind.SERVER_NOT_TRUSTED, "CA"),
        (
            _verify_error(19, "self-signed certificate in certificate chain"),
            FailureKind.SERVER_NOT_TRUSTED,
            "CA",
        ),
        (_verify_error(62, "hostname mismatch"), FailureKind.WRONG_SERVER_NAME, "names ank-server"),
        (_verify_error(10, "certificate has expired"), FailureKind.CERTIFICATE_NOT_VALID_NOW, "clock"),
        (_verify_error(9, "certificate is not yet valid"), FailureKind.CERTIFICATE_NOT_VALID_NOW, "clock"),
        (_verify_error(26, "unsuitable certificate purpose"), FailureKind.OTHER, "serverAuth"),
        (
            _ssl_error("TLSV13_ALERT_CERTIFICATE_REQUIRED"),
            FailureKind.SERVER_REFUSED_AGENT,
            "refused the agent",
        ),
        (_ssl_error("TLSV1_ALERT_UNKNOWN_CA"), FailureKind.SERVER_REFUSED_AGENT, "refused the agent"),
        (_ssl_error("NO_COMMON_SIGNATURE_ALGORITHMS"), FailureKind.NO_COMMON_PARAMETERS, "key types"),
        (_ssl_error("SSLV3_ALERT_HANDSHAKE_FAILURE"), FailureKind.NO_COMMON_PARAMETERS, "key types"),
        (_ssl_error("WRONG_VERSION_NUMBER"), FailureKind.NOT_TLS, "--insecure"),
        (_ssl_error("SOME_NEW_REASON"), FailureKind.OTHER, "names ank-server"),
        (ConnectionRefusedError(111, "Connection refused"), FailureKind.UNREACHABLE, ""),
        (TimeoutError(), FailureKind.UNREACHABLE, ""),
    ],
)
def test_each_failure_names_what_to_check(err: BaseException, kind: FailureKind, check: str) -> None:
    failure = classify(err)
    assert failure.kind is kind
    assert check in failure.check
    assert failure.reason in str(failure)


def test_a_verification_failure_quotes_openssl() -> None:
    assert "hostname mismatch" in classify(_verify_error(62, "hostname mismatch")).reason
