"""The jobs benchmark suite: each figure next to a baseline measured in the same run.

Run with `nox -s bench` (or `python bench/run.py --help` inside an environment
with jobs installed). Sizes default to a few minutes in all on a 2-core machine;
every one is settable. The server is the real `jobs serve`, on loopback, with its
state on /dev/shm (when there is one) so that the disk is not what is measured.
These machines are noisy: read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio
from grpclib.client import Channel

import pki
from gen.jobs import v1 as pb
from jobs._tls import client_context, server_context
from jobs.client import logs, open_channel

JOBS = str(Path(sys.executable).with_name("jobs"))
MiB = 1 << 20


@dataclass
class Row:
    scenario: str
    figure: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""

    def show(self) -> str:
        ratio = f"{self.figure / self.baseline:6.2f}x" if self.baseline else "      "
        base = f"{self.baseline:12.1f} {self.unit:<8} {self.baseline_name}" if self.baseline else ""
        return f"{self.scenario:<46} {self.figure:12.1f} {self.unit:<8} {ratio}  {base}"


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: Path
    rows: list[Row] = field(default_factory=list)
    port: int = 0
    server: subprocess.Popen[bytes] | None = None
    ids: pki.Identity | None = None

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(row.show(), flush=True)

    # -- the server --------------------------------------------------------------

    def start_server(self) -> None:
        home = self.workdir
        state_root = Path("/dev/shm") if Path("/dev/shm").is_dir() else home
        self.state = Path(tempfile.mkdtemp(prefix="jobs-bench-", dir=state_root))
        command = [
            JOBS, "serve", "--listen=127.0.0.1:0", f"--ca={home / 'ca.crt'}",
            f"--cert={home / 'server.crt'}", f"--key={home / 'server.key'}",
            f"--state-dir={self.state}", "--max-running=2000", "--max-streams=5000",
            "--output-cap=8G", "--history=5000", "--grace=1s",
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

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.send_signal(signal.SIGTERM)
            self.server.wait(30)
            shutil.rmtree(self.state, ignore_errors=True)

    def server_rss(self, peak: bool = False) -> int:
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

    def pem_args(self, name: str) -> list[str]:
        """The CA, certificate and key paths of an identity, as command arguments."""
        return [str(self.workdir / f) for f in ("ca.crt", f"{name}.crt", f"{name}.key")]

    def client_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "JOBS_ADDR": f"127.0.0.1:{self.port}",
            "JOBS_CA": str(self.workdir / "ca.crt"),
            "JOBS_CERT": str(self.workdir / "bench.crt"),
            "JOBS_KEY": str(self.workdir / "bench.key"),
        }

    def channel(self) -> Channel:
        w = self.workdir
        return open_channel(
            "127.0.0.1", self.port, ca=w / "ca.crt", cert=w / "bench.crt", key=w / "bench.key"
        )

    @contextlib.asynccontextmanager
    async def stub(self) -> AsyncIterator[pb.JobServiceStub]:
        channel = self.channel()
        try:
            yield pb.JobServiceStub(channel)
        finally:
            channel.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def timed(command: str, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(["bash", "-c", command], env=env, check=True)
    return time.perf_counter() - started


# -- baselines -------------------------------------------------------------------------


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


GRPCIO_SERVER = """
import sys, time
from concurrent import futures
import grpc
import service_pb2 as pb, service_pb2_grpc as rpc

size, ca, cert, key = int(sys.argv[1]), *sys.argv[2:5]
PIECE = bytes(256 << 10)
JOB = pb.Job(id="0" * 32, owner="bench", command=["true"], state=pb.JOB_STATE_EXITED)

class Jobs(rpc.JobServiceServicer):
    def Logs(self, request, context):
        sent = 0
        while sent < size:
            data = PIECE[: min(len(PIECE), size - sent)]
            yield pb.LogsResponse(offset=sent, stream=pb.STREAM_STDOUT, data=data)
            sent += len(data)

    def Status(self, request, context):
        return pb.StatusResponse(job=JOB)

