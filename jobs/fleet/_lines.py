"""Merging many hosts' output line by line, each line whole and labelled with its host.

Every host has a buffer per stream; only whole lines leave it, each written with
one ``write`` call, so a line is never torn between hosts (the event loop runs
one host's ``feed`` at a time). A partial line is held until its newline comes,
the host ends, or it has waited ``partial_delay`` (a prompt, a progress bar):
then it is written with ``PARTIAL_MARK`` and a newline, as fish marks output
that lacks its final newline.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from typing import BinaryIO

import anyio

__all__ = ["PARTIAL_MARK", "LineMerger", "OutputStream"]

#: Ends a partial line written before its newline came ("⏎", as fish shows it).
PARTIAL_MARK = "⏎".encode()

#: How long a partial line waits for its newline before it is written anyway.
DEFAULT_PARTIAL_DELAY = 0.5

# Each host's output is spooled to disk past this much, in --group mode.
_SPOOL_MEMORY = 1 << 20


class OutputStream:
    """Which of a job's streams a piece of output came from (the wire's numbers)."""

    STDOUT = 1
    STDERR = 2


@dataclass
class _Pending:
    data: bytes = b""
    since: float = 0.0


@dataclass
class _HostState:
    prefix: bytes
    pending: dict[int, _Pending] = field(default_factory=dict)
    group: tempfile.SpooledTemporaryFile[bytes] | None = None


class LineMerger:
    """Writes every host's stdout and stderr to ``out`` and ``err``, whole lines only.

    ``prefix`` labels each line ``[host] ``; ``group`` holds each host's lines
    until ``end(host)`` and writes them as one block. Call ``feed`` as output
    arrives, ``end`` when a host is done, and run ``flush_partials`` in the
    background (or not: partial lines then wait for their newline or the end).
    """

    def __init__(
        self,
        out: BinaryIO,
        err: BinaryIO,
        *,
        prefix: bool = True,
        group: bool = False,
        partial_delay: float = DEFAULT_PARTIAL_DELAY,
    ) -> None:
        self._targets = {OutputStream.STDOUT: out, OutputStream.STDERR: err}
        self._prefix = prefix
        self._group = group
        self._delay = partial_delay
        self._hosts: dict[str, _HostState] = {}

    def feed(self, host: str, stream: int, data: bytes) -> None:
        """Take ``data`` from ``host``'s ``stream``; write whatever whole lines it completes."""
        state = self._state(host)
        pending = state.pending.setdefault(stream, _Pending())
        cut = data.rfind(b"\n")
        if cut < 0:
            if not pending.data:
                pending.since = time.monotonic()
            pending.data += data
            return
        lines = pending.data + data[: cut + 1] if pending.data else data[: cut + 1]
        pending.data = data[cut + 1 :]
        pending.since = time.monotonic()
        self._emit(state, stream, lines)

    def end(self, host: str) -> None:
        """``host`` sends no more: write its partial lines (and, grouped, its block)."""
        state = self._state(host)
        for stream, pending in state.pending.items():
            if pending.data:
                data, pending.data = pending.data, b""
                self._emit(state, stream, data + PARTIAL_MARK + b"\n")
        if state.group is not None:
            self._write_group(state.group)
            state.group = None

    def flush_due(self, now: float | None = None) -> None:
        """Write the partial lines that have waited ``partial_delay`` or longer."""
        now = time.monotonic() if now is None else now
        for state in self._hosts.values():
            for stream, pending in state.pending.items():
                if pending.data and now - pending.since >= self._delay:
                    data, pending.data = pending.data, b""
                    self._emit(state, stream, data + PARTIAL_MARK + b"\n")

    async def flush_partials(self) -> None:
        """Run until cancelled, writing partial lines once they are due."""
        while True:
            await anyio.sleep(self._delay / 2)
            self.flush_due()

    def _state(self, host: str) -> _HostState:
        state = self._hosts.get(host)
        if state is None:
            prefix = f"[{host}] ".encode() if self._prefix else b""
            # Closed by end(host), when the block is written.
            spool = tempfile.SpooledTemporaryFile(_SPOOL_MEMORY) if self._group else None  # noqa: SIM115
            state = self._hosts[host] = _HostState(prefix, group=spool)
        return state

    def _emit(self, state: _HostState, stream: int, lines: bytes) -> None:
        """Write whole ``lines`` (ending in a newline) with ``state``'s prefix on each."""
        if state.prefix:
            # One C-level replace labels every line of a chunk at once.
            lines = state.prefix + lines[:-1].replace(b"\n", b"\n" + state.prefix) + b"\n"
        if state.group is not None:
            state.group.write(bytes([stream]) + len(lines).to_bytes(4, "big") + lines)
            return
        target = self._targets[stream]
        target.write(lines)
        target.flush()

    def _write_group(self, spool: tempfile.SpooledTemporaryFile[bytes]) -> None:
        spool.seek(0)
        while header := spool.read(5):
            stream, size = header[0], int.from_bytes(header[1:], "big")
            target = self._targets[stream]
            target.write(spool.read(size))
        spool.close()
        for target in self._targets.values():
            target.flush()
