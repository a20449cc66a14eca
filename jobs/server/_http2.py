"""The server's own HTTP/2 layer, between TLS and grpclib's h2 connection.

grpclib feeds h2 whatever arrives and runs every request h2 reports; neither
checks what RFC 9113 asks of a server, and some hostile input ends in a dead
connection or a call answered UNKNOWN. This layer closes those gaps:

- ``FrameFilter`` reads the frame headers of the byte stream: a preface that is
  not HTTP/2 closes the connection, a first frame other than SETTINGS and a frame
  longer than our SETTINGS_MAX_FRAME_SIZE are connection errors as soon as their
  header arrives (h2 would buffer the whole frame first), and frames of unknown
  types are dropped, as RFC 9113 §5.5 says (grpclib fails on them).
- ``check_request`` looks at a request's header block before grpclib routes it:
  a malformed one (RFC 9113 §8.2, §8.3) resets the stream with PROTOCOL_ERROR,
  and headers grpclib would answer UNKNOWN (or never answer: a ``-bin`` value that
  is not base64) are answered with a proper status.
- ``guarding`` wraps grpclib's protocol factory with both, and catches whatever
  else escapes h2 or grpclib for a connection: that connection is closed with
  GOAWAY INTERNAL_ERROR and the bug logged, the others keep being served; and it
  tells the server's ``Reclaimer`` (``_trim``) when a connection is gone.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from grpclib.const import Status
from grpclib.metadata import decode_bin_value, encode_grpc_message
from h2.errors import ErrorCodes

from . import _grpclib

__all__ = [
    "Answer",
    "FrameError",
    "FrameFilter",
    "Reset",
    "check_request",
    "guarding",
]

log = logging.getLogger(__name__)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_FRAME_HEADER = 9
_SETTINGS = 0x4
_HEADERS = 0x1
_PUSH_PROMISE = 0x5
_CONTINUATION = 0x9
_KNOWN_TYPES = frozenset(range(10))
"""DATA to CONTINUATION: the frame types of RFC 9113 that h2 handles. ALTSVC (0xa),
PRIORITY_UPDATE (0x10) and any other extension are dropped (a server may ignore
them, RFC 7838 §4 and RFC 9218 §7.1)."""
_ACK = 0x1
_END_HEADERS = 0x4


class FrameError(Exception):
    """A connection error: the connection is closed with GOAWAY ``code``."""

    def __init__(self, code: ErrorCodes, reason: str, *, goaway: bool = True) -> None:
        self.code = code
        self.reason = reason
        self.goaway = goaway
        super().__init__(f"{code.name}: {reason}")


class FrameFilter:
    """Checks the incoming byte stream frame by frame and drops frames of unknown types.

    ``feed`` returns the bytes to hand on (the same object when nothing is dropped
    or held back) or raises ``FrameError``.
    """

    def __init__(self, max_frame_size: int) -> None:
        self.max_frame_size = max_frame_size
        self._preface = 0
        """Bytes of the preface seen so far."""
        self._header = bytearray()
        """A frame header split across reads, held until complete."""
        self._remaining = 0
        """Payload bytes of the current frame still to come."""
        self._dropping = False
        self._settings_seen = False
        self._in_header_block = False
        self.dropped = 0
        """Frames of unknown types dropped so far."""

    def feed(self, data: bytes) -> bytes:
        """The part of ``data`` that h2 may see."""
        size = len(data)
        pos = 0
        pieces: list[bytes | memoryview] = []
        clean = not self._header
        view = memoryview(data)
        if self._preface < len(PREFACE):
            take = min(len(PREFACE) - self._preface, size)
            if data[:take] != PREFACE[self._preface : self._preface + take]:
                raise FrameError(ErrorCodes.PROTOCOL_ERROR, "not an HTTP/2 preface", goaway=False)
            self._preface += take
            pieces.append(view[:take])
            pos = take
        while pos < size:
            if self._remaining:
                take = min(self._remaining, size - pos)
                if self._dropping:
                    clean = False
                else:
                    pieces.append(view[pos : pos + take])
                self._remaining -= take
                pos += take
                continue
            need = _FRAME_HEADER - len(self._header)
            if need > size - pos:
                self._header += view[pos:]
                clean = False
                break
            if self._header:
                self._header += view[pos : pos + need]
                header: bytes | memoryview = bytes(self._header)
                self._header.clear()
            else:
                header = view[pos : pos + need]
            pos += need
            self._frame(header)
            if self._dropping:
                clean = False
            else:
                pieces.append(header)
        if clean:
            return data
        return b"".join(pieces)

    def _frame(self, header: bytes | memoryview) -> None:
        length = int.from_bytes(header[:3], "big")
        kind, flags = header[3], header[4]
        if length > self.max_frame_size:
            raise FrameError(
                ErrorCodes.FRAME_SIZE_ERROR,
                f"a frame of {length} bytes; the limit is {self.max_frame_size}",
            )
        if not self._settings_seen:
            if kind != _SETTINGS or flags & _ACK:
                raise FrameError(ErrorCodes.PROTOCOL_ERROR, "the preface's SETTINGS is missing")
            self._settings_seen = True
        if kind in _KNOWN_TYPES:
            self._dropping = False
            if kind in (_HEADERS, _PUSH_PROMISE, _CONTINUATION):
                self._in_header_block = not flags & _END_HEADERS
        else:
            if self._in_header_block:
                # RFC 9113 §6.10: nothing may come between a HEADERS and its CONTINUATIONs.
                raise FrameError(ErrorCodes.PROTOCOL_ERROR, "a frame inside a header block")
            self._dropping = True
            self.dropped += 1
        self._remaining = length


# -- request headers ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reset:
    """A malformed request: reset its stream with PROTOCOL_ERROR, route nothing."""

    reason: str


@dataclass(frozen=True, slots=True)
class Answer:
    """A request refused with a gRPC status before any handler runs."""

    status: Status
    message: str
    http_status: int = 200


_PSEUDO = frozenset({":method", ":scheme", ":authority", ":path"})
_REQUIRED = (":method", ":scheme", ":path")
_CONNECTION_SPECIFIC = frozenset(
    {"connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade"}
)
_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
"""RFC 9110 token characters, lowercase only (RFC 9113 §8.2.1)."""
_BAD_VALUE = re.compile(r"[\x00\r\n]|^[ \t]|[ \t]$")
_TIMEOUT = re.compile(r"([0-9]{1,8})([HMSmun])")
"""The gRPC spec's TimeoutValue (at most 8 digits) and TimeoutUnit."""
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
MIN_DEADLINE = 1e-3
"""A deadline shorter than this has passed before a handler could run: answered
DEADLINE_EXCEEDED at once."""
_MAX_SHOWN = 40


