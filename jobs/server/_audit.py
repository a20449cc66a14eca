"""The audit log: one JSON line per call (refused ones included) and per failed handshake.

The field set is stable and documented in the README ("Audit log"). A call's
line has ``time``, ``event`` ("call"), ``peer``, ``account``, ``role``,
``method``, ``job_id``, ``outcome`` (the gRPC status name), ``error`` (the
status message, when not OK) and ``duration_ms``; a Run adds ``argv``, ``cwd``,
``user``, ``limits``, ``isolation`` and ``env_names`` — never environment values.
A failed handshake is ``event`` "handshake" with ``peer``, ``outcome``
("HANDSHAKE_FAILED") and ``reason``.

The file is opened append-only and created 0600; past ``max_bytes`` it is
renamed to ``PATH.1`` (the older ones shift up to ``PATH.<backups>``) and a new
one is started. ``-`` writes to standard output instead.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from grpclib.const import Status

from gen import service_pb2 as wire

from ..errors import InvalidArgument

__all__ = ["DEFAULT_MAX_BYTES", "AuditLog", "annotate", "request_fields"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 100 << 20
"""Size at which the audit log is rotated."""
BACKUPS = 5
"""Rotated files kept (PATH.1 is the newest)."""
STDOUT = "-"
_ISOLATION = wire.Namespace.DESCRIPTOR
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)
"""Made once: ``json.dumps`` with options builds an encoder per call (a third of a line's cost)."""

_notes: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "audit_notes", default=None
)


def annotate(**fields: Any) -> None:
    """Add ``fields`` to the audit line of the current call (the servicer's facts, such
    as the id of the job a Run started)."""
    notes = _notes.get()
    if notes is not None:
        notes.update(fields)


def begin_call() -> dict[str, Any]:
    """Start collecting the current call's notes (see ``annotate``)."""
    notes: dict[str, Any] = {}
    _notes.set(notes)
    return notes


def request_fields(request: Message | None) -> dict[str, Any]:
    """What the audit line says of a request: the job id it names; for Run, the spec."""
    if request is None:
        return {}
    name = request.DESCRIPTOR.name
    if name == "RunRequest":
        return {
            "argv": list(request.command),  # type: ignore[attr-defined]
            "cwd": request.cwd or None,  # type: ignore[attr-defined]
            "user": request.user or None,  # type: ignore[attr-defined]
            "limits": MessageToDict(
                request.limits,  # type: ignore[attr-defined]
                preserving_proto_field_name=True,
            ),
            "isolation": [
                # A number no enum value has (a hostile or newer client) is kept as is.
                _ISOLATION.values_by_number[n].name if n in _ISOLATION.values_by_number else n
                for n in request.isolation  # type: ignore[attr-defined]
            ],
            "env_names": [var.name for var in request.env],  # type: ignore[attr-defined]
        }
    if "job_id" in request.DESCRIPTOR.fields_by_name:
        return {"job_id": request.job_id or None}  # type: ignore[attr-defined]
    return {}


class AuditLog:
    """An append-only JSON-lines file (or standard output), rotated by size."""

    def __init__(self, path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 1:
            raise InvalidArgument(f"the audit log size must be positive, not {max_bytes}")
        self.path = path
        self._max_bytes = max_bytes
        self._fd = 1 if path == STDOUT else self._open()
        self._size = 0 if path == STDOUT else os.fstat(self._fd).st_size

    def __repr__(self) -> str:
        return f"<AuditLog {self.path}>"

    def _open(self) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o600)  # an existing file, made by hand, is tightened too
        return fd

    def call(
        self,
        *,
        peer: str | None,
        account: str | None,
        role: str | None,
        method: str,
        status: Status,
        message: str | None,
        duration: float,
        fields: dict[str, Any],
    ) -> None:
        """One call's line."""
        line: dict[str, Any] = {
            "time": _now(),
            "event": "call",
            "peer": peer,
            "account": account,
            "role": role,
            "method": method,
            "job_id": None,
        }
        line.update(fields)
        line["outcome"] = status.name
        if status is not Status.OK:
            line["error"] = message
        line["duration_ms"] = round(duration * 1000, 3)
        self._write(line)

    def handshake_failed(self, peer: str | None, reason: str) -> None:
        """One failed TLS handshake's line."""
        self._write(
            {
                "time": _now(),
                "event": "handshake",
                "peer": peer,
                "outcome": "HANDSHAKE_FAILED",
                "reason": reason,
            }
        )

    def _write(self, line: dict[str, Any]) -> None:
        data = (_ENCODER.encode(line) + "\n").encode()
        try:
            os.write(self._fd, data)
        except OSError as exc:  # a full disk must not take the server down
            log.error("cannot write the audit log %s: %s", self.path, exc)  # noqa: TRY400
            return
        if self._fd != 1:
            self._size += len(data)
            if self._size >= self._max_bytes:
                self._rotate()

    def _rotate(self) -> None:
        os.close(self._fd)
        try:
            for n in range(BACKUPS - 1, 0, -1):
                older = f"{self.path}.{n}"
                if os.path.exists(older):
                    os.replace(older, f"{self.path}.{n + 1}")
            os.replace(self.path, f"{self.path}.1")
        except OSError as exc:
            log.error("cannot rotate the audit log %s: %s", self.path, exc)  # noqa: TRY400
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size

    def close(self) -> None:
        """Close the file (standard output stays open)."""
        if self._fd > 2:
            os.close(self._fd)
            self._fd = -1


def default_path(state_dir: Path) -> str:
    """Where the audit log goes unless told otherwise: the state directory."""
    return str(state_dir / "audit.log")


def _now() -> str:
    """RFC 3339 in UTC with microseconds (``time.strftime`` is cheaper than ``datetime``)."""
    now = time.time()
    micros = min(int(now % 1 * 1e6), 999_999)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{micros:06d}Z"
