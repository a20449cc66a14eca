"""Expected errors of the job core, one class per condition.

Each carries its facts as attributes and builds its message in ``__init__``. The
gRPC service maps these classes to status codes in one table; the CLI maps status
codes to messages and exit codes in one place. Anything else escaping is a bug.
"""

from __future__ import annotations

__all__ = [
    "ECHO_LIMIT",
    "MESSAGE_LIMIT",
    "AmbiguousJob",
    "CannotExecute",
    "InvalidArgument",
    "InvalidSelector",
    "JobNotFound",
    "JobsError",
    "LimitUnsupported",
    "NameInUse",
    "OffsetOutOfRange",
    "ShuttingDown",
    "StateDirectoryLocked",
    "StateDiskFull",
    "TooManyJobs",
    "TooManyStreams",
    "UnknownUser",
    "UserNotAllowed",
    "echo",
]

ECHO_LIMIT = 200
"""Characters of a caller's value an error message repeats; the rest is cut. A
message travels in an HTTP/2 header, which clients cap (grpcio at 8-16 KiB)."""
MESSAGE_LIMIT = 1000
"""Characters of a whole message, a last bound for messages built elsewhere."""


def echo(value: object, limit: int = ECHO_LIMIT) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters and marked as cut."""
    shown = repr(value)
    if len(shown) <= limit:
        return shown
    return f"{shown[:limit]}... (cut, {len(shown)} characters)"


def _cut(message: str, limit: int = MESSAGE_LIMIT) -> str:
    if len(message) <= limit:
        return message
    return f"{message[:limit]}... (cut, {len(message)} characters)"


class JobsError(Exception):
    """Base class of every expected error of the job core."""


class InvalidArgument(JobsError):
    """The request itself is malformed: empty argv, NUL bytes, a bad limit or env entry."""

    def __init__(self, message: str) -> None:
        super().__init__(_cut(message))


class InvalidSelector(InvalidArgument):
    """A label selector that does not parse; ``position`` is where (0-based)."""

    def __init__(self, selector: str, position: int, reason: str) -> None:
        self.selector = selector
        self.position = position
        self.reason = reason
        super().__init__(f"bad label selector at position {position}: {reason}")


class CannotExecute(JobsError):
    """The command or its working directory cannot be executed on this host."""

    def __init__(self, subject: str, reason: str) -> None:
        self.subject = subject
        self.reason = reason
        super().__init__(_cut(f"{subject}: {reason}"))


class LimitUnsupported(JobsError):
    """A requested limit or isolation cannot be enforced on this host."""

    def __init__(self, limit: str, reason: str) -> None:
        self.limit = limit
        self.reason = reason
        super().__init__(_cut(f"{limit} cannot be enforced here: {reason}"))


class JobNotFound(JobsError):
    """No job with this id is visible to the caller.

    The message is the same for an unknown id, a malformed id and another
    account's job, so that the answer never tells whether a job exists.
    """

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__("job not found")


class AmbiguousJob(InvalidArgument):
    """A job id prefix matches more than one of the caller's jobs."""

    def __init__(self, prefix: str, candidates: list[str]) -> None:
        self.prefix = prefix
        self.candidates = candidates
        listed = ", ".join(candidates)
        super().__init__(f"job id prefix {prefix!r} matches {len(candidates)} jobs: {listed}")


class NameInUse(JobsError):
    """A running job of the account already has this name."""

    def __init__(self, name: str, job_id: str) -> None:
        self.name = name
        self.job_id = job_id
        super().__init__(f"a running job is already named {echo(name)} ({job_id[:8]})")


class OffsetOutOfRange(JobsError):
    """A log read asked for an offset past the end of the output."""

    def __init__(self, offset: int, end: int) -> None:
        self.offset = offset
        self.end = end
        super().__init__(f"offset {offset} is past the end of the output ({end} bytes)")


class TooManyJobs(JobsError):
    """The account already has as many running jobs as it may."""

    def __init__(self, owner: str, limit: int) -> None:
        self.owner = owner
        self.limit = limit
        super().__init__(f"account {echo(owner)} already has {limit} running jobs")


class TooManyStreams(JobsError):
    """The account already has as many open log streams as it may."""

    def __init__(self, owner: str, limit: int) -> None:
        self.owner = owner
        self.limit = limit
        super().__init__(f"account {echo(owner)} already has {limit} open log streams")


class ShuttingDown(JobsError):
    """The manager is shutting down and takes no new jobs."""

    def __init__(self) -> None:
        super().__init__("the server is shutting down")


class StateDiskFull(JobsError):
    """The server's state disk has no room for a new job's record: no job is started."""

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        super().__init__("the state disk is full: no room for the job's record")


class UserNotAllowed(JobsError):
    """The server's policy does not let jobs run as this user."""

    def __init__(self, user: str) -> None:
        self.user = user
        super().__init__(f"jobs may not run as user {echo(user)} on this server")


class UnknownUser(JobsError):
    """No user of this name or uid exists on the server's host."""

    def __init__(self, user: str) -> None:
        self.user = user
        super().__init__(f"no user {echo(user)} on this host")


class StateDirectoryLocked(JobsError):
    """Another server already uses this state directory."""

    def __init__(self, directory: str, pid: int | None) -> None:
        self.directory = directory
        self.pid = pid
        holder = f"process {pid}" if pid else "another process"
        super().__init__(f"the state directory {directory} is in use by {holder}")