def _shown(value: str) -> str:
    return repr(value if len(value) <= _MAX_SHOWN else value[:_MAX_SHOWN] + "...")


def check_request(headers: Sequence[tuple[str, str]]) -> Reset | Answer | None:
    """What to do with a request's header block before grpclib routes it; None: route it."""
    pseudo: dict[str, str] = {}
    regular_seen = False
    for name, value in headers:
        if name.startswith(":"):
            if regular_seen:
                return Reset(f"pseudo-header {_shown(name)} after regular headers")
            if name not in _PSEUDO:
                return Reset(f"unknown pseudo-header {_shown(name)}")
            if name in pseudo:
                return Reset(f"pseudo-header {name} given twice")
            pseudo[name] = value
        else:
            regular_seen = True
            if not _NAME.fullmatch(name):
                return Reset(f"bad header name {_shown(name)}")
            if name in _CONNECTION_SPECIFIC:
                return Reset(f"connection-specific header {name}")
            if name == "te" and value != "trailers":
                return Reset("te other than trailers")
        if _BAD_VALUE.search(value):
            return Reset(f"bad value of header {_shown(name)}")
    for name in _REQUIRED:
        if not pseudo.get(name):
            return Reset(f"pseudo-header {name} missing")
    return _check_grpc(headers, pseudo[":method"])


_BASE64 = re.compile(r"[A-Za-z0-9+/]*(={0,2})")


def _is_base64(value: str) -> bool:
    """Whether a binary header's value is base64, padded or not (as gRPC sends it),
    and decodes as grpclib will decode it."""
    match = _BASE64.fullmatch(value)
    if match is None or (len(value) - len(match[1])) % 4 == 1:
        return False
    try:
        decode_bin_value(value.encode("ascii"))
    except ValueError:
        return False
    return True


