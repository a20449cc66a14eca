"""Certificates for the tests, made with pki/ once per session."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import pki
from pki._ca import issue


@dataclass(frozen=True)
class Files:
    """A certificate and key on disk."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server: Files
    clients: dict[str, Files]
    foreign_ca: Path


def _cn(name: str) -> x509.NameAttribute[str]:
    return x509.NameAttribute(NameOID.COMMON_NAME, name)


def make_pki(directory: Path) -> Certificates:
    ca = pki.create_ca()
    cert, _key = pki.write_identity(ca, directory, "ca")
    server = pki.write_identity(pki.issue_server(ca), directory, "server")
    clients: dict[str, pki.Identity] = {
        "alice": pki.issue_client(ca, "alice", "full"),
        "alice-ro": pki.issue_client(ca, "alice", "readonly"),
        "bob": pki.issue_client(ca, "bob", "full"),
        "norole": pki.issue_client(ca, "carol", None),
        "badrole": issue(
            ca,
            [_cn("dave")],
            usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
            extensions=[pki.role_extension("admin")],
        ),
        "malformed-role": issue(
            ca,
            [_cn("erin")],
            usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
            extensions=[
                x509.UnrecognizedExtension(
                    x509.ObjectIdentifier(pki.DEFAULT_ROLE_OID), b"\x04\x04full"
                )
            ],
        ),
        "other-oid": pki.issue_client(ca, "frank", "full", role_oid="1.3.6.1.4.1.55555.7"),
        "no-eku": issue(ca, [_cn("grace")], usages=None, extensions=[pki.role_extension("full")]),
        "server-auth-only": issue(
            ca,
            [_cn("heidi")],
            usages=[ExtendedKeyUsageOID.SERVER_AUTH],
            extensions=[pki.role_extension("full")],
        ),
        "no-cn": issue(
            ca,
            [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nobody")],
            usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
            extensions=[pki.role_extension("full")],
        ),
        "two-cns": issue(
            ca,
            [_cn("ivan"), _cn("judy")],
            usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
            extensions=[pki.role_extension("full")],
        ),
        "expired": issue(
            ca,
            [_cn("mallory")],
            usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
            extensions=[pki.role_extension("full")],
            not_before=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=10),
            days=1,
        ),
    }
    foreign = pki.create_ca("someone else's CA")
    clients["foreign"] = pki.issue_client(foreign, "alice", "full")
    foreign_ca, _ = pki.write_identity(foreign, directory, "foreign-ca")
    return Certificates(
        ca=cert,
        server=Files(*server),
        clients={
            name: Files(*pki.write_identity(identity, directory, name))
            for name, identity in clients.items()
        },
        foreign_ca=foreign_ca,
    )