server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
rpc.add_JobServiceServicer_to_server(Jobs(), server)
credentials = grpc.ssl_server_credentials(
    [(open(key, "rb").read(), open(cert, "rb").read())],
    root_certificates=open(ca, "rb").read(),
    require_client_auth=True,
)
port = server.add_secure_port("127.0.0.1:0", credentials)
server.start()
print(port, flush=True)
server.wait_for_termination()
"""

GRPCIO_STATUS_CLIENT = """
import asyncio, json, sys, time
import grpc
import service_pb2 as pb, service_pb2_grpc as rpc

port, ca, cert, key, job_id = sys.argv[1:6]
calls, in_flight = int(sys.argv[6]), int(sys.argv[7])

async def main():
    credentials = grpc.ssl_channel_credentials(
        open(ca, "rb").read(), open(key, "rb").read(), open(cert, "rb").read()
    )
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        stub = rpc.JobServiceStub(channel)
        request = pb.StatusRequest(job_id=job_id)
        await stub.Status(request)
        latencies, counter = [], iter(range(calls))

        async def worker():
            for _ in counter:
                started = time.perf_counter()
                await stub.Status(request)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        print(json.dumps({"seconds": time.perf_counter() - started, "latencies": latencies}))

asyncio.run(main())
"""


GRPCIO_LOGS_CLIENT = """
import json, sys, time
import grpc
import service_pb2 as pb, service_pb2_grpc as rpc

port, ca, cert, key, job_id = sys.argv[1:6]
credentials = grpc.ssl_channel_credentials(
    open(ca, "rb").read(), open(key, "rb").read(), open(cert, "rb").read()
)
with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
    stub = rpc.JobServiceStub(channel)
    started, received = time.perf_counter(), 0
    for message in stub.Logs(pb.LogsRequest(job_id=job_id, follow=True)):
        received += len(message.data)
    print(json.dumps({"seconds": time.perf_counter() - started, "bytes": received}))
"""


def grpcio_stubs(b: Bench) -> Path | None:
    """A folder with grpcio's stubs for service.proto, or None without grpcio-tools."""
    out = b.workdir / "grpcio"
    if (out / "service_pb2_grpc.py").exists():
        return out
    out.mkdir(exist_ok=True)
    proto = Path(__file__).resolve().parent.parent / "service.proto"
    generate = [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto.parent}",
                f"--python_out={out}", f"--grpc_python_out={out}", str(proto)]  # fmt: skip
    if subprocess.run(generate, capture_output=True).returncode != 0:
        print("  (no grpcio-tools here: the grpcio baselines are skipped)")
        return None
    (out / "server.py").write_text(GRPCIO_SERVER)
    (out / "status_client.py").write_text(GRPCIO_STATUS_CLIENT)
    (out / "logs_client.py").write_text(GRPCIO_LOGS_CLIENT)
    return out


