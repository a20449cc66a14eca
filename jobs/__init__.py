"""jobs: run, stop, inspect and follow Linux processes on behalf of remote clients.

The tree is the architecture:

- ``jobs._core``: the job engine (manager, job, process, output log, records,
  namespaces, the minimal init, ``containment/`` for cgroup v2, cgroup v1 and
  the process group). It knows nothing of gRPC: anyio and the standard library.
- ``jobs.server``: the gRPC adapter: ``serve`` and its config, the servicer
  (translation only), the wire encoding, the guard (caps, authn, authz, the error
  table) and grpclib's internals. It sits above the core.
- ``jobs.client``: a channel to a server over mutual TLS, and plain connection errors.
- ``jobs.errors``: the core's expected errors, one class per condition.
- Outside: ``gen`` (generated stubs), ``pki`` (certificates), ``cli`` (nothing imports it).

The import-linter contracts in pyproject.toml name these packages and keep the
directions checked. This module is the core's public facade.
"""

from ._core.job import Job as Job
from ._core.manager import JobManager as JobManager
from ._core.model import Chunk as Chunk
from ._core.model import Gap as Gap
from ._core.model import IoRate as IoRate
from ._core.model import JobInfo as JobInfo
from ._core.model import JobSpec as JobSpec
from ._core.model import JobState as JobState
from ._core.model import Limits as Limits
from ._core.model import Namespace as Namespace
from ._core.model import Stream as Stream
from ._core.output import LogReader as LogReader
from ._core.settings import DEFAULT_GRACE as DEFAULT_GRACE
from ._core.settings import DEFAULT_HISTORY as DEFAULT_HISTORY
from ._core.settings import DEFAULT_MAX_RUNNING as DEFAULT_MAX_RUNNING
from ._core.settings import DEFAULT_MAX_STREAMS as DEFAULT_MAX_STREAMS
from ._core.settings import DEFAULT_OUTPUT_CAP as DEFAULT_OUTPUT_CAP
from ._core.settings import ManagerSettings as ManagerSettings
from ._core.users import DEFAULT_USER as DEFAULT_USER
from ._core.users import RunAs as RunAs
from ._core.users import UserPolicy as UserPolicy
from .errors import CannotExecute as CannotExecute
from .errors import InvalidArgument as InvalidArgument
from .errors import JobNotFound as JobNotFound
from .errors import JobsError as JobsError
from .errors import LimitUnsupported as LimitUnsupported
from .errors import OffsetOutOfRange as OffsetOutOfRange
from .errors import ShuttingDown as ShuttingDown
from .errors import StateDirectoryLocked as StateDirectoryLocked
from .errors import TooManyJobs as TooManyJobs
from .errors import TooManyStreams as TooManyStreams
from .errors import UnknownUser as UnknownUser
from .errors import UserNotAllowed as UserNotAllowed

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_HISTORY",
    "DEFAULT_MAX_RUNNING",
    "DEFAULT_MAX_STREAMS",
    "DEFAULT_OUTPUT_CAP",
    "DEFAULT_USER",
    "CannotExecute",
    "Chunk",
    "Gap",
    "InvalidArgument",
    "IoRate",
    "Job",
    "JobInfo",
    "JobManager",
    "JobNotFound",
    "JobSpec",
    "JobState",
    "JobsError",
    "LimitUnsupported",
    "Limits",
    "LogReader",
    "ManagerSettings",
    "Namespace",
    "OffsetOutOfRange",
    "RunAs",
    "ShuttingDown",
    "StateDirectoryLocked",
    "Stream",
    "TooManyJobs",
    "TooManyStreams",
    "UnknownUser",
    "UserNotAllowed",
    "UserPolicy",
]
