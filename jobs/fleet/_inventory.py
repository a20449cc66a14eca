"""The inventory: the hosts a client knows, from ``hosts.toml`` (and from discovery).

The file holds ``[[host]]`` tables::

    [[host]]
    name = "web1"                       # unique; used in HOST/ID and --log-dir file names
    addr = "10.0.0.5:50051"
    labels = { role = "web", zone = "a" }
    tls_name = "web1.example.com"       # optional: the name the certificate must carry
    ca = "ca.crt"                       # optional, relative to this file: per-host identity
    cert = "alice.crt"
    key = "alice.key"
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.errors import InvalidArgument
from jobs.selectors import check_labels

from ._errors import InvalidInventory

__all__ = ["Host", "check_host_name", "load_inventory", "parse_address"]

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62})")
_KEYS = frozenset({"name", "addr", "labels", "tls_name", "ca", "cert", "key"})
_HEADER = re.compile(r"^\s*\[\[\s*host\s*\]\]")


@dataclass(frozen=True)
class Host:
    """One jobs server of the fleet: where it is, its labels, and how to trust it.

    ``tls_name`` is the name its certificate must carry (default: the address's
    host); ``ca``, ``cert`` and ``key`` override the client's identity for it.
    ``source`` says where it was learned (the inventory's path, or an etcd URL).
    """

    name: str
    addr: str
    labels: Mapping[str, str] = field(default_factory=dict)
    tls_name: str | None = None
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    source: str = ""

    @property
    def host(self) -> str:
        """The address's host part (without brackets for IPv6)."""
        return parse_address(self.addr)[0]

    @property
    def port(self) -> int:
        """The address's port."""
        return parse_address(self.addr)[1]


def check_host_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` can name a host (in ``HOST/ID`` and file names)."""
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a host name: 1 to 63 letters, digits, '.', '_' or '-', "
            "beginning with a letter or digit"
        )


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``) as a host and a port; ``ValueError`` otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def load_inventory(path: Path) -> list[Host]:
    """The hosts of an inventory file, in file order.

    Raises ``InvalidInventory`` naming the file and the line for a file that
    cannot be read, is not TOML, or has a host table that is wrong (missing or
    duplicate name, bad address, unknown key, bad label).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInventory(path, None, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInventory(path, None, f"cannot be read: {exc}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The message ends "(at line L, column C)"; say it our way.
        match = re.search(r"\(at line (\d+), column \d+\)$", str(exc))
        reason = str(exc)[: match.start()].strip() if match else str(exc)
        raise InvalidInventory(
            path, int(match[1]) if match else None, f"not valid TOML: {reason}"
        ) from None
    lines = text.splitlines()
    headers = [number for number, line in enumerate(lines, 1) if _HEADER.match(line)]
    unknown = set(document) - {"host"}
    if unknown:
        key = sorted(unknown)[0]
        raise InvalidInventory(
            path, _line_of(lines, key, 1), f"unknown table or key {key!r} (expected [[host]])"
        )
    tables = document.get("host", [])
    if not isinstance(tables, list):
        raise InvalidInventory(path, _line_of(lines, "host", 1), "write hosts as [[host]] tables")
    hosts: list[Host] = []
    seen: dict[str, int] = {}
    for index, table in enumerate(tables):
        start = headers[index] if index < len(headers) else 1
        host = _host(path, lines, start, table)
        if host.name in seen:
            raise InvalidInventory(
                path, start, f"host {host.name!r} is already defined at line {seen[host.name]}"
            )
        seen[host.name] = start
        hosts.append(host)
    return hosts


def _host(path: Path, lines: list[str], start: int, table: Any) -> Host:
    def fail(key: str | None, reason: str) -> InvalidInventory:
        line = _line_of(lines, key, start) if key else start
        return InvalidInventory(path, line, reason)

    if not isinstance(table, dict):
        raise fail(None, "a [[host]] entry must be a table")
    for key in table:
        if key not in _KEYS:
            raise fail(key, f"unknown key {key!r} (expected one of {', '.join(sorted(_KEYS))})")
    for key in ("name", "addr"):
        if key not in table:
            raise fail(None, f"this host has no {key!r}")
    for key in _KEYS - {"labels"}:
        if key in table and not isinstance(table[key], str):
            raise fail(key, f"{key!r} must be a string")
    try:
        check_host_name(table["name"])
    except ValueError as exc:
        raise fail("name", str(exc)) from None
    try:
        parse_address(table["addr"])
    except ValueError as exc:
        raise fail("addr", str(exc)) from None
    labels = table.get("labels", {})
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise fail("labels", "'labels' must be a table of strings, e.g. { role = \"web\" }")
    try:
        check_labels(labels)
    except InvalidArgument as exc:
        raise fail("labels", str(exc)) from None

    def relative(key: str) -> Path | None:
        value = table.get(key)
        return None if value is None else (path.parent / Path(value).expanduser())

    return Host(
        name=table["name"],
        addr=table["addr"],
        labels=dict(labels),
        tls_name=table.get("tls_name"),
        ca=relative("ca"),
        cert=relative("cert"),
        key=relative("key"),
        source=str(path),
    )


def _line_of(lines: list[str], key: str, start: int) -> int:
    """The first line at or after ``start`` that sets ``key`` (else ``start``)."""
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=|^\s*\[+\s*{re.escape(key)}\b")
    for number in range(start, len(lines) + 1):
        if number > start and _HEADER.match(lines[number - 1]):
            break
        if pattern.match(lines[number - 1]):
            return number
    return start
