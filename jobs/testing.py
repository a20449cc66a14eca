"""A real jobs server for integration tests and benchmarks.

`JobsServer` runs `jobs serve` as a subprocess on 127.0.0.1 port 0 with a given
state directory, and returns once the server said which port it listens on;
`write_pki` makes the throwaway certificates it needs. For another async service's
tests::

    pki = write_pki(tmp_path / "pki", clients={"ci": "full"})
    async with JobsServer(tmp_path / "state", pki) as server:
        channel = server.channel(pki.clients["ci"])
        ...

The server's log (its stdout and stderr) is drained all along, so it never blocks on a
full pipe, and kept in `JobsServer.log`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

import anyio
import anyio.abc
from grpclib.client import Channel

import pki as _pki

from .client import open_channel

__all__ = [
    "JOBS",
    "START_TIMEOUT",
    "STOP_TIMEOUT",
    "CertAndKey",
    "JobsServer",
    "PemFiles",
    "ServerDidNotStart",
    "ServerFiles",
    "ThrowawayPki",
    "write_pki",
]

JOBS = str(Path(sys.executable).with_name("jobs"))
"""The `jobs` console script installed next to this interpreter."""
START_TIMEOUT = 20.0  # seconds for `jobs serve` to say where it listens
STOP_TIMEOUT = 30.0  # seconds for it to end after the signal, before SIGKILL


@dataclass(frozen=True)
class PemFiles:
    """A certificate and its private key, PEM files on disk."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class ThrowawayPki:
    """A CA, a server identity (localhost, 127.0.0.1, ::1) and client identities."""

    ca: Path
    server: PemFiles
    clients: dict[str, PemFiles]


