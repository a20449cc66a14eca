"""The run context every scenario gets (`Bench`), the figures it records (`Row`),
and small timing helpers."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from grpclib.client import Channel

from gen.jobs import v1 as pb
from jobs.client import open_channel
from jobs.testing import JOBS as JOBS  # re-exported: scenarios run the CLI
from jobs.testing import JobsServer, write_pki

MiB = 1 << 20
# Caps far above what the scenarios reach, so that they measure and are never refused.
# Jobs run as whoever runs the bench: some scenarios run this Python, whose
# virtualenv may sit in a home no other user can enter.
SERVER_OPTIONS = (
    f"--default-user={getpass.getuser()}",
    "--max-running=2000",
    "--max-streams=5000",
    "--output-cap=8G",
    "--history=5000",
    "--grace=1s",
)


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
    """The run: its arguments, a work directory holding a throwaway PKI (a `bench`
    client with the `full` role), the figures so far, and the real `jobs serve`
    (jobs.testing's) that the scenarios measure."""

    args: argparse.Namespace
    workdir: Path
    rows: list[Row] = field(default_factory=list)
    server: JobsServer | None = None
    state: Path | None = None

    def __post_init__(self) -> None:
        self.pki = write_pki(self.workdir, clients={"bench": "full"})

    def add(self, row: Row) -> None:
        """Record a figure and print it at once."""
        self.rows.append(row)
        print(row.show(), flush=True)

    # -- the server --------------------------------------------------------------

    async def start_server(self, *options: str) -> None:
        """Start `jobs serve` on a free loopback port with its state on /dev/shm
        (``options`` are added to its command line, after the suite's own)."""
        shm = Path("/dev/shm")
        state_root = shm if shm.is_dir() else self.workdir  # noqa: ASYNC240 (instant)
        self.state = Path(tempfile.mkdtemp(prefix="jobs-bench-", dir=state_root))
        self.server = JobsServer(self.state, self.pki, *SERVER_OPTIONS, *options)
        await self.server.start()

    async def stop_server(self) -> None:
        """Stop the server gracefully and remove its state."""
        if self.server is not None and self.server.process is not None:
            await self.server.stop()
        if self.state is not None:
            shutil.rmtree(self.state, ignore_errors=True)
            self.state = None

    @property
    def port(self) -> int:
        """The server's port on 127.0.0.1."""
        return self.running.port

    @property
    def running(self) -> JobsServer:
        """The server; an error if none was started."""
        if self.server is None:
            raise RuntimeError("no server: call start_server() first")
        return self.server

    def problems(self) -> list[str]:
        """The server's log lines from WARNING up, so a failed figure comes with its cause."""
        lines = self.running.log.decode(errors="replace").splitlines()
        return [line for line in lines if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line)]

    def server_rss(self, peak: bool = False) -> int:
        """The server's resident memory in bytes (its peak so far with ``peak``)."""
        return self.running.rss_peak() if peak else self.running.rss()

    def reset_peak_rss(self) -> None:
        """Start the server's peak RSS (VmHWM) afresh from its current RSS."""
        self.running.reset_rss_peak()

    def server_cpu(self) -> float:
        """CPU seconds (user + system) the server has used so far."""
        return self.running.cpu_seconds()

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
