"""Where things are: the jobs home, the default identity and address, and their variables."""

from __future__ import annotations

import getpass
import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncclick as click

__all__ = [
    "DEFAULT_ADDR",
    "etcd_tls",
    "etcd_tls_options",
    "home",
    "local_user",
    "parse_address",
    "pki_dir",
    "role_oid_option",
]

DEFAULT_ADDR = "127.0.0.1:50051"

F = TypeVar("F", bound=Callable[..., Any])


def home() -> Path:
    """``JOBS_HOME``; else ``/var/lib/jobs`` for root and ``~/.local/share/jobs`` for others."""
    if value := os.environ.get("JOBS_HOME"):
        return Path(value)
    if os.geteuid() == 0:
        return Path("/var/lib/jobs")
    return Path.home() / ".local" / "share" / "jobs"


def pki_dir() -> Path:
    return home() / "pki"


def local_user() -> str:
    """The name of the local user, whose identity ``jobs serve`` makes on first start."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}"


def parse_address(text: str, option: str = "--addr") -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as a host and a port; a usage error
    naming ``option`` when it is not one."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{text!r} is not HOST:PORT", param_hint=f"'{option}'")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _default_role_oid() -> str:
    # Imported when asked for: the pki package loads cryptography, which client
    # commands (that import this module) must not pay for at start-up.
    import pki

    return pki.DEFAULT_ROLE_OID


role_oid_option = click.option(
    "--role-oid",
    envvar="JOBS_ROLE_OID",
    default=_default_role_oid,
    show_default="the jobs role OID (pki.DEFAULT_ROLE_OID)",
    help="OID of the role extension. [env: JOBS_ROLE_OID]",
)


def etcd_tls_options(option: str, env: str) -> Callable[[F], F]:
    """``OPTION-ca``, ``OPTION-cert`` and ``OPTION-key`` (and ``ENV_CA``...): etcd's
    TLS files for ``serve --register`` and the client's ``--discover``."""
    path = click.Path(dir_okay=False, path_type=Path)
    options = [
        click.option(
            f"{option}-{name}",
            envvar=f"{env}_{name.upper()}",
            type=path,
            help=f"{text} [env: {env}_{name.upper()}]",
        )
        for name, text in (
            ("ca", "Talk TLS to etcd, verifying it against this CA."),
            ("cert", "Client certificate for etcd."),
            ("key", "Its private key."),
        )
    ]

    def decorate(command: F) -> F:
        for add in reversed(options):
            command = add(command)
        return command

    return decorate


def etcd_tls(
    option: str, ca: Path | None, cert: Path | None, key: Path | None
) -> ssl.SSLContext | None:
    """The context for talking to etcd as ``OPTION-ca``, ``OPTION-cert`` and
    ``OPTION-key`` say (``option`` is ``--register`` or ``--discover``); None when
    none is given: plaintext."""
    # Imported when asked for: the etcd client (grpclib stubs of etcd's API) is for
    # --register and --discover alone.
    from jobs._etcd import EtcdError, tls_context

    from ._errors import CliError

    if (cert is None) != (key is None):
        raise click.UsageError(f"give {option}-cert and {option}-key together")
    if ca is None and cert is None:
        return None
    try:
        return tls_context(ca, cert, key)
    except EtcdError as exc:
        raise CliError(str(exc)) from None
