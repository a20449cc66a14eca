"""jobs: run, stop, inspect and follow Linux processes on behalf of remote clients.

The tree is the architecture:

- The core — ``_model`` (states, specs, facts), ``_output`` (the on-disk output
  log and its readers), ``_process`` (spawning and reaping), ``_job`` and
  ``_manager`` — knows nothing of gRPC; it depends on anyio and the standard
  library only, and raises the errors of ``errors``.
- The service and the server adapt the core to the generated API in ``gen``.
- ``cli`` and ``pki`` sit outside; nothing imports ``cli``.

The import-linter contracts in pyproject.toml keep these directions checked.
"""

from ._job import DEFAULT_GRACE as DEFAULT_GRACE
from ._job import Job as Job
from ._manager import DEFAULT_HISTORY as DEFAULT_HISTORY
from ._manager import DEFAULT_MAX_RUNNING as DEFAULT_MAX_RUNNING
from ._manager import DEFAULT_MAX_STREAMS as DEFAULT_MAX_STREAMS
from ._manager import DEFAULT_OUTPUT_CAP as DEFAULT_OUTPUT_CAP
from ._manager import JobManager as JobManager
from ._model import Chunk as Chunk
from ._model import Gap as Gap
from ._model import IoRate as IoRate
from ._model import JobInfo as JobInfo
from ._model import JobSpec as JobSpec
from ._model import JobState as JobState
from ._model import Limits as Limits
from ._model import Namespace as Namespace
from ._model import Stream as Stream
from ._output import LogReader as LogReader
from .errors import CannotExecute as CannotExecute
from .errors import InvalidArgument as InvalidArgument
from .errors import JobNotFound as JobNotFound
from .errors import JobsError as JobsError
from .errors import LimitUnsupported as LimitUnsupported
from .errors import OffsetOutOfRange as OffsetOutOfRange
from .errors import ShuttingDown as ShuttingDown
from .errors import TooManyJobs as TooManyJobs
from .errors import TooManyStreams as TooManyStreams

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_HISTORY",
    "DEFAULT_MAX_RUNNING",
    "DEFAULT_MAX_STREAMS",
    "DEFAULT_OUTPUT_CAP",
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
    "Namespace",
    "OffsetOutOfRange",
    "ShuttingDown",
    "Stream",
    "TooManyJobs",
    "TooManyStreams",
]
