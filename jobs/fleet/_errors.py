"""The fleet's expected errors, one class per condition (client side: no gRPC status)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DiscoveryFailed", "FleetError", "InvalidInventory", "NoMatchingHost", "UnknownHost"]


class FleetError(Exception):
    """Base class of every expected error of ``jobs.fleet``."""


class InvalidInventory(FleetError):
    """The inventory file cannot be read or does not describe hosts as it should."""

    def __init__(self, path: Path, line: int | None, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path}, line {line}" if line else str(path)
        super().__init__(f"{where}: {reason}")


class NoMatchingHost(FleetError):
    """No known host matches the ``--on`` selection."""

    def __init__(self, selection: str, known: int) -> None:
        self.selection = selection
        self.known = known
        if known:
            super().__init__(f"no host matches {selection!r} (of {known} known)")
        else:
            super().__init__(
                "no hosts are known: write $JOBS_HOME/hosts.toml (or JOBS_INVENTORY), "
                "or pass --discover etcd://HOST:PORT"
            )


class UnknownHost(FleetError):
    """A ``HOST/ID`` names a host that is not among the selected hosts."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no host named {name!r} is selected")


class DiscoveryFailed(FleetError):
    """The discovery address is malformed, or etcd could not be read there."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"discovery from {url}: {reason}")
