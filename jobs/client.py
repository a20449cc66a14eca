"""Connecting to a jobs server: a channel over mutual TLS, and connection errors made plain.

The generated stub (``gen.jobs.v1.JobServiceStub``) does the calls; this module
builds its channel and turns the ways a connection fails into ``ConnectionFailed``
with a message a person can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import re
import ssl
import weakref
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp
from grpclib.client import Channel
from grpclib.const import Cardinality
from grpclib.events import RecvInitialMetadata, listen
from grpclib.exceptions import StreamTerminatedError

from gen import service_pb2 as wire

from ._tls import client_context as _client_context

__all__ = [
    "EXIT_NO_STATUS",
    "EXIT_TIMED_OUT",
    "ConnectionFailed",
    "LineStamper",
    "client_tls",
    "connection_errors",
    "docker_exit_code",
    "log_stream",
    "logs",
    "open_channel",
    "utc_time",
]

_HANDSHAKE_REFUSED = (
    "the server closed the connection during the TLS handshake: check the certificate, key and CA"
)


_answered: weakref.WeakSet[Channel] = weakref.WeakSet()
"""Channels on which the server has answered a call: their TLS handshake passed, so
a connection lost later is not a refused certificate."""


class ConnectionFailed(Exception):
    """The server could not be reached, or refused our connection."""


def _lost(address: str, reason: str) -> str:
    return (
        f"the connection to {address} was lost after the server had answered ({reason}): "
        "the server stopped, or the network or a keepalive timeout cut it"
    )


def open_channel(host: str, port: int, *, ca: Path, cert: Path, key: Path) -> Channel:
    """A channel to ``host:port`` presenting ``cert`` and verifying the server against ``ca``.

    Build it inside the running event loop: grpclib binds a channel to it.
    """
    context = client_tls(
        ca,
        cert,
        key,
        missing="start `jobs serve` once to create the local identity, or pass "
        "--ca/--cert/--key (JOBS_CA, JOBS_CERT, JOBS_KEY)",
    )
    channel = Channel(host, port, ssl=context)

    async def answered(_: RecvInitialMetadata) -> None:
        _answered.add(channel)

    listen(channel, RecvInitialMetadata, answered)
    return channel


def client_tls(ca: Path, cert: Path, key: Path, *, missing: str = "") -> ssl.SSLContext:
    """The TLS context of a client identity; ``ConnectionFailed`` naming the file that
    is missing (with the hint ``missing``) or that is not what it should be."""
    # ssl names no file ("cannot read None", "[SSL] PEM lib"): check them one by one.
    for what, path in (("CA certificate", ca), ("client certificate", cert), ("client key", key)):
        if not path.is_file():
            hint = f": {missing}" if missing else ""
            raise ConnectionFailed(f"the {what} {path} does not exist{hint}")
    try:
        return _client_context(ca, cert, key)
    except (ssl.SSLError, OSError) as exc:
        # OpenSSL's words without their decoration: "[SSL] PEM lib (_ssl.c:3905)".
        text = getattr(exc, "reason", None) or exc.strerror or str(exc)
        reason = re.sub(r"^\[\w+\] | \(_ssl\.c:\d+\)$", "", text)
        try:
            ssl.create_default_context(cafile=str(ca))
        except (ssl.SSLError, OSError):
            raise ConnectionFailed(f"cannot load the CA certificate {ca}: {reason}") from None
        raise ConnectionFailed(
            f"cannot load the client certificate {cert} with its key {key}: {reason}"
        ) from None


@contextlib.contextmanager
def connection_errors(address: str, channel: Channel | None = None) -> Iterator[None]:
    """Turn connection failures inside the block into ``ConnectionFailed``.

    With the ``channel`` (from ``open_channel``) a connection dropped after the server
    answered is told apart from a TLS handshake the server refused.

    grpclib cancels the calling task when the connection drops and leaves it
    marked as cancelled; that mark is removed here, so that the caller's own
    cancel scopes keep working.
    """
    try:
        yield
    except StreamTerminatedError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            task.uncancel()
        if channel is not None and channel in _answered:
            raise ConnectionFailed(_lost(address, str(exc))) from None
        # Under TLS 1.3 a refused client certificate shows up here, after the
        # client's side of the handshake has completed.
        raise ConnectionFailed(_HANDSHAKE_REFUSED) from None
    except ssl.SSLCertVerificationError as exc:
        raise ConnectionFailed(
            f"the server's certificate is not trusted: {exc.verify_message}"
        ) from None
    except ssl.SSLError as exc:
        raise ConnectionFailed(f"TLS with {address} failed: {exc.reason or exc}") from None
    except BrokenPipeError:
        raise  # our own stdout closed (`jobs logs ID | head`), not the connection
    except ConnectionRefusedError:
        raise ConnectionFailed(f"cannot connect to {address}: is the server running?") from None
    except OSError as exc:
        raise ConnectionFailed(f"cannot connect to {address}: {exc.strerror or exc}") from None


def logs(
    channel: Channel, job_id: str, *, follow: bool = False, offset: int = 0
) -> contextlib.AbstractAsyncContextManager[AsyncIterator[wire.LogsResponse]]:
    """A job's output from ``offset`` (live until it ends with ``follow``), as a
    stream of ``LogsResponse`` messages for the block's duration; see ``log_stream``."""
    return log_stream(channel, wire.LogsRequest(job_id=job_id, follow=follow, offset=offset))


