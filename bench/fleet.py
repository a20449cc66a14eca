"""The fleet's figures: `jobs run --on SEL -f` of a short command on 8 and 16 local
servers (wall time and the client's CPU), against the same commands run one host
at a time with plain `jobs run -f`, in the same run."""

from __future__ import annotations

import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import anyio

from ._harness import JOBS, Bench, Row

# A short command: what is measured is the fan-out, not the job.
COMMAND = ["true"]


def _start(b: Bench, directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    home = b.workdir
    command = [
        JOBS, "serve", "--listen=127.0.0.1:0", f"--ca={home / 'ca.crt'}",
        f"--cert={home / 'server.crt'}", f"--key={home / 'server.key'}",
        f"--state-dir={directory}", "--grace=1s",
    ]  # fmt: skip
    log_path = directory.with_suffix(".log")
    with log_path.open("wb") as log_file:
        # A file, not a pipe: nobody has to keep draining it.
        server = subprocess.Popen(command, stderr=log_file)
    while not (found := re.search(rb"listening on 127.0.0.1:(\d+)", log_path.read_bytes())):
        if server.poll() is not None:
            raise SystemExit(f"jobs serve did not start:\n{log_path.read_text()}")
        time.sleep(0.05)
    return server, int(found[1])


def _measured(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one client command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


async def fleet_fan_out(b: Bench) -> None:
    """For each size in ``--fleet-hosts``: one `run --on` over that many servers, and
    the same runs one host at a time; wall time and client CPU of each."""
    sizes = b.args.fleet_hosts
    count = max(sizes)
    root = Path(tempfile.mkdtemp(prefix="jobs-bench-fleet-", dir=b.workdir))
    servers: list[subprocess.Popen[bytes]] = []
    try:
        ports = []
        for n in range(count):
            server, port = await anyio.to_thread.run_sync(_start, b, root / f"state-{n}")
            servers.append(server)
            ports.append(port)
        inventory = root / "hosts.toml"
        inventory.write_text(
            "".join(
                f'[[host]]\nname = "h{n}"\naddr = "127.0.0.1:{port}"\n'
                f'labels = {{ size{count} = "yes" }}\n\n'
                for n, port in enumerate(ports)
            )
        )
        env = {**b.client_env(), "JOBS_INVENTORY": str(inventory)}
        for size in sizes:
            names = ",".join(f"h{n}" for n in range(size))
            fleet_wall, fleet_cpu = await anyio.to_thread.run_sync(
                _measured, [JOBS, "run", "--on", names, "-f", "--", *COMMAND], env
            )
            one_wall = one_cpu = 0.0
            for port in ports[:size]:
                wall, cpu = await anyio.to_thread.run_sync(
                    _measured,
                    [JOBS, "run", "--addr", f"127.0.0.1:{port}", "-f", "--", *COMMAND],
                    env,
                )
                one_wall += wall
                one_cpu += cpu
            baseline = f"{size} x `jobs run -f`, one at a time"
            b.add(Row(f"run --on {size} hosts -f true: wall", fleet_wall * 1000, "ms",
                      one_wall * 1000, baseline))  # fmt: skip
            b.add(Row(f"run --on {size} hosts -f true: client CPU", fleet_cpu * 1000, "ms",
                      one_cpu * 1000, baseline))  # fmt: skip
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            server.wait(30)
        shutil.rmtree(root, ignore_errors=True)
