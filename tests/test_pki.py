"""The certificate authority tooling: what the certificates say, and how keys are stored."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import pki
from jobs.server._auth import Principal, principal_from_der
from pki import Role


def test_ca() -> None:
    ca = pki.create_ca()
    constraints = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert isinstance(ca.key, ec.EllipticCurvePrivateKey)
    assert ca.key.curve.name == "secp256r1"


def test_server_certificate_names_and_usage() -> None:
    ca = pki.create_ca()
    server = pki.issue_server(ca, ["jobs.example.com", "10.1.2.3"])
    sans = server.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"localhost", "jobs.example.com"}
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {
        "127.0.0.1",
        "::1",
        "10.1.2.3",
    }
    usages = server.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]
    server.cert.verify_directly_issued_by(ca.cert)


@pytest.mark.parametrize("role", ["readonly", "full"])
def test_client_certificate_carries_account_and_role(role: str) -> None:
    ca = pki.create_ca()
    client = pki.issue_client(ca, "alice", role)
    assert client.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    extension = client.cert.extensions.get_extension_for_oid(
        x509.ObjectIdentifier(pki.DEFAULT_ROLE_OID)
    )
    assert not extension.critical  # OpenSSL would refuse an unknown critical extension
    assert isinstance(extension.value, x509.UnrecognizedExtension)
    assert extension.value.value == b"\x0c" + bytes([len(role)]) + role.encode()
    der = client.cert.public_bytes(Encoding.DER)
    assert principal_from_der(der) == Principal("alice", Role(role))


def test_role_oid_arcs_fit_in_31_bits() -> None:
    # Go's crypto/x509 cannot parse a certificate with a larger arc.
    assert all(int(arc) < 2**31 for arc in pki.DEFAULT_ROLE_OID.split("."))


def test_bad_role_and_account_are_refused() -> None:
    ca = pki.create_ca()
    with pytest.raises(ValueError, match="role"):
        pki.issue_client(ca, "alice", "admin")
    with pytest.raises(ValueError, match="account"):
        pki.issue_client(ca, "", "full")


def test_written_keys_are_private_and_load_back(tmp_path: Path) -> None:
    ca = pki.create_ca()
    cert_path, key_path = pki.write_identity(ca, tmp_path / "pki", "ca")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "pki").stat().st_mode) == 0o700
    loaded = pki.load_identity(cert_path, key_path)
    assert loaded.cert == ca.cert
    assert loaded.key.private_numbers() == ca.key.private_numbers()


def test_long_role_value_uses_the_long_der_length_form() -> None:
    extension = pki.role_extension("x" * 200)
    assert extension.value[:3] == b"\x0c\x81\xc8"