@contextlib.asynccontextmanager
async def log_stream(
    channel: Channel, request: wire.LogsRequest
) -> AsyncIterator[AsyncIterator[wire.LogsResponse]]:
    """The answer to any ``LogsRequest`` (tail, times, streams...), as a stream of
    ``LogsResponse`` messages for the block's duration.

    The fast path for output: the messages are the plain protobuf ones (decoded
    in C), where betterproto's take most of a client's time for big messages.
    """
    async with channel.request(
        "/jobs.v1.JobService/Logs",
        Cardinality.UNARY_STREAM,
        wire.LogsRequest,
        wire.LogsResponse,
    ) as stream:
        await stream.send_message(request, end=True)
        yield stream


def utc_time(stamp: Timestamp) -> str:
    """A protobuf time as RFC 3339 in UTC, to the microsecond: ``2026-11-30T01:02:03.456789Z``."""
    moment = datetime.datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, datetime.UTC)
    return moment.isoformat().replace("+00:00", "Z")


class LineStamper:
    """``logs -t``: every line of a job's output prefixed with the time of the chunk
    it starts in. A line cut across chunks is prefixed once; each stream is
    followed on its own."""

    def __init__(self) -> None:
        self._at_line_start = {wire.STREAM_STDOUT: True, wire.STREAM_STDERR: True}

    def stamp(self, message: wire.LogsResponse) -> bytes:
        """The data of ``message`` with its lines prefixed by its time and a space."""
        data: bytes = message.data
        if not data:
            return data
        prefix = utc_time(message.time).encode() + b" "
        lines = data.split(b"\n")
        out = []
        for i, line in enumerate(lines):
            last = i == len(lines) - 1
            if last and not line:
                break  # data ended with a newline: the next line starts in a later chunk
            start = self._at_line_start.get(message.stream, True) if i == 0 else True
            out.append((prefix if start else b"") + line + (b"" if last else b"\n"))
        self._at_line_start[message.stream] = data.endswith(b"\n")
        return b"".join(out)


EXIT_TIMED_OUT = 124
"""A timed-out job that exited 0 after its SIGTERM still failed: timeout(1)'s code."""
EXIT_NO_STATUS = 125
"""A job whose end was never seen (lost when its server went down): docker's "the
daemon failed", as no code of the job's can be passed on."""


def docker_exit_code(code: int | None, signal: int | None, *, timed_out: bool = False) -> int:
    """A job's end as ``docker run`` exits: its code, 128 + the signal that killed it,
    ``EXIT_NO_STATUS`` with neither; ``EXIT_TIMED_OUT`` for a timed-out job that
    exited 0."""
    if code is not None:
        return EXIT_TIMED_OUT if timed_out and code == 0 else code
    if signal is not None:
        return 128 + signal
    return EXIT_NO_STATUS
