"""jobs: run, stop, inspect and follow Linux processes on behalf of remote clients.

The tree is the architecture:

- ``jobs._core``: the job engine (manager, job, process, output log, records,
  namespaces (dumb-init as PID 1 of a PID namespace), ``containment/`` for v2, v1 and
  the process group). It knows nothing of gRPC: anyio and the standard library.
- ``jobs.server``: the gRPC adapter: ``serve`` and its config, the servicer
  (translation only), the wire encoding, the guard (caps, authn, authz, the error
  table) and grpclib's internals. It sits above the core.
- ``jobs.client``: a channel to a server over mutual TLS, and plain connection errors.
- ``jobs.errors``: the core's expected errors, one class per condition.
- ``jobs.selectors``: Kubernetes label selectors, shared by the core and the CLI.
- ``jobs.testing``: the real `jobs serve` as a subprocess with a throwaway PKI, for
  integration tests (ours, the benchmarks', another service's).
- Outside: ``gen`` (generated stubs), ``pki`` (certificates), ``cli`` (nothing imports it).

The import-linter contracts in pyproject.toml name these packages and keep the
directions checked. This module is the core's public facade.

Names are imported on first use (PEP 562): ``import jobs.client`` in a client
command must not load the job engine, which would cost the CLI a good part of
its start-up.
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
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
    from ._core.model import Usage as Usage
    from ._core.output import LogReader as LogReader
    from ._core.output import Selection as Selection
    from ._core.settings import DEFAULT_GRACE as DEFAULT_GRACE
    from ._core.settings import DEFAULT_HISTORY as DEFAULT_HISTORY
    from ._core.settings import DEFAULT_MAX_RUNNING as DEFAULT_MAX_RUNNING
    from ._core.settings import DEFAULT_MAX_STREAMS as DEFAULT_MAX_STREAMS
    from ._core.settings import DEFAULT_OUTPUT_CAP as DEFAULT_OUTPUT_CAP
    from ._core.settings import ManagerSettings as ManagerSettings
    from .errors import AmbiguousJob as AmbiguousJob
    from .errors import CannotExecute as CannotExecute
    from .errors import InvalidArgument as InvalidArgument
    from .errors import JobNotFound as JobNotFound
    from .errors import JobsError as JobsError
    from .errors import LimitUnsupported as LimitUnsupported
    from .errors import NameInUse as NameInUse
    from .errors import OffsetOutOfRange as OffsetOutOfRange
    from .errors import ShuttingDown as ShuttingDown
    from .errors import TooManyJobs as TooManyJobs
    from .errors import TooManyStreams as TooManyStreams

_LAZY = {
    "Job": "._core.job",
    "JobManager": "._core.manager",
    "Chunk": "._core.model",
    "Gap": "._core.model",
    "IoRate": "._core.model",
    "JobInfo": "._core.model",
    "JobSpec": "._core.model",
    "JobState": "._core.model",
    "Limits": "._core.model",
    "Namespace": "._core.model",
    "Stream": "._core.model",
    "Usage": "._core.model",
    "LogReader": "._core.output",
    "Selection": "._core.output",
    "DEFAULT_GRACE": "._core.settings",
    "DEFAULT_HISTORY": "._core.settings",
    "DEFAULT_MAX_RUNNING": "._core.settings",
    "DEFAULT_MAX_STREAMS": "._core.settings",
    "DEFAULT_OUTPUT_CAP": "._core.settings",
    "ManagerSettings": "._core.settings",
    "AmbiguousJob": ".errors",
    "CannotExecute": ".errors",
    "InvalidArgument": ".errors",
    "JobNotFound": ".errors",
    "JobsError": ".errors",
    "LimitUnsupported": ".errors",
    "NameInUse": ".errors",
    "OffsetOutOfRange": ".errors",
    "ShuttingDown": ".errors",
    "TooManyJobs": ".errors",
    "TooManyStreams": ".errors",
}
"""Each public name and the module (relative to this package) that defines it."""


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jobs' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})  # the lazy names too, as if imported


__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_HISTORY",
    "DEFAULT_MAX_RUNNING",
    "DEFAULT_MAX_STREAMS",
    "DEFAULT_OUTPUT_CAP",
    "AmbiguousJob",
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
    "NameInUse",
    "Namespace",
    "OffsetOutOfRange",
    "Selection",
    "ShuttingDown",
    "Stream",
    "TooManyJobs",
    "TooManyStreams",
    "Usage",
]
