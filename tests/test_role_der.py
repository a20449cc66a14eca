"""Crafted role extensions: the extension twice, and roles in BER that is not DER.

cryptography will not put one extension in a certificate twice, so that
certificate is built by hand: issued with a stand-in OID of the same length,
whose bytes are then replaced in the signed part, which the CA signs again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from harness import RunningServer
from pki_fixtures import Certificates

import pki
from gen.jobs.v1 import JobServiceStub, ListRequest
from jobs.client import open_channel
from jobs.server._auth import Unauthenticated, principal_from_der
from pki._ca import issue

STAND_IN_OID = "1.3.6.1.4.1.99999.1.2"
"""Same encoded length as the role's default OID, 1.3.6.1.4.1.99999.1.1."""

NOT_DER = {
    "long form for a short length": b"\x0c\x81\x04full",
    "long form with a leading zero": b"\x0c\x82\x00\x04full",
    "indefinite length": b"\x0c\x80full\x00\x00",
    "constructed string": b"\x2c\x06\x0c\x04full",
    "trailing byte": b"\x0c\x04full\x00",
    "length past the end": b"\x0c\x05full",
    "OCTET STRING": b"\x04\x04full",
    "not UTF-8": b"\x0c\x04\xff\xfe\xfd\xfc",
}


def _oid(dotted: str) -> bytes:
    """The DER encoding of an OBJECT IDENTIFIER."""
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([arcs[0] * 40 + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        body += bytes(reversed(chunk))
    return bytes([0x06, len(body)]) + body


def _tlv(tag: int, body: bytes) -> bytes:
    if len(body) < 0x80:
        return bytes([tag, len(body)]) + body
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def role_twice(ca: pki.Identity, account: str) -> pki.Identity:
    """A client certificate carrying the role extension twice (``full`` both times)."""
    stand_in = issue(
        ca,
        [x509.NameAttribute(NameOID.COMMON_NAME, account)],
        usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
        extensions=[
            pki.role_extension("full"),
            pki.role_extension("full", STAND_IN_OID),
        ],
    )
    tbs = stand_in.cert.tbs_certificate_bytes
    assert tbs.count(_oid(STAND_IN_OID)) == 1
    tbs = tbs.replace(_oid(STAND_IN_OID), _oid(pki.DEFAULT_ROLE_OID))
    original = stand_in.cert.public_bytes(serialization.Encoding.DER)
    after = original[original.index(stand_in.cert.tbs_certificate_bytes) + len(tbs) :]
    algorithm = after[: 2 + after[1]]
    signature = ca.key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    der = _tlv(0x30, tbs + algorithm + _tlv(0x03, b"\0" + signature))
    return pki.Identity(x509.load_der_x509_certificate(der), stand_in.key)


def test_the_crafted_certificate_is_what_it_claims(test_pki: Certificates) -> None:
    ca = pki.create_ca()
    cert = role_twice(ca, "oscar").cert
    cert.verify_directly_issued_by(ca.cert)  # a valid signature by the CA
    with pytest.raises(x509.DuplicateExtension):
        _ = cert.extensions


def test_role_twice_is_unauthenticated() -> None:
    identity = role_twice(pki.create_ca(), "oscar")
    der = identity.cert.public_bytes(serialization.Encoding.DER)
    with pytest.raises(Unauthenticated, match="malformed"):
        principal_from_der(der)


@pytest.mark.parametrize("value", NOT_DER.values(), ids=NOT_DER.keys())
def test_only_exact_der_grants_a_role(value: bytes) -> None:
    assert pki.decode_role(value) is None
    assert pki.decode_role(pki.encode_role("full")) is pki.Role.FULL


async def _list_as(server: RunningServer, identity: pki.Identity, directory: Path) -> Status:
    cert, key = pki.write_identity(identity, directory, "crafted")
    channel = open_channel(server.host, server.port, ca=server.pki.ca, cert=cert, key=key)
    try:
        await JobServiceStub(channel).list(ListRequest())
    except GRPCError as error:
        return error.status
    finally:
        channel.close()
    return Status.OK


async def test_role_twice_over_the_wire(server: RunningServer, tmp_path: Path) -> None:
    """UNAUTHENTICATED before any handler, never INTERNAL (the harness checks the
    server's side too)."""
    ca = pki.load_identity(server.pki.ca, server.pki.ca.with_suffix(".key"))
    status = await _list_as(server, role_twice(ca, "oscar"), tmp_path)
    assert status is Status.UNAUTHENTICATED


@pytest.mark.parametrize("value", NOT_DER.values(), ids=NOT_DER.keys())
async def test_ber_role_over_the_wire(server: RunningServer, tmp_path: Path, value: bytes) -> None:
    ca = pki.load_identity(server.pki.ca, server.pki.ca.with_suffix(".key"))
    identity = issue(
        ca,
        [x509.NameAttribute(NameOID.COMMON_NAME, "peggy")],
        usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
        extensions=[x509.UnrecognizedExtension(x509.ObjectIdentifier(pki.DEFAULT_ROLE_OID), value)],
    )
    assert await _list_as(server, identity, tmp_path) is Status.PERMISSION_DENIED
