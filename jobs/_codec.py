"""The server's codec: grpclib's protobuf codec, plus messages encoded beforehand.

betterproto spends most of a log stream's time encoding the big ``bytes`` field
of each ``LogsResponse`` (its Rust codec too). The Logs handler therefore
encodes those messages with the plain protobuf module generated from the same
service.proto (upb, in C) and hands the bytes over as ``Encoded``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grpclib.encoding.proto import ProtoCodec

__all__ = ["Codec", "Encoded"]


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
