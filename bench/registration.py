"""Registration in etcd: how soon a starting server is listed, how soon a stopping one
is delisted, and how long a crashed one stays listed (against its lease's TTL).

Needs Debian's etcd-server; without an `etcd` on PATH the figures are skipped.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from jobs._etcd import Etcd, EtcdError
from jobs.server import DEFAULT_REGISTER_TTL

from ._harness import JOBS, Bench, Row

POLL = 0.01
"""Seconds between two looks at etcd: the figures' resolution."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def _etcd(directory: Path) -> AsyncIterator[Etcd]:
    """One etcd member on loopback for the block, and a client of it."""
    port, peer = _free_port(), _free_port()
    client_url, peer_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer}"
    command = [
        "etcd", "--name=bench", f"--data-dir={directory / 'etcd'}",
        f"--listen-client-urls={client_url}", f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=bench={peer_url}", "--log-level=error",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with Etcd("127.0.0.1", port, call_timeout=2.0) as client:
            with anyio.fail_after(30):
                while True:
                    try:
                        await client.get("ready")
                        break
                    except EtcdError:
                        await anyio.sleep(0.1)
            yield client
    finally:
        process.kill()
        process.wait()


async def _until(client: Etcd, key: str, *, present: bool, timeout: float = 60) -> float:
    """Poll until ``key`` is there (or gone); the monotonic time it was seen so."""
    with anyio.fail_after(timeout):
        while (await client.get(key) is not None) != present:  # noqa: ASYNC110 -- etcd, not us
            await anyio.sleep(POLL)
    return time.monotonic()


async def registration(b: Bench) -> None:
    """Start -> listed, SIGTERM -> delisted, and kill -9 -> expired, with the default TTL."""
    if shutil.which("etcd") is None:
        print("  registration: not measured (no etcd on PATH: apt-get install etcd-server)")
        return
    with tempfile.TemporaryDirectory(prefix="jobs-bench-etcd-") as tmp:
        directory = Path(tmp)
        async with _etcd(directory) as client:
            url = f"etcd://{client.address}"
            listed: list[float] = []
            delisted: list[float] = []
            expired: list[float] = []
            for run in range(b.args.repeat):
                command = [
                    JOBS, "serve", "--listen=127.0.0.1:0", f"--ca={b.workdir / 'ca.crt'}",
                    f"--cert={b.workdir / 'server.crt'}", f"--key={b.workdir / 'server.key'}",
                    f"--state-dir={directory / f'state{run}'}", f"--name=bench{run}",
                    f"--register={url}",
                ]  # fmt: skip
                key = f"jobs/bench{run}"
                for ending, figures in ((signal.SIGTERM, delisted), (signal.SIGKILL, expired)):
                    started = time.monotonic()
                    server = subprocess.Popen(command, stderr=subprocess.DEVNULL)
                    try:
                        listed.append(await _until(client, key, present=True) - started)
                        stopped = time.monotonic()
                        server.send_signal(ending)
                        figures.append(await _until(client, key, present=False) - stopped)
                    finally:
                        server.kill()
                        server.wait()
    listed.sort()
    b.add(Row("registration: start -> listed in etcd (median)", listed[len(listed) // 2], "s"))
    b.add(Row("registration: SIGTERM -> delisted (max)", max(delisted) * 1000, "ms"))
    b.add(
        Row(
            "registration: kill -9 -> lease expired (max)",
            max(expired),
            "s",
            float(DEFAULT_REGISTER_TTL),
            "the lease's TTL",
        )
    )