def write_pki(
    directory: Path,
    clients: Mapping[str, str | None] | None = None,
    server_names: Sequence[str] = (),
) -> ThrowawayPki:
    """Make a new CA in ``directory`` (`ca.crt`, `ca.key`), a server identity
    (`server.crt`, `server.key`: localhost, 127.0.0.1, ::1 and ``server_names``) and
    one client identity per entry of ``clients`` (account name -> role, `full`,
    `readonly` or None; `NAME.crt`, `NAME.key`). By default, one `full` client
    named `client`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _pki.create_ca()
    ca_cert, _ = _pki.write_identity(ca, directory, "ca")
    server = PemFiles(
        *_pki.write_identity(_pki.issue_server(ca, server_names), directory, "server")
    )
    written = {
        name: PemFiles(*_pki.write_identity(_pki.issue_client(ca, name, role), directory, name))
        for name, role in (clients if clients is not None else {"client": "full"}).items()
    }
    return ThrowawayPki(ca_cert, server, written)


class CertAndKey(Protocol):
    """Anything with the paths of a certificate and its key (`PemFiles` is one)."""

    @property
    def cert(self) -> Path: ...
    @property
    def key(self) -> Path: ...


class ServerFiles(Protocol):
    """What the server needs of a PKI: the CA and its own identity (`ThrowawayPki`
    has them, and so has any object with those attributes)."""

    @property
    def ca(self) -> Path: ...
    @property
    def server(self) -> CertAndKey: ...


class ServerDidNotStart(RuntimeError):
    """`jobs serve` ended, or said nothing of a port in time; ``log`` is what it wrote."""

    def __init__(self, reason: str, log: bytes) -> None:
        super().__init__(f"jobs serve {reason}:\n{log.decode(errors='replace')}")
        self.log = log


class JobsServer:
    """`jobs serve` as a subprocess on ``host`` (127.0.0.1) port 0, with the CA and
    server identity of ``pki``, the state in ``state_dir`` and ``options`` added to
    its command line (``command`` runs the CLI: the `jobs` script next to this Python
    by default; ``start_timeout``: seconds to wait for its port; ``env``: variables
    added to this process's environment). It can be started again once stopped:
    same state, a new port."""

    def __init__(
        self,
        state_dir: Path,
        pki: ServerFiles,
        *options: str,
        command: Sequence[str] = (JOBS,),
        start_timeout: float = START_TIMEOUT,
        host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.ca = pki.ca
        self.server_files = PemFiles(pki.server.cert, pki.server.key)
        self.options = options
        self.command = command
        self.start_timeout = start_timeout
        self.process: anyio.abc.Process | None = None
        self.host = host
        self.env = {**os.environ, **(env or {})}
        self.port = 0
        self._log = bytearray()
        self._drain: threading.Thread | None = None

    def __repr__(self) -> str:
        pid = self.process.pid if self.process is not None else None
        return f"<JobsServer {self.address} pid={pid} state={str(self.state_dir)!r}>"

    @property
    def address(self) -> str:
        """HOST:PORT, as `JOBS_ADDR` and `--listen` read it."""
        return f"{self.host}:{self.port}"

    @property
    def log(self) -> bytes:
        """Everything the server wrote on its stdout and stderr so far (every start)."""
        return bytes(self._log)

    async def start(self) -> None:
        """Start the server and return once it listens.

        Raises `ServerDidNotStart` (the server killed, its log in the message) if it
        ends first or says nothing of its port within ``start_timeout`` seconds.
        """
        if self.process is not None:
            raise RuntimeError(f"{self!r} is already running")
        argv = [
            *self.command, "serve", f"--listen={self.host}:0", f"--ca={self.ca}",
            f"--cert={self.server_files.cert}", f"--key={self.server_files.key}",
            f"--state-dir={self.state_dir}", *self.options,
        ]  # fmt: skip
        # A pipe of our own rather than anyio's stream: after start-up, a thread
        # drains it to its end without needing a task group from the caller.
        reader, writer = os.pipe()
        try:
            self.process = await anyio.open_process(
                argv, stdin=subprocess.DEVNULL, stdout=writer, stderr=writer, env=self.env
            )
        except BaseException:
            os.close(reader)
            raise
        finally:
            os.close(writer)
        try:
            self.port = await self._read_port(reader, len(self._log))
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._kill()
                await anyio.to_thread.run_sync(self._read_rest, reader)
            raise
        self._drain = threading.Thread(
            target=self._read_rest, args=(reader,), name=f"jobs serve {self.port} log", daemon=True
        )
        self._drain.start()

    async def _read_port(self, reader: int, since: int) -> int:
        os.set_blocking(reader, False)
        try:
            with anyio.move_on_after(self.start_timeout):
                listening = re.compile(rb"listening on %s:(\d+)" % re.escape(self.host.encode()))
                while not (found := listening.search(self._log, since)):
                    await anyio.wait_readable(reader)
                    try:
                        chunk = os.read(reader, 65536)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        raise ServerDidNotStart("ended early", self.log)
                    self._log += chunk
                return int(found[1])
        finally:
            os.set_blocking(reader, True)
        raise ServerDidNotStart(f"said nothing of a port in {self.start_timeout:g}s", self.log)

    def _read_rest(self, reader: int) -> None:
        try:
            while chunk := os.read(reader, 65536):
                self._log += chunk
        finally:
            os.close(reader)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Send ``sig`` and wait for the server to end (SIGKILL after ``timeout``
        seconds); return its exit status (negative: killed by that signal)."""
        if self.process is None:
            raise RuntimeError(f"{self!r} is not running")
        with contextlib.suppress(ProcessLookupError):  # it ended by itself
            self.process.send_signal(signal.Signals(sig))
        with anyio.move_on_after(timeout, shield=True):
            await self.process.wait()
        return await self._kill()

    async def _kill(self) -> int:
        """Kill the server if it still runs, reap it, and collect the end of its log."""
        assert self.process is not None
        process, self.process = self.process, None
        drain, self._drain = self._drain, None
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            await process.wait()
            await process.aclose()
            if drain is not None:
                # The pipe's last writer is gone: the thread sees its end at once.
                await anyio.to_thread.run_sync(drain.join)
        assert process.returncode is not None
        return process.returncode

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process is not None:
            await self.stop()

    # -- looking at it -----------------------------------------------------------

    def channel(self, client: CertAndKey) -> Channel:
        """A new channel to the server as ``client`` (the caller closes it)."""
        return open_channel(self.host, self.port, ca=self.ca, cert=client.cert, key=client.key)

    @property
    def pid(self) -> int:
        """The server's process id."""
        if self.process is None:
            raise RuntimeError(f"{self!r} is not running")
        return self.process.pid

    def rss(self) -> int:
        """The server's resident memory now, in bytes."""
        return self._status("VmRSS:")

    def rss_peak(self) -> int:
        """The most the server's resident memory has been, in bytes."""
        return self._status("VmHWM:")

    def reset_rss_peak(self) -> None:
        """Start the peak (`rss_peak`) afresh from the resident memory now."""
        with open(f"/proc/{self.pid}/clear_refs", "w") as f:
            f.write("5")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server has used so far, in seconds."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _status(self, key: str) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {key} in /proc/{self.pid}/status")
