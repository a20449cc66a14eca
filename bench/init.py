"""What the init of PID-namespace jobs costs a job: start time, memory and pids."""

from __future__ import annotations

import time

from gen.jobs import v1 as pb

from ._harness import Bench, MiB, Row, percentile

STARTS = 30
PROBE = (
    'c=$(grep -E "^[0-9]+:memory:" /proc/self/cgroup | cut -d: -f3); '
    'p=$(grep -E "^[0-9]+:pids:" /proc/self/cgroup | cut -d: -f3); '
    "sleep 0.2; cat /sys/fs/cgroup/memory$c/memory.max_usage_in_bytes "
    "/sys/fs/cgroup/pids$p/pids.current"
)
"""Run in the job: its cgroup's peak memory and its process count (cgroup v1)."""


async def init_cost(b: Bench) -> None:
    """Run + wait of /bin/true (p50 of ``STARTS``) in a PID namespace (which needs a
    mount namespace, for its /proc) against a mount namespace alone: the difference
    is the init's and the PID namespace's; and what a job's cgroup holds, peak memory
    and processes, with and without the init."""
    limits = pb.Limits(memory=256 * MiB, pids=64)
    pid = [pb.Namespace["PID"]]
    mount = [pb.Namespace["MOUNT"]]
    async with b.stub() as stub:
        figures: dict[str, tuple[float, float, int]] = {}
        for name, isolation in (("plain", mount), ("PID namespace", pid)):
            latencies = []
            for _ in range(STARTS):
                started = time.perf_counter()
                request = pb.RunRequest(command=["/bin/true"], isolation=isolation)
                job = (await stub.run(request)).job
                await stub.wait(pb.WaitRequest(job_id=job.id))
                latencies.append(time.perf_counter() - started)
            request = pb.RunRequest(command=["sh", "-c", PROBE], isolation=isolation, limits=limits)
            job = (await stub.run(request)).job
            await stub.wait(pb.WaitRequest(job_id=job.id))
            out = b""
            async for message in stub.logs(pb.LogsRequest(job_id=job.id)):
                out += message.data
            try:
                memory, pids = (int(v) for v in out.split())
            except ValueError:
                print(f"  init cost, {name}: not measured (cgroup v1 only): {out[:200]!r}")
                return
            figures[name] = (percentile(latencies, 0.5) * 1000, memory / MiB, pids)
    plain, init = figures["plain"], figures["PID namespace"]
    b.add(Row("start, run + wait, PID namespace, p50", init[0], "ms", plain[0], "mount ns only"))
    b.add(Row("job peak memory, PID namespace (sh + init)", init[1], "MiB", plain[1], "sh alone"))
    b.add(Row("job processes, PID namespace (sh + init)", init[2], "pids", plain[2], "sh alone"))
