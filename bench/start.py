"""How fast jobs start: run + wait of /bin/true, bare, with cgroup limits and in
namespaces, against Popen of the same command."""

from __future__ import annotations

import subprocess
import time

from gen.jobs import v1 as pb

from ._harness import Bench, MiB, Row, percentile


async def start_rate(b: Bench) -> None:
    """``--starts`` jobs per variant, one after the other."""
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
                scenario = f"start rate, {name} (run + wait)"
                b.add(Row(scenario, rate, "jobs/s", bare_rate, "Popen(/bin/true)"))
                b.add(Row(f"start latency, {name}, p50", percentile(latencies, 0.5) * 1000, "ms"))
                b.add(Row(f"start latency, {name}, p99", percentile(latencies, 0.99) * 1000, "ms"))
