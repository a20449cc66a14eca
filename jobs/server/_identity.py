"""Who a server is: its name, labels (with the built-in ``jobs.io/`` ones), version,
certificate names, and what its host offers jobs.

Built once at start-up; ``Info`` serves it and registration publishes it.
"""

from __future__ import annotations

import importlib.metadata
import ipaddress
import platform
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from .._core import namespaces
from .._core.containment import Containment
from .._core.model import Namespace
from ..errors import InvalidArgument
from ..selectors import check_labels

__all__ = [
    "BUILTIN_PREFIX",
    "Capabilities",
    "ServerIdentity",
    "block_devices",
    "builtin_labels",
    "certificate_names",
    "check_identity",
    "check_name",
    "host_name",
    "version",
]

BUILTIN_PREFIX = "jobs.io/"
"""Labels under this prefix are the server's own; ``--label`` may not set them."""
_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,251}[A-Za-z0-9])?")
_LABEL_VALUE_UNSAFE = re.compile(r"[^-A-Za-z0-9_.]")


def version() -> str:
    """This distribution's version."""
    try:
        return importlib.metadata.version("jobs")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "0+unknown"


def check_name(name: str) -> None:
    """A server name is a host-name-like word (letters, digits, ``-``, ``_``, ``.``,
    at most 253): it becomes an etcd key and the ``HOST`` of ``HOST/ID`` job ids."""
    if not _NAME.fullmatch(name):
        raise InvalidArgument(
            f"invalid server name {name!r}: use letters, digits, '-', '_' and '.' "
            "(at most 253, starting and ending with a letter or digit)"
        )


def _label_value(text: str) -> str:
    """``text`` made a valid label value (a kernel release may carry ``+`` or ``~``)."""
    return _LABEL_VALUE_UNSAFE.sub("_", text)[:63].strip("-_.")


def builtin_labels(cgroup: str) -> dict[str, str]:
    """The labels every server has: its OS, CPU architecture, kernel release, cgroup
    kind (v1, v2 or none) and jobs version."""
    uname = platform.uname()
    return {
        f"{BUILTIN_PREFIX}os": _label_value(uname.system.lower()),
        f"{BUILTIN_PREFIX}arch": _label_value(uname.machine),
        f"{BUILTIN_PREFIX}kernel": _label_value(uname.release),
        f"{BUILTIN_PREFIX}cgroup": cgroup,
        f"{BUILTIN_PREFIX}version": _label_value(version()),
    }


def certificate_names(cert: Path) -> tuple[str, ...]:
    """The DNS names and IP addresses of a PEM certificate's subject alternative names."""
    certificate = x509.load_pem_x509_certificate(cert.read_bytes())
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [
        ip
        for ip in sans.get_values_for_type(x509.IPAddress)
        if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)
    ]
    return (*sans.get_values_for_type(x509.DNSName), *map(str, ips))


def block_devices(sys_block: Path = Path("/sys/block")) -> tuple[str, ...]:
    """The host's block devices as ``MAJ:MIN``, the form IO limits name them in."""
    found = []
    try:
        entries = sorted(sys_block.iterdir())
    except OSError:
        return ()
    for entry in entries:
        try:
            found.append((entry / "dev").read_text().strip())
        except OSError:
            continue
    return tuple(found)


def check_identity(name: str, labels: Mapping[str, str]) -> None:
    """``InvalidArgument`` for a bad server name or label, or a label under ``jobs.io/``."""
    check_name(name)
    check_labels(labels)
    if reserved := sorted(k for k in labels if k.startswith(BUILTIN_PREFIX)):
        raise InvalidArgument(
            f"label {reserved[0]!r}: the {BUILTIN_PREFIX} prefix is the server's own"
        )


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What limits and isolation jobs can have on this host."""

    cgroup: str
    controllers: frozenset[str]
    namespaces: frozenset[Namespace]
    block_devices: tuple[str, ...]

    @classmethod
    def probe(cls, containment: Containment) -> Capabilities:
        """Ask the containment, the kernel's namespaces and /sys/block."""
        return cls(
            containment.kind,
            containment.controllers,
            namespaces.available(),
            block_devices(),
        )


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """A server's name, labels (built-in ones included), version, certificate names
    and capabilities."""

    name: str
    labels: Mapping[str, str]
    version: str
    certificate_names: tuple[str, ...]
    capabilities: Capabilities

    @classmethod
    def build(
        cls, name: str, labels: Mapping[str, str], cert: Path, containment: Containment
    ) -> ServerIdentity:
        """The identity of a server called ``name`` with the operator's ``labels``;
        ``InvalidArgument`` for a bad name or label, or one under ``jobs.io/``."""
        check_identity(name, labels)
        capabilities = Capabilities.probe(containment)
        return cls(
            name,
            {**labels, **builtin_labels(capabilities.cgroup)},
            version(),
            certificate_names(cert),
            capabilities,
        )

    @property
    def tls_name(self) -> str:
        """The name a client verifies this server's certificate for: the server's
        name when the certificate carries it, else its first name."""
        if self.name in self.certificate_names or not self.certificate_names:
            return self.name
        return self.certificate_names[0]


def host_name() -> str:
    """The default server name: the host name."""
    return socket.gethostname()
