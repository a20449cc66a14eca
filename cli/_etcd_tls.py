"""etcd's TLS files as options give them (``serve --register-*``, ``--discover-*``):
one context, or none for plaintext, and one line when they do not fit together."""

from __future__ import annotations

import ssl
from pathlib import Path

import asyncclick as click

from jobs._etcd import EtcdError, tls_context

from ._errors import CliError

__all__ = ["etcd_tls"]


def etcd_tls(
    option: str, ca: Path | None, cert: Path | None, key: Path | None
) -> ssl.SSLContext | None:
    """The context for talking to etcd as ``OPTION-ca``, ``OPTION-cert`` and
    ``OPTION-key`` say (``option`` is ``--register`` or ``--discover``); None when
    none is given: plaintext."""
    if (cert is None) != (key is None):
        raise click.UsageError(f"give {option}-cert and {option}-key together")
    if ca is None and cert is None:
        return None
    try:
        return tls_context(ca, cert, key)
    except EtcdError as exc:
        raise CliError(str(exc)) from None