@contextlib.contextmanager
def grpcio_server(b: Bench, stubs: Path, size: int) -> Iterator[int]:
    """A grpcio (C-core) server of the same service, streaming ``size`` bytes per Logs call."""
    server = subprocess.Popen(
        [sys.executable, "server.py", str(size), *b.pem_args("server")],
        cwd=stubs,
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        yield int(server.stdout.readline())
    finally:
        server.kill()
        server.wait()


def grpcio_logs(b: Bench, stubs: Path, port: int, job_id: str, size: int) -> float:
    """Seconds for a grpcio (C-core) client to receive a job's ``size`` bytes of output."""
    result = _grpcio_client(b, stubs, "logs_client.py", port, job_id)
    assert result["bytes"] == size, (result, size)
    return float(result["seconds"])


def grpcio_statuses(b: Bench, stubs: Path, port: int, job_id: str) -> tuple[float, list[float]]:
    """Calls/s and latencies of a grpcio (C-core) client making status calls, 50 in flight."""
    result = _grpcio_client(b, stubs, "status_client.py", port, job_id, b.args.calls, 50)
    return b.args.calls / result["seconds"], result["latencies"]


def _grpcio_client(b: Bench, stubs: Path, script: str, port: int, *args: object) -> Any:
    command = [sys.executable, script, str(port), *b.pem_args("bench"), *map(str, args)]
    done = subprocess.run(command, cwd=stubs, capture_output=True, check=True, text=True)
    return json.loads(done.stdout)


# -- scenarios -------------------------------------------------------------------------


async def single_follower(b: Bench) -> None:
    size = b.args.stream_mib * MiB
    env = b.client_env()
    stubs = grpcio_stubs(b)
    seconds: dict[str, list[float]] = collections.defaultdict(list)
    # Ours and the baselines take turns, so that the machine's drift hits them alike.
    for _ in range(b.args.repeat):
        run = [JOBS, "run", "head", "-c", str(size), "/dev/zero"]
        job = subprocess.run(run, env=env, capture_output=True, check=True, text=True).stdout
        job = job.strip()
        seconds["live"].append(timed(f"{JOBS} logs -f {job} > /dev/null", env))
        seconds["replay"].append(timed(f"{JOBS} logs {job} > /dev/null", env))
        seconds["tls"].append(await anyio.to_thread.run_sync(tls_copy, b.workdir, size))
        if stubs is None:
            continue
        ours = await anyio.to_thread.run_sync(grpcio_logs, b, stubs, b.port, job, size)
        seconds["grpcio client"].append(ours)
        with grpcio_server(b, stubs, size) as port:
            cli = timed(
                f"{JOBS} logs -f {job} > /dev/null", {**env, "JOBS_ADDR": f"127.0.0.1:{port}"}
            )
            seconds["grpcio server"].append(cli)
            theirs = await anyio.to_thread.run_sync(grpcio_logs, b, stubs, port, job, size)
            seconds["grpcio both"].append(theirs)
    mbps = {name: size / statistics.median(values) / 1e6 for name, values in seconds.items()}
    tls = "TLS 1.3 socket copy"
    b.add(Row("single follower, live (jobs logs -f)", mbps["live"], "MB/s", mbps["tls"], tls))
    b.add(Row("single follower, replay (jobs logs)", mbps["replay"], "MB/s", mbps["tls"], tls))
    if stubs is None:
        return
    # grpcio streams from memory; replay (the job has ended) compares like with like.
    same = "grpcio server, same client"
    b.add(
        Row(
            "single follower, live (jobs logs -f)",
            mbps["live"],
            "MB/s",
            mbps["grpcio server"],
            same,
        )
    )
    b.add(
        Row(
            "single follower, replay (jobs logs)",
            mbps["replay"],
            "MB/s",
            mbps["grpcio server"],
            same,
        )
    )
    # `jobs logs` is pure Python and the bottleneck of both figures above: a C-core
    # client shows what each server can send.
    b.add(
        Row(
            "single follower, replay, grpcio client",
            mbps["grpcio client"],
            "MB/s",
            mbps["grpcio both"],
            same,
        )
    )


async def live_run(b: Bench) -> None:
    size = b.args.stream_mib * MiB
    env = b.client_env()
    alone = min(timed(f"head -c {size} /dev/zero > /dev/null") for _ in range(3))
    wall = timed(f"{JOBS} run -f -- head -c {size} /dev/zero > /dev/null", env)
    b.add(
        Row(
            f"jobs run -f head -c {b.args.stream_mib}M, wall",
            wall * 1000,
            "ms",
            alone * 1000,
            "the job alone",
        )
    )


async def fan_out(b: Bench) -> None:
    size = b.args.fanout_mib * MiB
    for followers in b.args.followers:
        async with b.stub() as stub:
            job = (
                await stub.run(
                    pb.RunRequest(command=["sh", "-c", f"sleep 0.5; head -c {size} /dev/zero"])
                )
            ).job
        channels = [b.channel() for _ in range(max(1, followers // 50))]
        received = 0
        before = b.server_rss()
        b.reset_peak_rss()

        async def follow(channel: Channel, job_id: str = job.id) -> None:
            nonlocal received
            async with logs(channel, job_id, follow=True) as messages:
                async for message in messages:
                    received += len(message.data)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for n in range(followers):
                tg.start_soon(follow, channels[n % len(channels)])
        elapsed = time.perf_counter() - started - 0.5
        for channel in channels:
            channel.close()
        assert received == followers * size, (received, followers * size)
        b.add(Row(f"fan-out {followers} followers, aggregate", received / elapsed / 1e6, "MB/s"))
        b.add(
            Row(
                f"fan-out {followers} followers, server peak RSS",
                b.server_rss(peak=True) / MiB,
                "MiB",
                before / MiB,
                "RSS before",
            )
        )
        await line_latency(b, followers)


async def line_latency(b: Bench, followers: int) -> None:
    script = (
        "import time\n"
        "for _ in range(100):\n"
        "    print(time.time_ns(), flush=True)\n"
        "    time.sleep(0.02)"
    )
    async with b.stub() as stub:
        job = (await stub.run(pb.RunRequest(command=[sys.executable, "-c", script]))).job
    channels = [b.channel() for _ in range(max(1, followers // 50))]
    latencies: list[float] = []

    async def follow(channel: Channel) -> None:
        async with logs(channel, job.id, follow=True) as messages:
            async for message in messages:
                now = time.time_ns()
                latencies.extend((now - int(line)) / 1e6 for line in message.data.split())

    async with anyio.create_task_group() as tg:
        for n in range(followers):
            tg.start_soon(follow, channels[n % len(channels)])
    for channel in channels:
        channel.close()
    # The first lines are replayed from disk to late joiners; count the live ones.
    live = latencies[len(latencies) // 10 :]
    b.add(Row(f"fan-out {followers} followers, line latency p50", percentile(live, 0.5), "ms"))
    b.add(Row(f"fan-out {followers} followers, line latency p99", percentile(live, 0.99), "ms"))


async def control_plane(b: Bench) -> None:
    calls, in_flight, repeat = b.args.calls, 50, b.args.repeat
    stubs = grpcio_stubs(b)
    rates: dict[str, list[float]] = collections.defaultdict(list)
    latencies: dict[str, list[float]] = collections.defaultdict(list)
    cpu = 0.0
    async with b.stub() as stub:
        job = (await stub.run(pb.RunRequest(command=["true"]))).job
        await stub.wait(pb.WaitRequest(job_id=job.id))
        for _ in range(repeat):
            rate = await _grpclib_statuses(stub, job.id, calls, in_flight, latencies["grpclib"])
            rates["grpclib"].append(rate)
            # The client above is pure Python too and shares the 2 cores: a C-core
            # client shows what the server itself can do, next to a C-core server.
            if stubs is None:
                continue
            used = b.server_cpu()
            rate, times = await anyio.to_thread.run_sync(grpcio_statuses, b, stubs, b.port, job.id)
            cpu += b.server_cpu() - used
            rates["grpcio"].append(rate)
            latencies["grpcio"].extend(times)
            with grpcio_server(b, stubs, 0) as port:
                base, _ = await anyio.to_thread.run_sync(grpcio_statuses, b, stubs, port, job.id)
            rates["baseline"].append(base)
    median = {name: statistics.median(values) for name, values in rates.items()}
    for client in ("grpclib", "grpcio") if stubs else ("grpclib",):
        goal = (
            (2000.0, "the goal") if client == "grpclib" else (median["baseline"], "grpcio server")
        )
        b.add(Row(f"status calls, 50 in flight, {client} client", median[client], "calls/s", *goal))
        for p in (0.5, 0.99):
            value = percentile(latencies[client], p) * 1000
            b.add(Row(f"status call latency p{p * 100:.0f}, {client} client", value, "ms"))
    if stubs is None:
        return
    per_call = cpu / (calls * repeat)
    b.add(Row("server CPU per status call", per_call * 1e6, "us"))
    b.add(
        Row(
            "status calls per server core (1 / CPU per call)",
            1 / per_call,
            "calls/s",
            2000,
            "the goal",
        )
    )


async def _grpclib_statuses(
    stub: pb.JobServiceStub, job_id: str, calls: int, in_flight: int, latencies: list[float]
) -> float:
    """Calls/s of ``calls`` status calls through the stub, ``in_flight`` at a time."""
    counter = iter(range(calls))

    async def worker() -> None:
        for _ in counter:
            started = time.perf_counter()
            await stub.status(pb.StatusRequest(job_id=job_id))
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(in_flight):
            tg.start_soon(worker)
    return calls / (time.perf_counter() - started)


async def start_rate(b: Bench) -> None:
    count = b.args.starts
    bare = []
    for _ in range(count):
        started = time.perf_counter()
        subprocess.Popen(["/bin/true"]).wait()
        bare.append(time.perf_counter() - started)
    bare_rate = count / sum(bare)
    variants = {
        "no limits": pb.RunRequest(command=["/bin/true"]),
        "cgroup limits": pb.RunRequest(
            command=["/bin/true"], limits=pb.Limits(cpu=1, memory=256 * MiB, pids=64)
        ),
        "pid,mount,net namespaces": pb.RunRequest(
            command=["/bin/true"],
            isolation=[pb.Namespace["PID"], pb.Namespace["MOUNT"], pb.Namespace["NET"]],
        ),
    }
    async with b.stub() as stub:
        for name, request in variants.items():
            latencies = []
            started_all = time.perf_counter()
            for _ in range(count):
                started = time.perf_counter()
                try:
                    job = (await stub.run(request)).job
                except Exception as exc:  # a host without cgroups or namespaces
                    print(f"  start rate, {name}: not measured ({exc})")
                    break
                latencies.append(time.perf_counter() - started)
                await stub.wait(pb.WaitRequest(job_id=job.id))
            else:
                rate = count / (time.perf_counter() - started_all)
                b.add(
                    Row(
                        f"start rate, {name} (run + wait)",
                        rate,
                        "jobs/s",
                        bare_rate,
                        "Popen(/bin/true)",
                    )
                )
                b.add(Row(f"start latency, {name}, p50", percentile(latencies, 0.5) * 1000, "ms"))
                b.add(Row(f"start latency, {name}, p99", percentile(latencies, 0.99) * 1000, "ms"))


async def memory(b: Bench) -> None:
    start_rss = b.server_rss()
    async with b.stub() as stub:
        for _ in range(b.args.finished):
            job = (await stub.run(pb.RunRequest(command=["/bin/true"]))).job
            await stub.wait(pb.WaitRequest(job_id=job.id))
        b.add(
            Row(
                f"server RSS with {b.args.finished} more finished jobs",
                b.server_rss() / MiB,
                "MiB",
                start_rss / MiB,
                "before them",
            )
        )
        sleeper = (await stub.run(pb.RunRequest(command=["sleep", "3600"]))).job
        before = b.server_rss()
        async with anyio.create_task_group() as tg:
            channels = [b.channel() for _ in range(10)]
            for n in range(b.args.idle_followers):
                tg.start_soon(_drain_logs, channels[n % 10], sleeper.id)
            await anyio.sleep(3)
            b.add(
                Row(
                    f"server RSS with {b.args.idle_followers} idle followers",
                    b.server_rss() / MiB,
                    "MiB",
                    before / MiB,
                    "without them",
                )
            )
            tg.cancel_scope.cancel()
        for channel in channels:
            channel.close()
        await stub.stop(pb.StopRequest(job_id=sleeper.id, grace_seconds=0))
        await anyio.sleep(1)
        before = b.server_rss()
        await _grpclib_statuses(stub, sleeper.id, b.args.drift_calls, 50, latencies=[])
        b.add(
            Row(
                f"server RSS after {b.args.drift_calls} status calls",
                b.server_rss() / MiB,
                "MiB",
                before / MiB,
                "before them",
            )
        )
    before = b.server_rss()
    failures: list[str] = []
    for _ in range(b.args.waves):
        channels = [b.channel() for _ in range(b.args.wave_clients)]
        async with anyio.create_task_group() as tg:
            for channel in channels:
                tg.start_soon(_one_status, channel, sleeper.id, failures)
        for channel in channels:
            channel.close()
        await anyio.sleep(0.5)
    total = b.args.waves * b.args.wave_clients
    b.add(Row(f"client calls failed in the waves (of {total})", len(failures), "calls"))
    for reason in sorted(set(failures)):
        print(f"  {failures.count(reason)} x {reason}")
    if failures:
        logged = b.problems()
        print(f"  the server logged {len(logged)} warnings or errors; the last ones:")
        for line in logged[-10:]:
            print(f"    {line}")
    b.add(
        Row(
            f"server RSS after {b.args.waves} waves of {b.args.wave_clients} clients",
            b.server_rss() / MiB,
            "MiB",
            before / MiB,
            "before them",
        )
    )


async def _drain_logs(channel: Channel, job_id: str) -> None:
    async with logs(channel, job_id, follow=True) as messages:
        async for _ in messages:
            pass


async def _one_status(channel: Channel, job_id: str, failures: list[str]) -> None:
    try:
        with anyio.fail_after(60):
            await pb.JobServiceStub(channel).status(pb.StatusRequest(job_id=job_id))
    except Exception as exc:  # counted and reported, not fatal to the run
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            task.uncancel()  # grpclib's stray cancel on a lost connection
        failures.append(f"{type(exc).__name__}: {exc}")


SCENARIOS: dict[str, Callable[[Bench], Awaitable[None]]] = {
    "stream": single_follower,
    "live": live_run,
    "fanout": fan_out,
    "control": control_plane,
    "start": start_rate,
    "memory": memory,
}


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="jobs-bench-") as tmp:
        workdir = Path(tmp)
        ca = pki.create_ca()
        pki.write_identity(ca, workdir, "ca")
        pki.write_identity(pki.issue_server(ca), workdir, "server")
        pki.write_identity(pki.issue_client(ca, "bench", "full"), workdir, "bench")
        bench = Bench(args, workdir)
        bench.start_server()
        print(
            f"jobs bench on {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
            f"state on {bench.state.parent}; streaming and status figures: "
            + (f"medians of {args.repeat} runs" if args.repeat > 1 else "one run")
        )
        print(f"{'scenario':<46} {'figure':>12} {'unit':<8} {'ratio':>7}  baseline")
        try:
            for name in args.only or SCENARIOS:
                await SCENARIOS[name](bench)
        finally:
            bench.stop_server()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run only these scenarios")
    parser.add_argument(
        "--stream-mib", type=int, default=1024, help="bytes of the streaming scenarios (MiB)"
    )
    parser.add_argument(
        "--fanout-mib", type=int, default=8, help="bytes each fan-out follower receives (MiB)"
    )
    parser.add_argument("--followers", type=int, nargs="+", default=[100, 500])
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of the streaming and status scenarios (median)"
    )
    parser.add_argument("--calls", type=int, default=20_000, help="status calls to time")
    parser.add_argument("--starts", type=int, default=100, help="jobs started per variant")
    parser.add_argument(
        "--finished", type=int, default=1000, help="finished jobs for the memory figure"
    )
    parser.add_argument("--idle-followers", type=int, default=500)
    parser.add_argument("--drift-calls", type=int, default=100_000)
    parser.add_argument("--waves", type=int, default=5)
    parser.add_argument("--wave-clients", type=int, default=500)
    return parser.parse_args()


if __name__ == "__main__":
    anyio.run(main, parse(), backend="asyncio", backend_options={"use_uvloop": True})
