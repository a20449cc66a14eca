"""``jobs pki``: make a CA and server certificate, and issue client and server certificates."""

from __future__ import annotations

from pathlib import Path

import asyncclick as click

import pki as authority
from jobs import InvalidArgument
from jobs.server import check_name

from ._errors import CliError
from ._settings import pki_dir, role_oid_option

__all__ = ["pki"]

_DIR_HELP = "The PKI directory. [env: JOBS_HOME; default: $JOBS_HOME/pki]"


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
@click.option("--force", is_flag=True, help="Replace an existing NAME.crt and NAME.key.")
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
    directory = directory or pki_dir()
    if "/" in name or name in {"", ".", ".."} or name in {"ca", "server"}:
        raise CliError(f"{name!r} cannot name a client certificate file")
    try:
        ca = authority.load_authority(directory)
    except FileNotFoundError:
        raise CliError(f"no CA in {directory}: run `jobs pki init` first") from None
    target = out or directory
    existing = [target / f"{name}{suffix}" for suffix in (".crt", ".key")]
    if not force and any(path.exists() for path in existing):
        # Without --out this would replace the local user's own identity, often
        # its `full` one, by whatever role was asked for now.
        raise CliError(
            f"{existing[0]} already exists: pass --out DIR to write elsewhere, "
            "or --force to replace it"
        )
    identity = authority.issue_client(ca, name, role, days=days, role_oid=role_oid)
    cert, key = authority.write_identity(identity, target, name)
    click.echo(f"jobs: wrote {cert} and {key}", err=True)


@pki.command("issue-server", short_help="Issue a server certificate from the same CA.")
@click.argument("name")
@click.option(
    "--san",
    "sans",
    multiple=True,
    metavar="NAME|IP",
    help="Another DNS name or IP address the server answers to (repeatable).",
)
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
    default=authority.SERVER_DAYS,
    show_default=True,
    help="Validity.",
)
@click.option("--force", is_flag=True, help="Replace an existing NAME.crt and NAME.key.")
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
    target = out or directory
    if not force and ((target / f"{name}.crt").exists() or (target / f"{name}.key").exists()):
        raise CliError(f"{target / name}.crt already exists; pass --force to replace it")
    try:
        ca = authority.load_authority(directory)
    except FileNotFoundError:
        raise CliError(f"no CA in {directory}: run `jobs pki init` first") from None
    try:
        identity = authority.issue_server(ca, [name, *sans], common_name=name, days=days)
    except ValueError as exc:
        raise CliError(f"cannot issue a certificate for {name}: {exc}") from None
    cert, key = authority.write_identity(identity, target, name)
    click.echo(f"jobs: wrote {cert} and {key}", err=True)
