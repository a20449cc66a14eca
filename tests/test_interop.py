"""Interop: a client we did not write — grpcio (Google's C-core), its stubs generated from
service.proto here — calls the server over mutual TLS, from a process of its own."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
from harness import RunningServer

PROJECT = Path(__file__).resolve().parent.parent

CLIENT = """
import json, sys
import grpc
import service_pb2 as pb, service_pb2_grpc as rpc

port, ca, cert, key = sys.argv[1:5]
credentials = grpc.ssl_channel_credentials(
    root_certificates=open(ca, "rb").read(),
    private_key=open(key, "rb").read(),
    certificate_chain=open(cert, "rb").read(),
)
with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
    stub = rpc.JobServiceStub(channel)
    job = stub.Run(pb.RunRequest(command=["sh", "-c", "echo hello; echo oops >&2; exit 3"])).job
    out, err = b"", b""
    for message in stub.Logs(pb.LogsRequest(job_id=job.id, follow=True)):
        if message.stream == pb.STREAM_STDOUT:
            out += message.data
        else:
            err += message.data
    final = stub.Wait(pb.WaitRequest(job_id=job.id)).job
    try:
        stub.Status(pb.StatusRequest(job_id="nope"))
        not_found = None
    except grpc.RpcError as error:
        not_found = [error.code().name, error.details()]
    print(json.dumps({
        "out": out.decode(), "err": err.decode(),
        "state": pb.JobState.Name(final.state), "exit_code": final.exit_code,
        "listed": [j.id for j in stub.List(pb.ListRequest()).jobs] == [job.id],
        "not_found": not_found,
    }))
"""


async def test_grpcio_client(server: RunningServer, tmp_path: Path) -> None:
    await anyio.run_process(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROJECT}",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            str(PROJECT / "service.proto"),
        ]
    )
    (tmp_path / "client.py").write_text(CLIENT)
    files = server.pki.clients["alice"]
    result = await anyio.run_process(
        [
            sys.executable,
            str(tmp_path / "client.py"),
            str(server.port),
            str(server.pki.ca),
            str(files.cert),
            str(files.key),
        ],
        cwd=tmp_path,
    )
    assert json.loads(result.stdout) == {
        "out": "hello\n",
        "err": "oops\n",
        "state": "JOB_STATE_EXITED",
        "exit_code": 3,
        "listed": True,
        "not_found": ["NOT_FOUND", "job not found"],
    }
