"""Who is calling and what they may do: the principal from the client certificate."""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DEFAULT_ROLE_OID", "Principal", "Role", "Unauthenticated", "principal_from_der"]

DEFAULT_ROLE_OID = "1.3.6.1.4.1.99999.1.1"


class Role(enum.Enum):
    """What an account may do. A certificate without a valid role may do nothing."""

    READONLY = "readonly"
    """Status, list, logs and wait on the account's jobs."""
    FULL = "full"
    """Also run and stop them."""

    def allows(self, needed: Role) -> bool:
        return self is Role.FULL or needed is Role.READONLY


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: its account (the certificate's subject CN) and its role, if any."""

    account: str
    role: Role | None


class Unauthenticated(Exception):
    """The certificate verified, but breaks our rules for a client identity."""


@functools.lru_cache(maxsize=1024)
def principal_from_der(der: bytes, role_oid: str = DEFAULT_ROLE_OID) -> Principal:
    """Read the principal from a DER client certificate already verified by TLS.

    Raises ``Unauthenticated`` when the certificate lacks the clientAuth usage or
    does not name exactly one CN. A missing, malformed or unknown role is not an
    error: the principal just has no role.
    """
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise Unauthenticated("the client certificate cannot be parsed") from None
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise Unauthenticated("the client certificate has no extended key usage") from None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise Unauthenticated("the client certificate does not allow clientAuth")
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or not isinstance(names[0].value, str) or not names[0].value:
        raise Unauthenticated("the client certificate must name exactly one CN")
    return Principal(names[0].value, _role(cert, role_oid))


def _role(cert: x509.Certificate, oid: str) -> Role | None:
    try:
        extension = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid))
    except x509.ExtensionNotFound:
        return None
    value = extension.value
    if not isinstance(value, x509.UnrecognizedExtension):
        return None
    text = _der_utf8string(value.value)
    try:
        return Role(text) if text is not None else None
    except ValueError:
        return None


def _der_utf8string(der: bytes) -> str | None:
    """The text of a DER UTF8String (short or long length form), or None."""
    if len(der) < 2 or der[0] != 0x0C:
        return None
    length, start = der[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(der) < 2 + count:
            return None
        length, start = int.from_bytes(der[2 : 2 + count], "big"), 2 + count
    if len(der) != start + length:
        return None
    try:
        return der[start:].decode("utf-8")
    except UnicodeDecodeError:
        return None
