"""``jobs pki``: make a CA and server certificate, and issue client certificates."""

from __future__ import annotations

from pathlib import Path

import asyncclick as click

import pki as authority

from ._errors import CliError
from ._settings import pki_dir, role_oid_option

__all__ = ["pki"]

_DIR_HELP = "The PKI directory. [env: JOBS_HOME; default: $JOBS_HOME/pki]"


@click.group()
async def pki() -> None:
    """Certificates: a CA, the server's, and clients' with their roles."""


@pki.command()
@click.option(
    "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), help=_DIR_HELP
)
@click.option("--name", "names", multiple=True, help="Another name or IP the server answers to.")
@click.option(
    "--force",
    is_flag=True,
    help="Replace an existing CA (every certificate it issued stops working).",
)
async def init(directory: Path | None, names: tuple[str, ...], force: bool) -> None:
    """Create a CA and a server certificate (localhost, 127.0.0.1, ::1 and --name)."""
    directory = directory or pki_dir()
    try:
        authority.init_authority(directory, names, force=force)
    except FileExistsError as exc:
        raise CliError(f"{exc}; pass --force to replace it") from None
    click.echo(f"jobs: wrote ca.crt, ca.key, server.crt and server.key in {directory}", err=True)


@pki.command()
@click.argument("name")
@click.option("--role", type=click.Choice(authority.ROLES), required=True, help="What NAME may do.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write NAME.crt and NAME.key. [default: the PKI directory]",
)
@click.option(
    "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), help=_DIR_HELP
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=authority.CLIENT_DAYS,
    show_default=True,
    help="Validity.",
)
@role_oid_option
async def issue(
    name: str, role: str, out: Path | None, directory: Path | None, days: int, role_oid: str
) -> None:
    """Issue a client certificate for account NAME with a role: NAME.crt and NAME.key."""
    directory = directory or pki_dir()
    if "/" in name or name in {"", ".", ".."} or name in {"ca", "server"}:
        raise CliError(f"{name!r} cannot name a client certificate file")
    try:
        ca = authority.load_authority(directory)
    except FileNotFoundError:
        raise CliError(f"no CA in {directory}: run `jobs pki init` first") from None
    identity = authority.issue_client(ca, name, role, days=days, role_oid=role_oid)
    cert, key = authority.write_identity(identity, out or directory, name)
    authority.record_issued(directory, identity.cert)
    click.echo(f"jobs: wrote {cert} and {key}", err=True)


@pki.command()
@click.argument("subject", metavar="NAME|SERIAL")
@click.option(
    "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), help=_DIR_HELP
)
async def revoke(subject: str, directory: Path | None) -> None:
    """Revoke every certificate issued to NAME (or the one of SERIAL, in hex as
    `openssl x509 -noout -serial` prints it) in the CA's CRL, crl.pem.

    A server started with --crl refuses them at the handshake from its next
    reload (SIGHUP) on, and closes their open connections then.
    """
    directory = directory or pki_dir()
    try:
        serials = authority.revoke_in(directory, subject)
    except FileNotFoundError:
        raise CliError(f"no CA in {directory}: run `jobs pki init` first") from None
    except LookupError as exc:
        raise CliError(f"{exc.args[0]}; give its serial instead") from None
    listed = ", ".join(f"{serial:X}" for serial in serials)
    click.echo(f"jobs: revoked {listed} in {directory / authority.CRL}", err=True)
