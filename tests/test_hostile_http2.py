"""Hostile HTTP/2 over real TLS: hand-made frames and header blocks sent to a real server.

Every request must be answered with a status other than UNKNOWN or INTERNAL, or
reset, as RFC 9113 says; connection errors close the connection at once; and the
server keeps serving everyone else. (The harness fails a test whose server
answered any call UNKNOWN or INTERNAL.)
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from pathlib import Path

import anyio
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from h2.errors import ErrorCodes
from harness import RunningServer, serving
from hostile import EMPTY_MESSAGE, HEALTH, PREFACE, frame, frame_header, raw_peer, request_headers
from pki_fixtures import Certificates

from gen import service_pb2 as wire
from gen.jobs import v1
from jobs._tls import client_context
from jobs.client import ConnectionFailed, connection_errors

METHODS = ["Run", "Stop", "Status", "List", "Logs", "Wait"]


@pytest.fixture(autouse=True)
def no_bug_logged(caplog: pytest.LogCaptureFixture) -> object:
    """Nothing any of these inputs does is a bug of ours."""
    caplog.set_level(logging.INFO)
    yield
    bugs = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not bugs, bugs


async def assert_serves(server: RunningServer) -> None:
    """A well-formed call on a new connection still works."""
    async with raw_peer(server) as peer:
        outcome = await peer.outcome(await peer.request(request_headers()))
    assert outcome.status == Status.OK.value, outcome


# -- malformed requests (RFC 9113 §8.2, §8.3): the stream is reset, nothing routed -----

MALFORMED = {
    "uppercase name": [*request_headers(), ("X-Upper", "1")],
    "connection header": [*request_headers(), ("connection", "keep-alive")],
    "keep-alive header": [*request_headers(), ("keep-alive", "5")],
    "transfer-encoding": [*request_headers(), ("transfer-encoding", "chunked")],
    "upgrade": [*request_headers(), ("upgrade", "h2c")],
    "te not trailers": [*request_headers()[:5], ("te", "gzip")],
    "second :path after regular headers": [
        *request_headers(),
        (":path", "/jobs.v1.JobService/List"),
    ],
    "pseudo-header twice": [(":path", HEALTH), *request_headers()],
    "unknown pseudo-header": [(":protocol", "x"), *request_headers()],
    "no :path": [h for h in request_headers() if h[0] != ":path"],
    "no :method": [h for h in request_headers() if h[0] != ":method"],
    "empty :path": [(":path", "") if h[0] == ":path" else h for h in request_headers()],
    "name with a space": [*request_headers(), ("x y", "1")],
    "value with a newline": [*request_headers(), ("x-note", "a\nb")],
    "value with leading space": [*request_headers(), ("x-note", " a")],
}


@pytest.mark.parametrize("headers", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_request_is_reset(
    server: RunningServer, headers: list[tuple[str, str]]
) -> None:
    async with raw_peer(server) as peer:
        outcome = await peer.outcome(await peer.request(headers))
        assert outcome.reset == ErrorCodes.PROTOCOL_ERROR, outcome
        assert outcome.status is None
        # The connection is fine: the next call on it is served.
        assert (await peer.outcome(await peer.request(request_headers()))).status == 0


async def test_the_last_path_is_not_routed(server: RunningServer) -> None:
    """A second :path naming Run (after regular headers) must not start anything."""
    headers = [*request_headers(), (":path", "/jobs.v1.JobService/Run")]
    run = wire.RunRequest(command=["/bin/true"]).SerializeToString()
    async with raw_peer(server) as peer:
        body = b"\0" + len(run).to_bytes(4, "big") + run
        outcome = await peer.outcome(await peer.request(headers, body))
    assert outcome.reset == ErrorCodes.PROTOCOL_ERROR
    assert server.manager.list("alice") == []


# -- headers grpclib answered UNKNOWN, or never ---------------------------------------

ANSWERED = {
    "grpc-timeout abc": (request_headers(grpc_timeout="abc"), Status.INVALID_ARGUMENT),
    "grpc-timeout -5S": (request_headers(grpc_timeout="-5S"), Status.INVALID_ARGUMENT),
    "grpc-timeout 1X": (request_headers(grpc_timeout="1X"), Status.INVALID_ARGUMENT),
    "grpc-timeout empty": (request_headers(grpc_timeout=""), Status.INVALID_ARGUMENT),
    "grpc-timeout 9 digits": (
        request_headers(grpc_timeout="123456789S"),
        Status.INVALID_ARGUMENT,
    ),
    "grpc-timeout 0S": (request_headers(grpc_timeout="0S"), Status.DEADLINE_EXCEEDED),
    "grpc-timeout 1n": (request_headers(grpc_timeout="1n"), Status.DEADLINE_EXCEEDED),
    "grpc-timeout 999u": (request_headers(grpc_timeout="999u"), Status.DEADLINE_EXCEEDED),
    "-bin not base64": (request_headers(x_token_bin="!!!*"), Status.INVALID_ARGUMENT),
    "-bin bad padding": (request_headers(x_token_bin="a"), Status.INVALID_ARGUMENT),
    "no content-type": (
        [h for h in request_headers() if h[0] != "content-type"],
        Status.INVALID_ARGUMENT,
    ),
    "content-type json": (
        [
            ("content-type", "application/json") if h[0] == "content-type" else h
            for h in request_headers()
        ],
        Status.INVALID_ARGUMENT,
    ),
    "no te": ([h for h in request_headers() if h[0] != "te"], Status.INVALID_ARGUMENT),
    "GET": (
        [(":method", "GET") if h[0] == ":method" else h for h in request_headers()],
        Status.UNIMPLEMENTED,
    ),
    "unknown method": (request_headers("/jobs.v1.JobService/Nope"), Status.UNIMPLEMENTED),
    "grpc-timeout fine": (request_headers(grpc_timeout="5S"), Status.OK),
    "-bin fine": (request_headers(x_token_bin="AAEC"), Status.OK),
}


@pytest.mark.parametrize(("headers", "status"), ANSWERED.values(), ids=ANSWERED.keys())
async def test_bad_headers_are_answered(
    server: RunningServer, headers: list[tuple[str, str]], status: Status
) -> None:
    async with raw_peer(server) as peer:
        outcome = await peer.outcome(await peer.request(headers), timeout=5)
    assert outcome.status == status.value, outcome


async def test_a_bad_timeout_on_a_real_method(server: RunningServer) -> None:
    """The answer comes before the guard: no handler runs, nothing is started."""
    run = wire.RunRequest(command=["/bin/true"]).SerializeToString()
    body = b"\0" + len(run).to_bytes(4, "big") + run
    async with raw_peer(server) as peer:
        headers = request_headers("/jobs.v1.JobService/Run", grpc_timeout="1n")
        outcome = await peer.outcome(await peer.request(headers, body))
    assert outcome.status == Status.DEADLINE_EXCEEDED.value
    assert server.manager.list("alice") == []


# -- request bodies cut short: INVALID_ARGUMENT on every method, no bug logged -----------

TRUNCATED = {
    "1 byte of prefix": b"\0",
    "4 bytes of prefix": b"\0\0\0\0",
    "body shorter than its prefix": b"\0\0\0\0\x10" + b"\x0a\x02",
    "prefix only, body missing": b"\0\0\0\0\x03",
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("body", TRUNCATED.values(), ids=TRUNCATED.keys())
async def test_truncated_body(server: RunningServer, method: str, body: bytes) -> None:
    async with raw_peer(server) as peer:
        stream = await peer.request(request_headers(f"/jobs.v1.JobService/{method}"), body)
        outcome = await peer.outcome(stream)
    assert outcome.status == Status.INVALID_ARGUMENT.value, outcome
    assert "cut short" in outcome.message


# -- frames ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [0x0A, 0x10, 0x42, 0xFF])
async def test_unknown_frame_types_are_ignored(server: RunningServer, kind: int) -> None:
    async with raw_peer(server) as peer:
        await peer.send_raw(frame(kind, b"hello"))
        await peer.send_raw(frame(kind, b"", flags=0xFF, stream=1))
        await peer.send_raw(frame(kind, b"x" * 1000, stream=0x7FFFFFFF))
        outcome = await peer.outcome(await peer.request(request_headers()))
    assert outcome.status == Status.OK.value, outcome


async def test_unknown_frame_inside_a_header_block(server: RunningServer) -> None:
    """RFC 9113 §6.10: only CONTINUATION may follow a HEADERS without END_HEADERS."""
    async with raw_peer(server) as peer:
        await peer.send_raw(frame(0x1, b"\x82", flags=0x0, stream=1))  # HEADERS, no END_HEADERS
        await peer.send_raw(frame(0x42, b"x"))
        outcome = await peer.closed()
    assert outcome.goaway == ErrorCodes.PROTOCOL_ERROR


async def test_oversized_frame_is_refused_at_its_header(server: RunningServer) -> None:
    """A header claiming 16 MiB: GOAWAY FRAME_SIZE_ERROR at once, nothing buffered."""
    async with raw_peer(server) as peer:
        await peer.send_raw(frame_header((1 << 24) - 1, 0x0, stream=1))
        outcome = await peer.closed(timeout=5)
    assert outcome.goaway == ErrorCodes.FRAME_SIZE_ERROR
    await assert_serves(server)


async def test_a_frame_just_over_the_limit(server: RunningServer) -> None:
    async with raw_peer(server) as peer:
        await peer.send_raw(frame(0x42, b"x" * 16385))
        outcome = await peer.closed(timeout=5)
    assert outcome.goaway == ErrorCodes.FRAME_SIZE_ERROR


@pytest.mark.parametrize(
    "garbage",
    [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\0" * 64, frame(0x6, b"12345678")],
    ids=["http/1.1", "zeros", "ping before settings"],
)
async def test_preface_then_garbage_is_closed_at_once(
    server: RunningServer, garbage: bytes
) -> None:
    async with raw_peer(server, start=False) as peer:
        await peer.send_raw(PREFACE + garbage)
        outcome = await peer.closed(timeout=5)
    assert outcome.closed
    await assert_serves(server)


async def test_not_http2_at_all(server: RunningServer) -> None:
    async with raw_peer(server, start=False) as peer:
        await peer.send_raw(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        outcome = await peer.closed(timeout=5)
    assert outcome.closed
    await assert_serves(server)


async def test_split_frames_pass_through(server: RunningServer) -> None:
    """The filter holds a frame header split across reads, and drops an unknown frame
    split the same way, without disturbing what h2 sees."""
    async with raw_peer(server, start=False) as peer:
        settings = frame(0x4, b"")
        unknown = frame(0x42, b"abcdef")
        data = PREFACE + settings + unknown
        for i in range(0, len(data), 5):
            await peer.send_raw(data[i : i + 5])
        stream = peer.h2
        stream.initiate_connection()
        stream.data_to_send()  # the preface and SETTINGS were sent by hand above
        outcome = await peer.outcome(await peer.request(request_headers(), EMPTY_MESSAGE))
    assert outcome.status == Status.OK.value, outcome


@pytest.mark.parametrize("timeout", ["1m", "3m", "10m"])
@pytest.mark.parametrize("method", ["Run", "Status", "Wait", "Logs"])
async def test_short_deadlines(server: RunningServer, method: str, timeout: str) -> None:
    """A deadline that runs out at any point of a call ends it DEADLINE_EXCEEDED (or
    with the call's own answer), never UNKNOWN or INTERNAL."""
    async with server.stub() as stub:
        job = await stub.run(v1.RunRequest(command=["/bin/sleep", "3"]))
    request = {
        "Run": wire.RunRequest(command=["/bin/sleep", "1"]),
        "Status": wire.StatusRequest(job_id=job.job.id),
        "Wait": wire.WaitRequest(job_id=job.job.id),
        "Logs": wire.LogsRequest(job_id=job.job.id, follow=True),
    }[method].SerializeToString()
    body = b"\0" + len(request).to_bytes(4, "big") + request
    async with raw_peer(server) as peer:
        headers = request_headers(f"/jobs.v1.JobService/{method}", grpc_timeout=timeout)
        outcome = await peer.outcome(await peer.request(headers, body))
    assert outcome.status in (Status.OK.value, Status.DEADLINE_EXCEEDED.value), outcome


async def test_a_peer_that_never_closes_tls_frees_its_slot_in_the_handshake_timeout(
    test_pki: Certificates, tmp_path: Path
) -> None:
    # The server closes a connection on a frame over the size limit, and waits for
    # the peer's TLS close_notify, which this peer never sends (nor reads anything).
    # Meanwhile the connection holds its address's one slot: for the handshake
    # timeout, not asyncio's 30 s default.
    options = ("--max-connections=1", "--handshake-timeout=2s")
    async with serving(test_pki, tmp_path / "state", *options) as server:
        files = test_pki.clients["alice"]
        context = client_context(test_pki.ca, files.cert, files.key)
        silent = await anyio.connect_tcp(
            server.host, server.port, ssl_context=context, tls_hostname="localhost"
        )
        try:
            await silent.send(PREFACE + frame(4) + frame(99, b"x" * 20_000))
            with anyio.fail_after(10):  # well under asyncio's 30 s
                while True:
                    try:
                        async with server.stub() as stub:
                            with connection_errors(server.address):
                                await stub.list(v1.ListRequest())
                        break
                    except (ConnectionFailed, ConnectionError, GRPCError):  # the slot is held
                        await anyio.sleep(0.1)
        finally:
            with contextlib.suppress(ssl.SSLError, anyio.BrokenResourceError, OSError):
                await silent.aclose()
