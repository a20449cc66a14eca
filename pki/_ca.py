"""Creating, issuing, writing and loading certificates with ``cryptography``."""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ._role import DEFAULT_ROLE_OID, ROLES, encode_role

__all__ = [
    "Identity",
    "create_ca",
    "issue_client",
    "issue_server",
    "load_identity",
    "role_extension",
    "write_identity",
]

CA_DAYS = 3650
SERVER_DAYS = 825
CLIENT_DAYS = 365
_BACKDATE = datetime.timedelta(minutes=5)  # tolerate clocks slightly behind ours
DEFAULT_SERVER_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Identity:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def create_ca(common_name: str = "jobs CA", *, days: int = CA_DAYS) -> Identity:
    """A self-signed CA that may sign end-entity certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Identity(cert, key)


def issue_server(
    ca: Identity,
    names: Iterable[str] = (),
    *,
    common_name: str = "jobs server",
    days: int = SERVER_DAYS,
) -> Identity:
    """A server certificate for localhost, 127.0.0.1, ::1 and ``names`` (serverAuth)."""
    all_names = list(dict.fromkeys([*DEFAULT_SERVER_NAMES, *names]))
    return issue(
        ca,
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name)],
        usages=[ExtendedKeyUsageOID.SERVER_AUTH],
        sans=all_names,
        days=days,
    )


def issue_client(
    ca: Identity,
    account: str,
    role: str | None,
    *,
    days: int = CLIENT_DAYS,
    role_oid: str = DEFAULT_ROLE_OID,
) -> Identity:
    """A client certificate (clientAuth) for ``account`` with ``role``.

    ``role`` must be one of ``ROLES``; ``None`` issues a certificate with no role,
    which the server lets do nothing.
    """
    if role is not None and role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not account:
        raise ValueError("the account name must not be empty")
    extensions = [] if role is None else [role_extension(role, role_oid)]
    return issue(
        ca,
        [x509.NameAttribute(NameOID.COMMON_NAME, account)],
        usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
        extensions=extensions,
        days=days,
    )


def role_extension(role: str, oid: str = DEFAULT_ROLE_OID) -> x509.UnrecognizedExtension:
    """The role extension: ``role`` as a DER UTF8String under ``oid``."""
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), encode_role(role))


def issue(
    ca: Identity,
    subject: Sequence[x509.NameAttribute[str]],
    *,
    usages: Sequence[x509.ObjectIdentifier] | None,
    sans: Sequence[str] = (),
    extensions: Sequence[x509.ExtensionType] = (),
    days: int = CLIENT_DAYS,
    not_before: datetime.datetime | None = None,
) -> Identity:
    """An end-entity certificate signed by ``ca``; the building block of the others.

    ``usages=None`` leaves out the extended key usage extension altogether.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or _now() - _BACKDATE
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(list(subject)))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in sans]), critical=False
        )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return Identity(builder.sign(ca.key, hashes.SHA256()), key)


def write_identity(identity: Identity, directory: Path, name: str) -> tuple[Path, Path]:
    """Write ``name.crt`` and ``name.key`` (mode 0600) into ``directory``."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    _write_private(key_path, identity.key_pem)
    cert_path.write_bytes(identity.cert_pem)
    return cert_path, key_path


def load_identity(cert_path: Path, key_path: Path) -> Identity:
    """Read a certificate and its private key (PEM)."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path} is not an EC private key")  # noqa: TRY004 (bad data)
    return Identity(cert, key)


def _write_private(path: Path, data: bytes) -> None:
    # Created 0600 from the start: never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(fd, 0o600)
        f.write(data)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """A CA signs certificates; an ECDSA end entity signs and agrees on keys."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ca,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
