"""Parameter types: durations, sizes, IO rates, environment entries, namespaces, signals.

Validation lives here, so that a bad value is a usage error naming the option.
"""

from __future__ import annotations

import datetime
import os
import re
import signal
import time
from typing import Any

import asyncclick as click

from jobs import IoRate, Namespace

__all__ = [
    "DURATION",
    "ENV",
    "INT64_MAX",
    "IO_RATE",
    "ISOLATION",
    "LABEL",
    "SIGNAL",
    "SIZE",
    "TIME",
    "UINT32_MAX",
    "count",
    "parse_duration",
]

INT64_MAX = (1 << 63) - 1
"""The largest count or size a request carries; more is a usage error here, not a
protobuf ValueError (the server refuses less than that where the kernel does)."""

# The times a protobuf Timestamp holds, whole seconds (its last fraction would round
# up past the end on the way to nanoseconds).
_EARLIEST = datetime.datetime(1, 1, 1, tzinfo=datetime.UTC).timestamp()
_LATEST = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC).timestamp()


UINT32_MAX = (1 << 32) - 1
"""The largest count of a uint32 field (pids, the caps Info reports)."""


def count(minimum: int, maximum: int = INT64_MAX) -> click.IntRange:
    """An integer option from ``minimum`` to ``maximum`` (what its field holds)."""
    return click.IntRange(min=minimum, max=maximum)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d)")
_PLAIN_SECONDS = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmgtKMGT])(?:i?[bB])?|[bB])?\s*$")
_SIZE_UNITS = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_duration(text: str) -> float | None:
    """``10s``, ``500ms``, ``1h30m``, ``1m30s`` or plain seconds as float seconds; None
    when ``text`` is not a duration."""
    text = text.strip()
    if _PLAIN_SECONDS.fullmatch(text):
        return float(text)
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match[1]) * _DURATION_UNITS[match[2]]
        position = match.end()
    return total if position == len(text) and text else None


class Duration(click.ParamType[float]):
    """``10s``, ``500ms``, ``2m``, ``1h30m``, ``1m30s`` or plain seconds, as float seconds."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        seconds = parse_duration(str(value))
        if seconds is None:
            self.fail(f"{value!r} is not a duration (e.g. 10s, 500ms, 1m30s)", param, ctx)
        return seconds


class PointInTime(click.ParamType[float]):
    """A duration ago (``10m``, ``1h30m``) or an RFC 3339 time, as seconds since the epoch."""

    name = "time"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip()
        ago = parse_duration(text)
        if ago is not None:
            then = time.time() - ago
            if then < _EARLIEST:
                self.fail(f"{value!r} ago is before the year 1", param, ctx)
            return then
        try:
            # fromisoformat reads RFC 3339 (a "Z" included, since Python 3.11).
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{value!r} is neither a duration ago (10m) nor an RFC 3339 time "
                "(2024-05-01T12:00:00Z)",
                param,
                ctx,
            )
        try:
            if moment.tzinfo is None:
                moment = moment.astimezone()  # a time without zone is local time
            then = moment.timestamp()
        except (ValueError, OverflowError):
            then = _EARLIEST - 1  # before the year 1 in UTC
        if not _EARLIEST <= then <= _LATEST:
            self.fail(f"{value!r} is outside the years 1 to 9999 (UTC)", param, ctx)
        return then


class Size(click.ParamType[int]):
    """``256M``, ``1G``, ``512K`` (powers of 1024) or plain bytes, as int bytes."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = _SIZE.match(str(value))
        if not match:
            self.fail(f"{value!r} is not a size (e.g. 256M, 1G)", param, ctx)
        unit = match[2].lower() if match[2] else None
        size = int(float(match[1]) * _SIZE_UNITS[unit])
        if size > INT64_MAX:
            self.fail(f"{value!r} is over the largest size, {INT64_MAX} bytes", param, ctx)
        return size


class IoRateType(click.ParamType[IoRate]):
    """``[DEVICE=]RATE``: a block device path or ``MAJ:MIN``, and bytes per second."""

    name = "[device=]rate"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> IoRate:
        if isinstance(value, IoRate):
            return value
        device, sep, rate = str(value).rpartition("=")
        if sep and not device:
            self.fail(f"{value!r} names no device before '='", param, ctx)
        return IoRate(SIZE.convert(rate, param, ctx), device or None)


class EnvEntry(click.ParamType[tuple[str, str]]):
    """``NAME=VALUE``, or ``NAME`` alone to pass this shell's value on."""

    name = "name[=value]"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        name, sep, text = str(value).partition("=")
        if not name:
            self.fail(f"{value!r} has no variable name", param, ctx)
        if not sep:
            if name not in os.environ:
                self.fail(f"{name} is not set here, so there is no value to pass on", param, ctx)
            text = os.environ[name]
        return name, text


class IsolationType(click.ParamType[frozenset[Namespace]]):
    """A comma-separated list of namespaces: ``pid``, ``mount``, ``net``."""

    name = "pid,mount,net"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> frozenset[Namespace]:
        if isinstance(value, frozenset):
            return value
        chosen = set()
        for word in str(value).split(","):
            try:
                chosen.add(Namespace(word.strip().lower()))
            except ValueError:
                self.fail(f"{word!r} is not one of pid, mount, net", param, ctx)
        return frozenset(chosen)


class LabelEntry(click.ParamType[tuple[str, str]]):
    """``KEY=VALUE`` (a Kubernetes label key and value); the server checks the syntax."""

    name = "key=value"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        key, sep, text = str(value).partition("=")
        if not sep or not key:
            self.fail(f"{value!r} is not KEY=VALUE", param, ctx)
        return key, text


class SignalType(click.ParamType[int]):
    """A signal by name (``TERM``, ``SIGINT``) or number."""

    name = "signal"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().upper()
        if text.isdigit() and int(text) in signal.valid_signals():
            return int(text)
        name = text if text.startswith("SIG") else f"SIG{text}"
        try:
            return int(signal.Signals[name])
        except KeyError:
            self.fail(f"{value!r} is not a signal", param, ctx)


DURATION = Duration()
TIME = PointInTime()
LABEL = LabelEntry()
SIZE = Size()
IO_RATE = IoRateType()
ENV = EnvEntry()
ISOLATION = IsolationType()
SIGNAL = SignalType()
