"""The run context every scenario gets (`Bench`), the figures it records (`Row`),
and small timing helpers."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from grpclib.client import Channel

from gen.jobs import v1 as pb
from jobs.client import open_channel

JOBS = str(Path(sys.executable).with_name("jobs"))
MiB = 1 << 20


@dataclass
class Row:
    """One figure, with the baseline measured in the same run it is compared to."""

    scenario: str
    figure: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""

    @property
    def ratio(self) -> float | None:
        """The figure over its baseline, or None without one."""
        return self.figure / self.baseline if self.baseline else None

    def show(self) -> str:
        """The row as one line of the printed table."""
        ratio = f"{self.ratio:6.2f}x" if self.ratio is not None else "      "
        base = f"{self.baseline:12.1f} {self.unit:<8} {self.baseline_name}" if self.baseline else ""
        return f"{self.scenario:<46} {self.figure:12.1f} {self.unit:<8} {ratio}  {base}"


@dataclass
class Bench:
    """The run: its arguments, a work directory holding the PKI files, the figures so
    far, and the real `jobs serve` the scenarios measure."""

    args: argparse.Namespace
    workdir: Path
    rows: list[Row] = field(default_factory=list)
    port: int = 0
    server: subprocess.Popen[bytes] | None = None
    state: Path | None = None

    def add(self, row: Row) -> None:
        """Record a figure and print it at once."""
        self.rows.append(row)
        print(row.show(), flush=True)

    # -- the server --------------------------------------------------------------

    async def start_server(self, *options: str) -> None:
        """Start `jobs serve` on a free loopback port with its state on /dev/shm
        (``options`` are added to its command line)."""
        home = self.workdir
        state_root = Path("/dev/shm") if Path("/dev/shm").is_dir() else home  # noqa: ASYNC240 (instant)
        self.state = Path(tempfile.mkdtemp(prefix="jobs-bench-", dir=state_root))
        command = [
            JOBS, "serve", "--listen=127.0.0.1:0", f"--ca={home / 'ca.crt'}",
            f"--cert={home / 'server.crt'}", f"--key={home / 'server.key'}",
            f"--state-dir={self.state}", "--max-running=2000", "--max-streams=5000",
            "--output-cap=8G", "--history=5000", "--grace=1s", *options,
        ]  # fmt: skip
        self.server = subprocess.Popen(command, stderr=subprocess.PIPE)
        assert self.server.stderr is not None
        log = b""
        while not (found := re.search(rb"listening on 127.0.0.1:(\d+)", log)):
            chunk = os.read(self.server.stderr.fileno(), 4096)
            if not chunk:
                raise SystemExit(f"jobs serve did not start:\n{log.decode()}")
            log += chunk
        self.port = int(found[1])
        # Keep draining its log so it never blocks on a full pipe; keep it for problems().
        self.log = self.workdir / "server.log"
        self.log.write_bytes(log)
        threading.Thread(target=self._drain, args=(self.server.stderr,), daemon=True).start()

    def _drain(self, stream: IO[bytes]) -> None:
        with self.log.open("ab") as out:
            while chunk := os.read(stream.fileno(), 65536):
                out.write(chunk)
                out.flush()

    def problems(self) -> list[str]:
        """The server's log lines from WARNING up, so a failed figure comes with its cause."""
        lines = self.log.read_text(errors="replace").splitlines()
        return [line for line in lines if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line)]

    async def stop_server(self) -> None:
        """Stop the server gracefully and remove its state."""
        if self.server is not None:
            self.server.send_signal(signal.SIGTERM)
            self.server.wait(30)
            self.server = None
        if self.state is not None:
            shutil.rmtree(self.state, ignore_errors=True)

    def server_rss(self, peak: bool = False) -> int:
        """The server's resident memory in bytes (its peak so far with ``peak``)."""
        assert self.server is not None
        key = "VmHWM:" if peak else "VmRSS:"
        with open(f"/proc/{self.server.pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        return 0

    def reset_peak_rss(self) -> None:
        """Start the server's peak RSS (VmHWM) afresh from its current RSS."""
        assert self.server is not None
        with open(f"/proc/{self.server.pid}/clear_refs", "w") as f:
            f.write("5")

    def server_cpu(self) -> float:
        """CPU seconds (user + system) the server has used so far."""
        assert self.server is not None
        with open(f"/proc/{self.server.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    # -- clients -----------------------------------------------------------------

    def pem_args(self, name: str) -> list[str]:
        """The CA, certificate and key paths of an identity, as command arguments."""
        return [str(self.workdir / f) for f in ("ca.crt", f"{name}.crt", f"{name}.key")]

    def client_env(self) -> dict[str, str]:
        """The environment that points the `jobs` CLI at the server as `bench`."""
        return {
            **os.environ,
            "JOBS_ADDR": f"127.0.0.1:{self.port}",
            "JOBS_CA": str(self.workdir / "ca.crt"),
            "JOBS_CERT": str(self.workdir / "bench.crt"),
            "JOBS_KEY": str(self.workdir / "bench.key"),
        }

    def channel(self) -> Channel:
        """A new grpclib channel to the server, as `bench` (a `full` identity)."""
        w = self.workdir
        return open_channel(
            "127.0.0.1", self.port, ca=w / "ca.crt", cert=w / "bench.crt", key=w / "bench.key"
        )

    @contextlib.asynccontextmanager
    async def stub(self) -> AsyncIterator[pb.JobServiceStub]:
        """A stub on a channel of its own, closed on leaving."""
        channel = self.channel()
        try:
            yield pb.JobServiceStub(channel)
        finally:
            channel.close()


def percentile(values: list[float], p: float) -> float:
    """The value below which a fraction ``p`` of ``values`` lies (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def timed(command: str, env: dict[str, str] | None = None) -> float:
    """Seconds a shell command line takes (blocking: run it from a thread if needed)."""
    started = time.perf_counter()
    subprocess.run(["bash", "-c", command], env=env, check=True)
    return time.perf_counter() - started
