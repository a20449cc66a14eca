"""The role extension, defined once: its default OID, the roles, and their DER encoding.

The issuer (``pki``) writes it and the server (``jobs.server``) reads it, both
from here. The extension is non-critical (OpenSSL rejects a chain with an
unknown critical extension) and its value is a DER UTF8String naming the role.
"""

from __future__ import annotations

import enum

__all__ = ["DEFAULT_ROLE_OID", "ROLES", "Role", "decode_role", "encode_role"]

DEFAULT_ROLE_OID = "1.3.6.1.4.1.99999.1.1"
"""Not a registered enterprise arc: harmless, as only our own CA's certificates are
read. Every arc stays under 2**31 so Go's crypto/x509 can parse it."""

_UTF8STRING = 0x0C


class Role(enum.Enum):
    """What an account may do. A certificate without a valid role may do nothing."""

    READONLY = "readonly"
    """Status, list, logs, wait and info on the account's jobs."""
    FULL = "full"
    """Also run and stop them."""

    def allows(self, needed: Role) -> bool:
        """Whether this role may make a call that needs ``needed``."""
        return self is Role.FULL or needed is Role.READONLY


ROLES = tuple(role.value for role in Role)
"""The role names, as written in certificates and taken by ``jobs pki issue --role``."""


def encode_role(role: Role | str) -> bytes:
    """The extension's value for ``role``: a DER UTF8String (of any text, so that
    tests can craft roles the server must refuse)."""
    data = (role.value if isinstance(role, Role) else role).encode()
    if len(data) < 0x80:
        return bytes([_UTF8STRING, len(data)]) + data
    size = len(data).to_bytes((len(data).bit_length() + 7) // 8, "big")
    return bytes([_UTF8STRING, 0x80 | len(size)]) + size + data


def decode_role(der: bytes) -> Role | None:
    """The role an extension value grants, or None.

    Only exact DER grants a role: a UTF8String tag, the minimal length encoding
    (short form below 128 bytes, no leading zero octets in the long form), no
    trailing bytes, valid UTF-8, and one of the role names. BER variants of the
    same text are refused, so one value has exactly one accepted encoding.
    """
    if len(der) < 2 or der[0] != _UTF8STRING:
        return None
    length, start = der[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(der) < 2 + count or der[2] == 0:
            return None
        length, start = int.from_bytes(der[2 : 2 + count], "big"), 2 + count
        if length < 0x80:
            return None  # the short form was required
    if len(der) != start + length:
        return None
    try:
        return Role(der[start:].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
