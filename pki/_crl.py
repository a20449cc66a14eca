"""Revocation: a CRL signed by the CA, and the index of what the CA issued, by name.

The CRL is PEM (``crl.pem`` next to ``ca.crt``), usable by OpenSSL (``openssl crl
-in crl.pem -CAfile ca.crt -verify``) and by ``jobs serve --crl``. Each
revocation re-signs it with the next CRL number. The index (``issued.txt``, one
``SERIAL-HEX NAME`` line per certificate) is what lets ``revoke`` take a name.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from ._ca import CA_DAYS, Identity, load_identity

__all__ = [
    "CRL",
    "CRL_DAYS",
    "ISSUED",
    "empty_crl",
    "load_crl",
    "record_issued",
    "revoke",
    "revoke_in",
    "write_crl",
]

CRL = "crl.pem"
ISSUED = "issued.txt"
CRL_DAYS = CA_DAYS
"""How long a CRL says it is current. OpenSSL refuses every certificate once the
CRL it checks has expired, so it lasts as long as the CA; each revocation renews it."""
_SERIAL = re.compile(r"^(?:0x)?[0-9a-fA-F]+$")


def empty_crl(ca: Identity, *, days: int = CRL_DAYS) -> x509.CertificateRevocationList:
    """A CRL of ``ca`` that revokes nothing (CRL number 1)."""
    return _sign(ca, [], 1, days)


def revoke(
    ca: Identity,
    serials: Iterable[int],
    crl: x509.CertificateRevocationList | None = None,
    *,
    days: int = CRL_DAYS,
) -> x509.CertificateRevocationList:
    """``crl`` (or an empty one) with ``serials`` added, signed anew by ``ca``."""
    now = _now()
    entries = list(crl) if crl is not None else []
    known = {entry.serial_number for entry in entries}
    for serial in serials:
        if serial not in known:
            known.add(serial)
            entries.append(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
            )
    return _sign(ca, entries, _number(crl) + 1, days)


def _sign(
    ca: Identity, entries: list[x509.RevokedCertificate], number: int, days: int
) -> x509.CertificateRevocationList:
    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - datetime.timedelta(minutes=5))
        .next_update(now + datetime.timedelta(days=days))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    for entry in entries:
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(ca.key, hashes.SHA256())


def _number(crl: x509.CertificateRevocationList | None) -> int:
    if crl is None:
        return 0
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return 0


def load_crl(path: Path) -> x509.CertificateRevocationList:
    """Read a PEM CRL (``ValueError`` if it is not one)."""
    return x509.load_pem_x509_crl(path.read_bytes())


def write_crl(crl: x509.CertificateRevocationList, path: Path) -> None:
    """Write ``crl`` as PEM, atomically (a server may read it at any moment)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    os.replace(temporary, path)


def record_issued(directory: Path, cert: x509.Certificate) -> None:
    """Add ``cert`` to the index of ``directory``, so that it can be revoked by name."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    name = str(names[0].value) if names else ""
    with open(directory / ISSUED, "a") as index:
        index.write(f"{cert.serial_number:x} {name}\n")


def revoke_in(directory: Path, subject: str, *, days: int = CRL_DAYS) -> list[int]:
    """Revoke, in the PKI of ``directory``, the certificates issued to the name
    ``subject`` (or the one of serial ``subject``, in hex); the serials revoked.

    Raises ``LookupError`` when ``subject`` names no certificate of this CA and is
    no serial, ``FileNotFoundError`` without a CA.
    """
    ca = load_identity(directory / "ca.crt", directory / "ca.key")
    serials = _serials_of(directory, subject)
    if not serials:
        if not _SERIAL.match(subject):
            raise LookupError(f"no certificate issued to {subject!r} in {directory}")
        serials = [int(subject.removeprefix("0x"), 16)]
    path = directory / CRL
    crl = load_crl(path) if path.exists() else None
    write_crl(revoke(ca, serials, crl, days=days), path)
    return serials


def _serials_of(directory: Path, name: str) -> list[int]:
    serials: list[int] = []
    try:
        lines = (directory / ISSUED).read_text().splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        serial, _, issued_to = line.partition(" ")
        if issued_to == name and _SERIAL.match(serial):
            serials.append(int(serial, 16))
    cert = directory / f"{name}.crt"
    if "/" not in name and cert.is_file():
        try:
            serials.append(x509.load_pem_x509_certificate(cert.read_bytes()).serial_number)
        except ValueError:
            pass
    return list(dict.fromkeys(serials))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