def _check_grpc(headers: Sequence[tuple[str, str]], method: str) -> Answer | None:
    """What grpclib would answer UNKNOWN (or not at all), answered properly."""
    if method != "POST":
        return Answer(Status.UNIMPLEMENTED, f"method {_shown(method)}: gRPC calls are POST", 405)
    content_type = te = None
    timeouts: list[str] = []
    for name, value in headers:
        if name == "content-type":
            content_type = value
        elif name == "te":
            te = value
        elif name == "grpc-timeout":
            timeouts.append(value)
        elif name.endswith("-bin") and not name.startswith("grpc-") and not _is_base64(value):
            return Answer(Status.INVALID_ARGUMENT, f"header {_shown(name)} is not base64")
    if content_type is None or not (
        content_type == "application/grpc" or content_type.startswith("application/grpc+")
    ):
        return Answer(Status.INVALID_ARGUMENT, "content-type must be application/grpc", 415)
    if te != "trailers":
        return Answer(Status.INVALID_ARGUMENT, 'a gRPC call needs "te: trailers"')
    for value in timeouts:
        match = _TIMEOUT.fullmatch(value)
        if match is None:
            return Answer(Status.INVALID_ARGUMENT, f"bad grpc-timeout {_shown(value)}")
        if int(match[1]) * _TIMEOUT_UNITS[match[2]] < MIN_DEADLINE:
            return Answer(Status.DEADLINE_EXCEEDED, "deadline exceeded before the call started")
    return None


def answer_headers(answer: Answer) -> list[tuple[str, str]]:
    """A trailers-only response for ``answer``."""
    return [
        (":status", str(answer.http_status)),
        ("content-type", "application/grpc"),
        ("grpc-status", str(answer.status.value)),
        ("grpc-message", encode_grpc_message(answer.message)),
    ]


# -- the protocol -------------------------------------------------------------------------


def guarding(
    factory: Callable[[], asyncio.Protocol], closed: Callable[[], None]
) -> Callable[[], asyncio.Protocol]:
    """A factory of grpclib's protocols behind this layer (frames and request headers
    checked); ``closed`` is called each time a connection is lost."""

    def make() -> asyncio.Protocol:
        return _Protocol(factory(), closed)

    return make


class _Protocol(asyncio.Protocol):
    def __init__(self, protocol: asyncio.Protocol, closed: Callable[[], None]) -> None:
        self._protocol = protocol
        self._closed = closed
        self._filter: FrameFilter | None = None
        self._transport: asyncio.BaseTransport | None = None
        _grpclib.check_requests(protocol, _route)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._protocol.connection_made(transport)
        self._filter = FrameFilter(_grpclib.max_inbound_frame_size(self._protocol))

    def data_received(self, data: bytes) -> None:
        if self._filter is None:
            return  # closed: whatever is still in flight is not read
        try:
            data = self._filter.feed(data)
            if data:
                self._protocol.data_received(data)
        except FrameError as exc:
            log.info("closing a connection: %s", exc)
            self._close(exc.code if exc.goaway else None)
        except Exception:
            log.exception("bug: a connection failed in h2 or grpclib")
            self._close(ErrorCodes.INTERNAL_ERROR)

    def _close(self, code: ErrorCodes | None) -> None:
        self._filter = None
        if code is not None:
            _grpclib.goaway(self._protocol, code)
        if self._transport is not None:
            self._transport.close()

    def eof_received(self) -> bool | None:
        return self._protocol.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._filter = None
        self._protocol.connection_lost(exc)
        self._closed()

    def pause_writing(self) -> None:
        self._protocol.pause_writing()

    def resume_writing(self) -> None:
        self._protocol.resume_writing()


def _route(headers: Sequence[tuple[str, str]]) -> ErrorCodes | list[tuple[str, str]] | None:
    verdict = check_request(headers)
    if verdict is None:
        return None
    if isinstance(verdict, Reset):
        log.info("reset a malformed request: %s", verdict.reason)
        return ErrorCodes.PROTOCOL_ERROR
    return answer_headers(verdict)
