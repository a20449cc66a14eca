"""What the per-call security checks cost: the account's token bucket and the audit
line, timed in-process on the machine's own disk (the state directory's)."""

from __future__ import annotations

import time
import uuid

from grpclib.const import Status

from gen import service_pb2 as wire
from jobs.server._audit import AuditLog, request_fields
from jobs.server._limits import DEFAULT_CALL_BURST, DEFAULT_CALL_RATE, CallRate

from ._harness import Bench, Row


async def security_checks(b: Bench) -> None:
    """``--calls`` of each check, as the guard makes them for every call."""
    calls = b.args.calls
    # A bucket that never runs dry here: the cost of a call let through, as nearly all are.
    rate = CallRate(DEFAULT_CALL_RATE, max(DEFAULT_CALL_BURST, calls + 1))
    started = time.perf_counter()
    for _ in range(calls):
        rate.take("bench")
    bucket = (time.perf_counter() - started) / calls
    b.add(Row("security: call-rate check per call", bucket * 1e6, "us"))

    directory = b.state.parent if b.state is not None else b.workdir
    path = directory / f"jobs-bench-audit-{uuid.uuid4().hex[:8]}.log"
    audit = AuditLog(str(path))
    requests = {
        "status": wire.StatusRequest(job_id=str(uuid.uuid4())),
        "run": wire.RunRequest(
            command=["make", "-j4", "test"],
            env=[wire.EnvVar(name="TOKEN", value="x" * 40)],
            cwd="/srv/build",
            limits=wire.Limits(memory=256 << 20, cpu=0.5),
        ),
    }
    try:
        for name, request in requests.items():
            started = time.perf_counter()
            for _ in range(calls):
                audit.call(
                    peer="127.0.0.1:50000",
                    account="bench",
                    role="full",
                    method=f"/jobs.v1.JobService/{name.title()}",
                    status=Status.OK,
                    message=None,
                    duration=0.0001,
                    fields=request_fields(request),
                )
            line = (time.perf_counter() - started) / calls
            b.add(Row(f"security: audit line per call ({name})", line * 1e6, "us"))
    finally:
        audit.close()
        path.unlink(missing_ok=True)
