"""Parameter types: durations, sizes, IO rates, environment entries, namespaces, signals.

Validation lives here, so that a bad value is a usage error naming the option.
"""

from __future__ import annotations

import os
import re
import signal
from typing import Any

import asyncclick as click

from jobs import IoRate, Namespace

__all__ = ["DURATION", "ENV", "IO_RATE", "ISOLATION", "SIGNAL", "SIZE"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmgtKMGT])(?:i?[bB])?|[bB])?\s*$")
_SIZE_UNITS = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class Duration(click.ParamType[float]):
    """``10s``, ``500ms``, ``2m``, ``1h`` or plain seconds, as float seconds."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        match = _DURATION.match(str(value))
        if not match:
            self.fail(f"{value!r} is not a duration (e.g. 10s, 500ms, 2m)", param, ctx)
        return float(match[1]) * _DURATION_UNITS[match[2]]


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
        return int(float(match[1]) * _SIZE_UNITS[unit])


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
SIZE = Size()
IO_RATE = IoRateType()
ENV = EnvEntry()
ISOLATION = IsolationType()
SIGNAL = SignalType()
