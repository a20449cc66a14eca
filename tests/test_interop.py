"""Interop: a client we did not write — grpcio (Google's C-core), with the committed
gen/service_pb2 messages — calls the server over mutual TLS, from a process of its own
(tests/interop_client.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
from harness import RunningServer

CLIENT = Path(__file__).with_name("interop_client.py")


async def test_grpcio_client(server: RunningServer) -> None:
    files = server.pki.clients["alice"]
    result = await anyio.run_process(
        [
            sys.executable,
            str(CLIENT),
            str(server.port),
            str(server.pki.ca),
            str(files.cert),
            str(files.key),
        ]
    )
    assert json.loads(result.stdout) == {
        "out": "hello\n",
        "err": "oops\n",
        "state": "JOB_STATE_EXITED",
        "exit_code": 3,
        "listed": True,
        "not_found": ["NOT_FOUND", "job not found"],
    }
