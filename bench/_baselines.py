"""The baselines figures are compared to: a plain TLS 1.3 socket copy, and a grpcio
(C-core) server and clients of the same service, each run as a program of its own
(`bench/grpcio_server.py`, `bench/grpcio_clients.py`)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jobs._tls import client_context, server_context

from ._harness import Bench

# `python -m bench.…` finds this package from the project's root.
PROJECT = Path(__file__).resolve().parent.parent


def have_grpcio() -> bool:
    """Whether grpcio is installed (the grpcio baselines are skipped, and say so, without)."""
    if importlib.util.find_spec("grpc") is not None:
        return True
    print("  (no grpcio here: the grpcio baselines are skipped)")
    return False


def tls_copy(workdir: Path, size: int, piece: int = 256 << 10) -> float:
    """Seconds to push ``size`` bytes through a plain TLS 1.3 socket on loopback."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    sender = os.fork()
    if sender == 0:
        context = server_context(workdir / "server.crt", workdir / "server.key", workdir / "ca.crt")
        conn, _ = listener.accept()
        with context.wrap_socket(conn, server_side=True) as tls:
            block, left = bytes(piece), size
            while left > 0:
                left -= tls.send(block[: min(piece, left)])
        os._exit(0)
    listener.close()
    context = client_context(workdir / "ca.crt", workdir / "bench.crt", workdir / "bench.key")
    started = time.perf_counter()
    with context.wrap_socket(
        socket.create_connection(("127.0.0.1", port)), server_hostname="localhost"
    ) as tls:
        received = 0
        while received < size:
            data = tls.recv(1 << 20)
            if not data:
                break
            received += len(data)
    elapsed = time.perf_counter() - started
    os.waitpid(sender, 0)
    return elapsed


@contextlib.contextmanager
def grpcio_server(b: Bench, size: int) -> Iterator[int]:
    """A grpcio (C-core) server of the same service, streaming ``size`` bytes per Logs
    call; yields its port."""
    command = [sys.executable, "-m", "bench.grpcio_server", str(size), *b.pem_args("server")]
    server = subprocess.Popen(command, cwd=PROJECT, stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        yield int(server.stdout.readline())
    finally:
        server.kill()
        server.wait()


def grpcio_logs(b: Bench, port: int, job_id: str, size: int) -> float:
    """Seconds for a grpcio (C-core) client to receive a job's ``size`` bytes of output."""
    result = _grpcio_client(b, "logs", port, job_id)
    assert result["bytes"] == size, (result, size)
    return float(result["seconds"])


def grpcio_statuses(b: Bench, port: int, job_id: str) -> tuple[float, list[float]]:
    """Calls/s and latencies of a grpcio (C-core) client making status calls, 50 in flight."""
    result = _grpcio_client(b, "status", port, job_id, b.args.calls, 50)
    return b.args.calls / result["seconds"], result["latencies"]


def _grpcio_client(b: Bench, client: str, port: int, *args: object) -> Any:
    command = [
        sys.executable, "-m", "bench.grpcio_clients", client, str(port),
        *b.pem_args("bench"), *map(str, args),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=PROJECT, capture_output=True, check=True, text=True)
    return json.loads(done.stdout)
