"""The PKI directory of a jobs home: ca, server and client files laid out by name."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ._ca import Identity, create_ca, issue_client, issue_server, load_identity, write_identity
from ._crl import CRL, empty_crl, record_issued, write_crl

__all__ = ["ensure_development_pki", "init_authority", "load_authority"]


def init_authority(directory: Path, names: Iterable[str] = (), *, force: bool = False) -> None:
    """Create ``ca.crt``/``ca.key``, ``server.crt``/``server.key`` and an empty CRL
    (``crl.pem``) in ``directory``.

        Refuses (``FileExistsError``) to replace an existing CA unless ``force``.
    """
    if (directory / "ca.crt").exists() and not force:
        raise FileExistsError(f"a CA already exists in {directory}")
    ca = create_ca()
    write_identity(ca, directory, "ca")
    server = issue_server(ca, names)
    write_identity(server, directory, "server")
    (directory / "issued.txt").unlink(missing_ok=True)  # a new CA: the old index is void
    record_issued(directory, server.cert)
    write_crl(empty_crl(ca), directory / CRL)


def load_authority(directory: Path) -> Identity:
    """The CA of ``directory``."""
    return load_identity(directory / "ca.crt", directory / "ca.key")


def ensure_development_pki(directory: Path, user: str) -> list[str]:
    """Make what is missing of a development PKI: CA, server, and ``user`` with role full.

    Returns the names of the files it created.
    """
    created = []
    if not (directory / "ca.crt").exists():
        init_authority(directory)
        created += ["ca.crt", "ca.key", "server.crt", "server.key", CRL]
    if not (directory / f"{user}.crt").exists():
        identity = issue_client(load_authority(directory), user, "full")
        write_identity(identity, directory, user)
        record_issued(directory, identity.cert)
        created += [f"{user}.crt", f"{user}.key"]
    return created
