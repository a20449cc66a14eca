"""Job records on disk: one JSON file per job, written before its process starts.

A record holds what ``JobInfo`` says (but never the job's environment, which may
carry secrets) plus the start time of the main process, so that after a crash a
leftover process can be told apart from an unrelated one that reused its pid.

The first record of a job is written with room to spare (``RECORD_SLACK`` bytes of
padding, which JSON ignores), and every later update is written over it in place,
in one write: a job that started has a record, and its updates need no new disk
blocks, so a full state disk cannot lose them.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
from pathlib import Path
from typing import Any

from ..errors import StateDiskFull
from .model import IoRate, JobInfo, JobSpec, JobState, Limits, Namespace, Usage

__all__ = ["RECORD", "RECORD_SLACK", "create_record", "load_record", "save_record"]

RECORD = "job.json"
VERSION = 1
RECORD_SLACK = 512
"""Bytes reserved past a new record for its updates (pid, times, exit status and
byte counts only ever take a few dozen more)."""


def create_record(directory: Path, info: JobInfo) -> None:
    """Write a new job's first record, with room for its updates.

    Raises ``StateDiskFull`` when the state disk has no room for it.
    """
    data = _encode(info, None)
    temporary = directory / f".{RECORD}.tmp"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            _write_all(fd, data + b" " * RECORD_SLACK)
        finally:
            os.close(fd)
        os.replace(temporary, directory / RECORD)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StateDiskFull(str(directory.parent)) from None
        raise


def save_record(directory: Path, info: JobInfo, start_time: int | None) -> None:
    """Write ``info`` as the job's record: over the existing one, in place, when it
    fits (it always does after ``create_record``); else atomically (write, rename)."""
    data = _encode(info, start_time)
    path = directory / RECORD
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        fd = -1
    if fd >= 0:
        try:
            size = os.fstat(fd).st_size
            if len(data) <= size:
                _write_all(fd, data + b" " * (size - len(data)))
                return
        finally:
            os.close(fd)
    temporary = directory / f".{RECORD}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def _write_all(fd: int, data: bytes) -> None:
    """Write ``data`` at the start of ``fd`` (one call but for a short write)."""
    view = memoryview(data)
    offset = 0
    while offset < len(view):
        offset += os.pwrite(fd, view[offset:], offset)


def _encode(info: JobInfo, start_time: int | None) -> bytes:
    spec = info.spec
    limits = spec.limits
    document: dict[str, Any] = {
        "version": VERSION,
        "id": info.id,
        "owner": info.owner,
        "argv": list(spec.argv),
        "cwd": spec.cwd,
        "timeout": spec.timeout,
        "limits": {
            "cpu": limits.cpu,
            "memory": limits.memory,
            "pids": limits.pids,
            "io_read": [[r.bytes_per_second, r.device] for r in limits.io_read],
            "io_write": [[r.bytes_per_second, r.device] for r in limits.io_write],
        },
        "isolation": sorted(ns.value for ns in spec.isolation),
        "state": info.state.value,
        "pid": info.pid,
        "pid_start_time": start_time,
        "started_at": info.started_at,
        "ended_at": info.ended_at,
        "exit_code": info.exit_code,
        "signal": info.signal,
        "lost_bytes": info.lost_bytes,
        "name": spec.name,
        "labels": dict(spec.labels),
        "usage": None if info.usage is None else dataclasses.asdict(info.usage),
    }
    return json.dumps(document).encode()


def load_record(directory: Path) -> tuple[JobInfo, int | None]:
    """The job's facts as last recorded, and its main process's start time.

    Raises ``ValueError`` (or ``OSError``) for a missing or unreadable record.
    """
    document = json.loads((directory / RECORD).read_text())
    if document.get("version") != VERSION:
        raise ValueError(f"unknown record version {document.get('version')!r}")
    limits = document["limits"]
    spec = JobSpec(
        argv=tuple(document["argv"]),
        cwd=document["cwd"],
        timeout=document["timeout"],
        limits=Limits(
            cpu=limits["cpu"],
            memory=limits["memory"],
            pids=limits["pids"],
            io_read=tuple(IoRate(rate, device) for rate, device in limits["io_read"]),
            io_write=tuple(IoRate(rate, device) for rate, device in limits["io_write"]),
        ),
        isolation=frozenset(Namespace(ns) for ns in document["isolation"]),
        # Records written before names, labels and usage existed have none.
        name=document.get("name"),
        labels=tuple(sorted(document.get("labels", {}).items())),
    )
    usage = document.get("usage")
    info = JobInfo(
        id=document["id"],
        owner=document["owner"],
        spec=spec,
        state=JobState(document["state"]),
        pid=document["pid"],
        started_at=document["started_at"],
        ended_at=document["ended_at"],
        exit_code=document["exit_code"],
        signal=document["signal"],
        lost_bytes=document["lost_bytes"],
        usage=None if usage is None else Usage(**usage),
    )
    return info, document["pid_start_time"]
