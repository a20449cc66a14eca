"""Every byte-level encoding the server does by hand, in one place.

Requests are decoded and most responses encoded by protobuf's C implementation
(``gen/service_pb2``, generated from the same service.proto as the betterproto
stubs clients use): betterproto took about a third of the server's time per
unary call, and most of a log stream's time encoding the big ``bytes`` field of
each ``LogsResponse``. What is assembled here from pieces:

- responses carrying jobs (every response but Logs's): field 1 repeated, each
  job's encoding cached by the servicer;
- ``LogsResponse`` with its data field written around the small fields, so the
  data is copied once;
- ``Encoded``: a message already in wire format, which ``Codec`` sends as is.

Concatenated encodings of one message type are that message with all their
fields (the protobuf encoding's merge rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from grpclib.encoding.proto import ProtoCodec

from gen import service_pb2 as wire

__all__ = ["Codec", "Encoded", "gap_message", "job_field", "log_message", "varint"]

_JOB_TAG = b"\x0a"  # field 1 (job, or the repeated jobs of List), length-delimited
_DATA_TAG = b"\x1a"  # LogsResponse.data: field 3, length-delimited


@dataclass(frozen=True, slots=True)
class Encoded:
    """A message already in wire format."""

    data: bytes


class Codec(ProtoCodec):
    """``ProtoCodec`` that sends ``Encoded`` messages as they are."""

    def encode(self, message: Any, message_type: Any) -> bytes:
        if isinstance(message, Encoded):
            return message.data
        return super().encode(message, message_type)


def varint(value: int) -> bytes:
    """``value`` (not negative) as a protobuf base-128 varint."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def job_field(job: bytes) -> bytes:
    """An encoded ``Job`` as field 1 of a response; joined, they make List's answer."""
    return _JOB_TAG + varint(len(job)) + job


def log_message(offset: int, stream: wire.Stream, time_ns: int, data: bytes) -> bytes:
    """A ``LogsResponse`` carrying ``data``, whose bytes are copied once."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    head = wire.LogsResponse(offset=offset, stream=stream).SerializeToString()
    tail = wire.LogsResponse(time=Timestamp(seconds=seconds, nanos=nanos)).SerializeToString()
    if not data:  # proto3 leaves an empty field out
        return head + tail
    return b"".join((head, _DATA_TAG, varint(len(data)), data, tail))


def gap_message(offset: int, size: int) -> bytes:
    """A ``LogsResponse`` telling a reader that ``size`` bytes from ``offset`` are gone."""
    return wire.LogsResponse(offset=offset + size, dropped=size).SerializeToString()
