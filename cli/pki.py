"""``jobs pki``: make a CA and server certificate, and issue client and server certificates."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncclick as click

import pki as authority
from jobs import InvalidArgument
from jobs.server import check_name

from ._errors import CliError
from ._settings import pki_dir, role_oid_option

__all__ = ["pki"]

F = TypeVar("F", bound=Callable[..., Any])

_DIR_HELP = "The PKI directory. [env: JOBS_HOME; default: $JOBS_HOME/pki]"


def _identity_options(days: int) -> Callable[[F], F]:
    """The options of a command that issues NAME.crt and NAME.key."""

    def decorate(command: F) -> F:
        for option in reversed(
            [
                click.option(
                    "--out",
                    type=click.Path(file_okay=False, path_type=Path),
                    help="Where to write NAME.crt and NAME.key. [default: the PKI directory]",
                ),
                click.option(
                    "--dir",
                    "directory",
                    type=click.Path(file_okay=False, path_type=Path),
                    help=_DIR_HELP,
                ),
                click.option(
                    "--days",
                    type=click.IntRange(min=1),
                    default=days,
                    show_default=True,
                    help="Validity.",
                ),
                click.option(
                    "--force", is_flag=True, help="Replace an existing NAME.crt and NAME.key."
                ),
            ]
        ):
            command = option(command)
        return command

    return decorate


def _prepare(
    directory: Path, out: Path | None, name: str, force: bool
) -> tuple[authority.Identity, Path]:
    """The CA of ``directory`` and where NAME's files go; refuses to replace them
    without ``force``."""
    try:
        ca = authority.load_authority(directory)
    except FileNotFoundError:
        raise CliError(f"no CA in {directory}: run `jobs pki init` first") from None
    target = out or directory
    existing = [target / f"{name}{suffix}" for suffix in (".crt", ".key")]
    if not force and any(path.exists() for path in existing):
        # Without --out this could replace the local user's own identity, often
        # its `full` one, by whatever was asked for now.
        raise CliError(
            f"{existing[0]} already exists: pass --out DIR to write elsewhere, "
            "or --force to replace it"
        )
    return ca, target


def _write(identity: authority.Identity, directory: Path, target: Path, name: str) -> None:
    """Write NAME.crt and NAME.key into ``target``, and note the certificate in the
    CA's index of ``directory`` (so it can be revoked by name)."""
    cert, key = authority.write_identity(identity, target, name)
    authority.record_issued(directory, identity.cert)
    click.echo(f"jobs: wrote {cert} and {key}", err=True)


@click.group()
async def pki() -> None:
    """Certificates: a CA, the server's, and clients' with their roles."""


@pki.command(short_help="Create a CA and a server certificate.")
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


@pki.command(short_help="Issue a client certificate with a role.")
@click.argument("name")
@click.option("--role", type=click.Choice(authority.ROLES), required=True, help="What NAME may do.")
@_identity_options(authority.CLIENT_DAYS)
@role_oid_option
async def issue(
    name: str,
    role: str,
    out: Path | None,
    directory: Path | None,
    days: int,
    force: bool,
    role_oid: str,
) -> None:
    """Issue a client certificate for account NAME with a role: NAME.crt and NAME.key."""
    if "/" in name or name in {"", ".", ".."} or name in {"ca", "server"}:
        raise CliError(f"{name!r} cannot name a client certificate file")
    directory = directory or pki_dir()
    ca, target = _prepare(directory, out, name, force)
    _write(
        authority.issue_client(ca, name, role, days=days, role_oid=role_oid),
        directory,
        target,
        name,
    )


@pki.command("issue-server", short_help="Issue a server certificate from the same CA.")
@click.argument("name")
@click.option(
    "--san",
    "sans",
    multiple=True,
    metavar="NAME|IP",
    help="Another DNS name or IP address the server answers to (repeatable).",
)
@_identity_options(authority.SERVER_DAYS)
async def issue_server(
    name: str,
    sans: tuple[str, ...],
    out: Path | None,
    directory: Path | None,
    days: int,
    force: bool,
) -> None:
    """Issue a certificate for server NAME of a fleet, from the same CA: NAME.crt and
    NAME.key, valid for NAME, --san names, localhost, 127.0.0.1 and ::1.

    Start that server with `jobs serve --name NAME --cert NAME.crt --key NAME.key --ca ca.crt`.
    """
    try:
        check_name(name)
    except InvalidArgument as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from None
    if name == "ca":
        raise CliError("'ca' cannot name a server certificate file")
    directory = directory or pki_dir()
    ca, target = _prepare(directory, out, name, force)
    try:
        identity = authority.issue_server(ca, [name, *sans], common_name=name, days=days)
    except ValueError as exc:
        raise CliError(f"cannot issue a certificate for {name}: {exc}") from None
    _write(identity, directory, target, name)


@pki.command(short_help="Revoke certificates, by name or serial, in the CA's CRL.")
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
